import Foundation
import SwiftFinetune

/// Starting and running multi-process jobs: `--nproc N` re-executes this program under mpirun, every
/// command runs under `runOrAbort` so one failing rank stops the job, and each rank gets its share of
/// the host's cores. `_collective-selftest` (hidden) checks the collectives and the failure paths.
enum Launch {
    /// Whether the arguments ask for `--nproc N ...` (only as the first argument, so a command's own
    /// `--nproc` option, as in `estimate-memory`, is left to that command).
    static func isNprocRequest(_ argv: [String]) -> Bool {
        guard let first = argv.first else { return false }
        return first == "--nproc" || first.hasPrefix("--nproc=")
    }

    /// `--nproc N ARGS...`: replaces this process with `mpirun -np N [--oversubscribe] SELF ARGS...`.
    /// execv keeps the process id, so signals sent to it and mpirun's exit code reach the caller directly.
    static func execMPIRun(_ argv: [String]) throws -> Never {
        var rest = Array(argv.dropFirst())
        let count: String
        if let eq = argv[0].firstIndex(of: "="), argv[0].hasPrefix("--nproc=") {
            count = String(argv[0][argv[0].index(after: eq)...])
        } else {
            guard let c = rest.first else { throw CLIError.usage("--nproc", "--nproc needs a number of processes") }
            count = c
            rest.removeFirst()
        }
        guard let n = Int(count), n >= 1 else { throw CLIError.usage("--nproc", "--nproc expects a positive integer, got '\(count)'") }
        guard !rest.isEmpty else { throw CLIError.usage("--nproc", "--nproc N needs a command to run, e.g. --nproc \(n) RECIPE.yaml") }
        let launch = LaunchEnvironment()
        if launch.usesMPI {
            throw CLIError.usage("--nproc", "this process was already started by \(launch.launcherName); run it without --nproc")
        }
        guard let mpirun = findExecutable("mpirun") else {
            throw CLIError.failed("--nproc \(n): mpirun was not found on PATH; install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev) or start the job with your own launcher")
        }
        let me = try executablePath()
        var args = [mpirun, "-np", String(n)]
        // mpirun refuses more ranks than cores unless told; they then share cores (threads are divided).
        let cores = ProcessInfo.processInfo.activeProcessorCount
        if n > cores { args.append("--oversubscribe") }
        // Open MPI binds each rank to one core when it starts 1 or 2 ranks; a rank that runs cores ÷ ranks
        // threads would then run them all on that one core. Unbound, they spread over the host.
        if cores / n > 1 { args += ["--bind-to", "none"] }
        // Open MPI refuses to start as root unless told; containers usually run as root.
        let env = ProcessInfo.processInfo.environment
        if geteuid() == 0, !(env["OMPI_ALLOW_RUN_AS_ROOT"] == "1" && env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1") {
            FileHandle.standardError.write(Data("note: running as root; passing --allow-run-as-root to mpirun\n".utf8))
            args.append("--allow-run-as-root")
        }
        args.append(me)
        args += rest
        let cArgs = args.map { strdup($0) } + [nil]
        fflush(stdout)
        execv(mpirun, cArgs)
        let reason = String(cString: strerror(errno))
        throw CLIError.failed("--nproc \(n): could not start \(mpirun): \(reason)")
    }

    /// Gives OpenBLAS and the kernels the cores of this host divided by the ranks on it, unless the user
    /// chose a count with OPENBLAS_NUM_THREADS.
    static func configureThreads() {
        let env = ProcessInfo.processInfo.environment
        if env["OPENBLAS_NUM_THREADS"] != nil { return }
        Parallel.setThreads(Distributed.threadsPerRank(cores: ProcessInfo.processInfo.activeProcessorCount,
                                                       localRanks: Distributed.localRanks()))
    }

    /// Runs a command with the job's communicator: an error on any rank aborts every rank (exit 1).
    static func run(_ body: () throws -> Void) {
        let comm: Communicator
        do { comm = try Distributed.current() } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(1)
        }
        runOrAbort(comm, body)
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    static func executablePath() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/exe", &buffer, 4096)
        guard n > 0 else { throw CLIError.failed("--nproc: cannot find this program's path (/proc/self/exe)") }
        return String(cString: buffer)
    }
}

/// `swift-finetune _collective-selftest [--steps N] [--fail-rank R] [--kill-rank R] [--mpi-error-rank R] [--at-step K]`
/// (hidden; run under mpirun): N rounds of every collective with values whose results are known exactly
/// (small integers, exact in f32), on the world and on the data-parallel and pipeline groups, and the
/// bf16/f16 sums (`HalfCollectiveSelftest`). Prints "ok rank R" when every check passed, after
/// "halves ok rank R world W elements N". `--fail-rank R` makes rank R throw at round K (the job must
/// abort); `--kill-rank R` makes it SIGKILL itself (mpirun must tear the job down); `--mpi-error-rank R`
/// makes it call MPI with an invalid tag (MPI's error must be thrown, then abort the job).
enum CollectiveSelftest {
    enum Failure: Error, CustomStringConvertible {
        case injected(rank: Int, step: Int)
        case mismatch(rank: Int, step: Int, what: String)

        var description: String {
            switch self {
            case .injected(let rank, let step): return "selftest: injected failure on rank \(rank) at step \(step)"
            case .mismatch(let rank, let step, let what): return "selftest: rank \(rank) step \(step): \(what)"
            }
        }
    }

    static func run(_ argv: [String]) throws {
        var a = try Arguments(command: "_collective-selftest", argv, flagNames: [])
        let steps = try a.int("steps") ?? 3
        let failRank = try a.int("fail-rank")
        let killRank = try a.int("kill-rank")
        let mpiErrorRank = try a.int("mpi-error-rank")
        let atStep = try a.int("at-step") ?? min(1, max(0, steps - 1))
        try a.finish(positionals: 0...0)
        let comm = try Distributed.current()
        for (name, r) in [("fail-rank", failRank), ("kill-rank", killRank), ("mpi-error-rank", mpiErrorRank)] {
            if let r, r < 0 || r >= comm.worldSize {
                throw CLIError.usage("_collective-selftest", "--\(name) \(r) is outside 0..<\(comm.worldSize)")
            }
        }
        let stages = comm.worldSize % 2 == 0 ? 2 : 1
        let groups = try ParallelGroups(world: comm, pipelineStages: stages)
        var halfChecks = 0
        for step in 0..<steps {
            if step == atStep && comm.rank == failRank { throw Failure.injected(rank: comm.rank, step: step) }
            if step == atStep && comm.rank == killRank {
                FileHandle.standardError.write(Data("rank \(comm.rank): selftest kills itself with SIGKILL at step \(step)\n".utf8))
                kill(getpid(), SIGKILL)
            }
            if step == atStep && comm.rank == mpiErrorRank {
                // A negative tag is invalid in MPI: the library's own error must come back as a thrown error.
                var byte: UInt8 = 0
                try comm.send(&byte, bytes: 1, to: (comm.rank + 1) % comm.worldSize, tag: -5)
            }
            halfChecks += try round(comm, groups: groups, step: step)
        }
        try comm.barrier()
        print("halves ok rank \(comm.rank) world \(comm.worldSize) elements \(halfChecks)")
        // Where the launcher let this rank run (Linux's Cpus_allowed_list), beside the threads it starts.
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let allowed = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }?
            .split(separator: "\t").last.map(String.init) ?? "?"
        print("affinity rank \(comm.rank) cpus \(allowed) threads \(Parallel.threads)")
        print("ok rank \(comm.rank) world \(comm.worldSize) steps \(steps) pipeline stages \(stages)")
    }

    /// One round of every collective; returns how many half-precision sums were checked.
    private static func round(_ comm: Communicator, groups: ParallelGroups, step s: Int) throws -> Int {
        let r = comm.rank, w = comm.worldSize
        func expect(_ ok: Bool, _ what: @autoclosure () -> String) throws {
            if !ok { throw Failure.mismatch(rank: r, step: s, what: what()) }
        }

        // All-reduce (f32 sum): rank r holds (r+1)·k + s, the sum is k·w(w+1)/2 + w·s.
        var sums = (0..<(1000 + s)).map { Float((r + 1) * ($0 % 100 + 1) + s) }
        try comm.allReduce(&sums, count: sums.count, op: .sum)
        for (i, v) in sums.enumerated() {
            try expect(v == Float((i % 100 + 1) * w * (w + 1) / 2 + w * s), "allReduce sum [\(i)] = \(v)")
        }
        // All-reduce (f64 max).
        try expect(try comm.allReduce(Double(r * 10 + s), op: .max) == Double((w - 1) * 10 + s), "allReduce max")

        // Reduce-scatter: block b of rank q holds q·1000 + b·10 + j%7 + s; rank r receives the sum of block r.
        let block = 257
        let input = (0..<(w * block)).map { Float(r * 1000 + ($0 / block) * 10 + ($0 % block) % 7 + s) }
        var mine = [Float](repeating: -1, count: block)
        try comm.reduceScatter(input: input, output: &mine, blockCount: block)
        for j in 0..<block {
            try expect(mine[j] == Float(1000 * w * (w - 1) / 2 + w * (r * 10 + j % 7 + s)), "reduceScatter [\(j)] = \(mine[j])")
        }

        // All-gather (f32 and bytes): block q of the output is rank q's contribution.
        let gathered = 129
        let part = (0..<gathered).map { Float(r * 100 + $0 + s) }
        var all = [Float](repeating: -1, count: w * gathered)
        try comm.allGather(input: part, output: &all, blockCount: gathered)
        for i in 0..<all.count {
            try expect(all[i] == Float((i / gathered) * 100 + i % gathered + s), "allGather [\(i)] = \(all[i])")
        }
        let byteBlock = 33
        let bytes = (0..<byteBlock).map { UInt8((r * 31 + $0 + s) & 0xff) }
        var allBytes = [UInt8](repeating: 0, count: w * byteBlock)
        try comm.allGatherBytes(input: bytes, output: &allBytes, blockBytes: byteBlock)
        for i in 0..<allBytes.count {
            try expect(allBytes[i] == UInt8(((i / byteBlock) * 31 + i % byteBlock + s) & 0xff), "allGatherBytes [\(i)]")
        }

        // Broadcast from a root that moves every round.
        let root = s % w
        let pattern = (0..<1000).map { UInt8((root + $0 * 3 + s) & 0xff) }
        var received = r == root ? pattern : [UInt8](repeating: 0, count: 1000)
        try comm.broadcast(&received, bytes: received.count, root: root)
        try expect(received == pattern, "broadcast from \(root)")

        // Ring send/receive: even ranks send first, odd ranks receive first, so blocking calls pair up.
        if w > 1 {
            let next = (r + 1) % w, previous = (r + w - 1) % w, tag = 100 + s
            let outgoing = (0..<64).map { Int32(r * 1000 + $0 + s) }
            var incoming = [Int32](repeating: -1, count: 64)
            let size = 64 * MemoryLayout<Int32>.size
            if r % 2 == 0 {
                try comm.send(outgoing, bytes: size, to: next, tag: tag)
                try comm.receive(&incoming, bytes: size, from: previous, tag: tag)
            } else {
                try comm.receive(&incoming, bytes: size, from: previous, tag: tag)
                try comm.send(outgoing, bytes: size, to: next, tag: tag)
            }
            try expect(incoming == (0..<64).map { Int32(previous * 1000 + $0 + s) }, "receive from \(previous)")
        }

        // Groups: the sum of world ranks over each group, known from the pipeline-major layout.
        let d = groups.dataParallelSize, p = groups.pipelineStages
        let dpSum = try groups.dataParallel.allReduce(Double(r), op: .sum)
        try expect(dpSum == Double(groups.stage * d * d + d * (d - 1) / 2), "data-parallel group sum \(dpSum)")
        let ppSum = try groups.pipeline.allReduce(Double(r), op: .sum)
        try expect(ppSum == Double(d * p * (p - 1) / 2 + p * groups.replica), "pipeline group sum \(ppSum)")

        let halfChecks = try HalfCollectiveSelftest.run(comm, step: s, expect: expect)
        try comm.barrier()
        return halfChecks
    }
}
