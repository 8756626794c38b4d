import Foundation
import XCTest

/// Runs a program in its own process group with a deadline: past it the whole group (mpirun and every
/// rank) is killed and the run is reported as timed out, so a test of a hang fails instead of hanging.
struct BoundedRun {
    let exitCode: Int32
    /// The terminating signal when the program was killed by one (its exit code is then 128 + signal).
    let signal: Int32?
    let stdout: String
    let stderr: String
    let seconds: Double
    let timedOut: Bool

    var failed: Bool { exitCode != 0 || signal != nil }
}

enum BoundedProcess {
    /// The swift-finetune binary built beside the test bundle.
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("swift-finetune").path
    }

    /// Runs `arguments[0]` (looked up on PATH when it has no slash) with `environment` added to this
    /// process's environment. OpenMPI refuses to run as root unless told, so the two OMPI_ALLOW variables
    /// are always added: test machines run as root.
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 20,
                    file: StaticString = #filePath, line: UInt = #line) throws -> BoundedRun {
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        for (k, v) in environment { env[k] = v }

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bounded-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outPath = dir.appendingPathComponent("stdout").path, errPath = dir.appendingPathComponent("stderr").path

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A new process group led by the child, so one kill reaches every process it started.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let started = Date()
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard rc == 0 else { throw NSError(domain: "spawn", code: Int(rc), userInfo: [NSLocalizedDescriptionKey: "cannot start \(arguments[0]): \(String(cString: strerror(rc)))"]) }

        var status: Int32 = 0
        var timedOut = false
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            if Date().timeIntervalSince(started) > timeout {
                timedOut = true
                kill(-pid, SIGKILL)
                waitpid(pid, &status, 0)
                break
            }
            usleep(20_000)
        }
        let seconds = Date().timeIntervalSince(started)
        // Ranks that outlived mpirun (they should not) are ended with the group, never left running.
        kill(-pid, SIGKILL)
        let signaled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
        let run = BoundedRun(exitCode: signaled ? 128 + (status & 0x7f) : (status >> 8) & 0xff,
                             signal: signaled ? status & 0x7f : nil,
                             stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                             stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
                             seconds: seconds, timedOut: timedOut)
        if timedOut {
            XCTFail("\(arguments.joined(separator: " ")) did not finish within \(timeout) s; process group killed\nstderr:\n\(run.stderr)", file: file, line: line)
        }
        return run
    }
}
