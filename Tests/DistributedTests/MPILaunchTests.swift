import XCTest
import Distributed

/// Jobs of 2 and 4 ranks under mpirun running the hidden `_collective-selftest` command of the built
/// binary: correct runs must verify every collective on every rank; a rank that throws or is killed must
/// end the whole job with a non-zero exit within the deadline (20 s; they take about 0.5–2 s), and the
/// failing rank must be named on stderr.
final class MPILaunchTests: XCTestCase {
    let bin = BoundedProcess.binary
    /// No test may take longer than this; a run that does has hung and its process group is killed.
    let deadline = 20.0

    override func setUpWithError() throws {
        // Not a skip: without the binary nothing here is tested, which must show as a failure.
        guard FileManager.default.isExecutableFile(atPath: bin) else {
            throw CommunicatorError.invalid("swift-finetune is not built beside the tests at \(bin) (swift build --build-tests)")
        }
    }

    private func okLines(_ run: BoundedRun, prefix: String = "ok rank ") -> [String] {
        run.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) }.sorted()
    }

    /// The bf16/f16 all-reduce and reduce-scatter checks of the selftest (`HalfCollectiveSelftest`): per
    /// round 2 formats × (known cases + reduce-scatter + 3001 + step random elements).
    private func halvesLines(_ run: BoundedRun) -> [String] { okLines(run, prefix: "halves ok rank ") }

    func testTwoRanksVerifyEveryCollective() throws {
        let run = try BoundedProcess.run(["mpirun", "-np", "2", bin, "_collective-selftest", "--steps", "6"], timeout: deadline)
        XCTAssertEqual(run.exitCode, 0, run.stderr)
        XCTAssertEqual(okLines(run), (0..<2).map { "ok rank \($0) world 2 steps 6 pipeline stages 2" })
        XCTAssertEqual(halvesLines(run), (0..<2).map { "halves ok rank \($0) world 2 elements 37380" })
    }

    /// An odd world (MPI's non-power-of-two reduction paths): the half sums must still be identical on
    /// every rank and exact for the known cases.
    func testThreeRanksVerifyHalfCollectives() throws {
        let run = try BoundedProcess.run(["mpirun", "-np", "3", "--oversubscribe", bin, "_collective-selftest", "--steps", "3"],
                                         timeout: deadline)
        XCTAssertEqual(run.exitCode, 0, run.stderr)
        XCTAssertEqual(okLines(run), (0..<3).map { "ok rank \($0) world 3 steps 3 pipeline stages 1" })
        XCTAssertEqual(halvesLines(run), (0..<3).map { "halves ok rank \($0) world 3 elements 18672" })
    }

    func testFourRanksOversubscribedVerifyEveryCollectiveAndGroups() throws {
        let run = try BoundedProcess.run(["mpirun", "-np", "4", "--oversubscribe", bin, "_collective-selftest", "--steps", "6"],
                                         timeout: deadline)
        XCTAssertEqual(run.exitCode, 0, run.stderr)
        XCTAssertEqual(okLines(run), (0..<4).map { "ok rank \($0) world 4 steps 6 pipeline stages 2" })
        XCTAssertEqual(halvesLines(run), (0..<4).map { "halves ok rank \($0) world 4 elements 37380" })
    }

    func testThrowingRankAbortsTwoRankJob() throws {
        let run = try BoundedProcess.run(["mpirun", "-np", "2", bin, "_collective-selftest", "--steps", "5", "--fail-rank", "1"],
                                         timeout: deadline)
        XCTAssertFalse(run.timedOut)
        XCTAssertTrue(run.failed, "exit \(run.exitCode)")
        XCTAssertLessThan(run.seconds, deadline)
        XCTAssertTrue(run.stderr.contains("rank 1: error: selftest: injected failure on rank 1 at step 1"), run.stderr)
        XCTAssertTrue(okLines(run).isEmpty, "no rank may finish: \(run.stdout)")
        print("throwing rank, 2 ranks: job ended in \(String(format: "%.2f", run.seconds)) s with exit \(run.exitCode)")
    }

    func testThrowingRankAbortsFourRankJob() throws {
        let run = try BoundedProcess.run(["mpirun", "-np", "4", "--oversubscribe", bin, "_collective-selftest",
                                          "--steps", "5", "--fail-rank", "2", "--at-step", "3"], timeout: deadline)
        XCTAssertFalse(run.timedOut)
        XCTAssertTrue(run.failed, "exit \(run.exitCode)")
        XCTAssertTrue(run.stderr.contains("rank 2: error: selftest: injected failure on rank 2 at step 3"), run.stderr)
        XCTAssertTrue(okLines(run).isEmpty, "no rank may finish: \(run.stdout)")
        print("throwing rank, 4 ranks: job ended in \(String(format: "%.2f", run.seconds)) s with exit \(run.exitCode)")
    }

    /// MPI_ERRORS_RETURN: MPI's own error becomes `CommunicatorError.mpi` naming rank, call and MPI's text.
    func testMPIErrorIsThrownAndAbortsJob() throws {
        let run = try BoundedProcess.run(["mpirun", "-np", "2", bin, "_collective-selftest", "--steps", "3", "--mpi-error-rank", "1"],
                                         timeout: deadline)
        XCTAssertFalse(run.timedOut)
        XCTAssertTrue(run.failed, "exit \(run.exitCode)")
        XCTAssertTrue(run.stderr.contains("rank 1: error: rank 1: MPI_Send(to 0, tag -5) failed: MPI_ERR_TAG: invalid tag"), run.stderr)
        XCTAssertTrue(okLines(run).isEmpty, "no rank may finish: \(run.stdout)")
    }

    func testKilledRankTearsDownTwoRankJob() throws {
        let run = try BoundedProcess.run(["mpirun", "-np", "2", bin, "_collective-selftest", "--steps", "5", "--kill-rank", "0"],
                                         timeout: deadline)
        XCTAssertFalse(run.timedOut)
        XCTAssertTrue(run.failed, "exit \(run.exitCode)")
        XCTAssertTrue(run.stderr.contains("rank 0: selftest kills itself"), run.stderr)
        XCTAssertTrue(run.stderr.contains("process rank 0"), "mpirun names the dead rank: \(run.stderr)")
        print("killed rank, 2 ranks: job ended in \(String(format: "%.2f", run.seconds)) s with exit \(run.exitCode)")
    }

    func testKilledRankTearsDownFourRankJob() throws {
        let run = try BoundedProcess.run(["mpirun", "-np", "4", "--oversubscribe", bin, "_collective-selftest",
                                          "--steps", "5", "--kill-rank", "3", "--at-step", "2"], timeout: deadline)
        XCTAssertFalse(run.timedOut)
        XCTAssertTrue(run.failed, "exit \(run.exitCode)")
        XCTAssertTrue(run.stderr.contains("rank 3: selftest kills itself"), run.stderr)
        XCTAssertTrue(run.stderr.contains("process rank 3"), "mpirun names the dead rank: \(run.stderr)")
        XCTAssertTrue(okLines(run).isEmpty, "no rank may finish: \(run.stdout)")
        print("killed rank, 4 ranks: job ended in \(String(format: "%.2f", run.seconds)) s with exit \(run.exitCode)")
    }

    /// `--nproc 4` on this 2-core machine must add --oversubscribe itself, or mpirun refuses to start.
    func testNprocLaunchesMPIRun() throws {
        let run = try BoundedProcess.run([bin, "--nproc", "4", "_collective-selftest", "--steps", "2"], timeout: deadline)
        XCTAssertEqual(run.exitCode, 0, run.stderr)
        XCTAssertEqual(okLines(run), (0..<4).map { "ok rank \($0) world 4 steps 2 pipeline stages 2" })
    }

    /// Open MPI binds a rank to one core when it starts 1 or 2 ranks; `--nproc` unbinds ranks that run
    /// more than one thread, so `--nproc 1` keeps every core of this host (this test's own affinity) for
    /// its threads, while `--nproc 2` on 2 cores (one thread each) keeps mpirun's one core per rank.
    func testNprocLetsMultiThreadedRanksUseTheirCores() throws {
        let own = try String(contentsOfFile: "/proc/self/status", encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("Cpus_allowed_list:") }!.split(separator: "\t").last.map(String.init)!
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let one = try BoundedProcess.run([bin, "--nproc", "1", "_collective-selftest", "--steps", "1"], timeout: deadline)
        XCTAssertEqual(one.exitCode, 0, one.stderr)
        XCTAssertTrue(one.stdout.contains("affinity rank 0 cpus \(own) threads \(cores)"), one.stdout)
        guard cores == 2 else { return }
        let two = try BoundedProcess.run([bin, "--nproc", "2", "_collective-selftest", "--steps", "1"], timeout: deadline)
        XCTAssertEqual(two.exitCode, 0, two.stderr)
        let lines = two.stdout.split(separator: "\n").filter { $0.hasPrefix("affinity") }.sorted()
        XCTAssertEqual(lines.count, 2, two.stdout)
        XCTAssertTrue(lines.allSatisfy { $0.hasSuffix("threads 1") && !$0.contains("-") }, "\(lines)")
    }

    /// As root without Open MPI's two variables (every root container), `--nproc` passes mpirun's flag itself.
    func testNprocWorksAsRootWithoutOpenMPIVariables() throws {
        guard geteuid() == 0 else { throw XCTSkip("not running as root: mpirun's root check does not apply") }
        let run = try BoundedProcess.run([bin, "--nproc", "2", "_collective-selftest", "--steps", "2"],
                                         environment: ["OMPI_ALLOW_RUN_AS_ROOT": "", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": ""], timeout: deadline)
        XCTAssertEqual(run.exitCode, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("note: running as root; passing --allow-run-as-root to mpirun"), run.stderr)
        XCTAssertEqual(okLines(run), (0..<2).map { "ok rank \($0) world 2 steps 2 pipeline stages 2" })
    }

    func testNprocPassesFailureThrough() throws {
        let run = try BoundedProcess.run([bin, "--nproc=2", "_collective-selftest", "--fail-rank", "0"], timeout: deadline)
        XCTAssertFalse(run.timedOut)
        XCTAssertTrue(run.failed, "exit \(run.exitCode)")
        XCTAssertTrue(run.stderr.contains("rank 0: error: selftest: injected failure"), run.stderr)
    }

    func testNprocWithoutMPIRunSaysSo() throws {
        let run = try BoundedProcess.run([bin, "--nproc", "2", "recipe.yaml"], environment: ["PATH": "/nonexistent"], timeout: deadline)
        XCTAssertEqual(run.exitCode, 1)
        XCTAssertTrue(run.stderr.contains("mpirun was not found on PATH"), run.stderr)
    }

    func testNprocRejectsBadCount() throws {
        let run = try BoundedProcess.run([bin, "--nproc", "zero", "recipe.yaml"], timeout: deadline)
        XCTAssertEqual(run.exitCode, 1)
        XCTAssertTrue(run.stderr.contains("--nproc expects a positive integer, got 'zero'"), run.stderr)
    }

    /// Without mpirun the same command runs as a world of one on `LocalCommunicator`.
    func testSingleProcessSelftestAndFailure() throws {
        let ok = try BoundedProcess.run([bin, "_collective-selftest", "--steps", "3"], timeout: deadline)
        XCTAssertEqual(ok.exitCode, 0, ok.stderr)
        XCTAssertEqual(okLines(ok), ["ok rank 0 world 1 steps 3 pipeline stages 1"])
        let failing = try BoundedProcess.run([bin, "_collective-selftest", "--fail-rank", "0"], timeout: deadline)
        XCTAssertEqual(failing.exitCode, 1)
        XCTAssertEqual(failing.stderr, "error: selftest: injected failure on rank 0 at step 1\n")
    }
}
