import Foundation
import XCTest

/// Runs the built `swift-finetune` binary (built beside the test bundle by `swift build --build-tests`).
enum CLI {
    static var binary: String {
        let testBundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return testBundle.appendingPathComponent("swift-finetune").path
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        var timedOut = false
        /// Exit 1 with a message, the way every refused input must end (not a signal, a hang or exit 0).
        var isCleanFailure: Bool { status == 1 && !timedOut && !stderr.isEmpty }
    }

    /// `environment` is added to this process's own. `timeout`: seconds before the process is killed and
    /// the result marked `timedOut` (a hang). `stdinPath`: a file (or device) to read standard input from
    /// instead of `stdin`.
    static func run(_ args: [String], stdin: String? = nil, stdinPath: String? = nil, cwd: String? = nil,
                    environment: [String: String] = [:], timeout: Double? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        p.arguments = args
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = err
        if let stdinPath { p.standardInput = FileHandle(forReadingAtPath: stdinPath) } else { p.standardInput = input }
        try p.run()
        let killed = Killed()
        if let timeout {
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                // The whole tree: a rank, mpirun's daemon or a crash handler still holding the pipes would
                // otherwise keep the read below waiting after the main process is gone.
                if p.isRunning { killed.value = true; Self.killTree(p.processIdentifier) }
            }
        }
        if stdinPath == nil {
            if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
            try input.fileHandleForWriting.close()
        }
        // Both pipes drained at once, so a child filling one cannot block on it while we wait on the other.
        var e = Data()
        let errDone = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { e = err.fileHandleForReading.readDataToEndOfFile(); errDone.signal() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self),
                      timedOut: killed.value)
    }

    private final class Killed: @unchecked Sendable { var value = false }

    /// SIGKILL to `pid` and every descendant (children found through /proc/PID/stat's parent field),
    /// children first listed before the parent dies so none is re-parented out of reach.
    static func killTree(_ pid: pid_t) {
        var parents: [pid_t: [pid_t]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // Fields after the command name: state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = pid_t(fields[1]) { parents[parent, default: []].append(child) }
        }
        var tree: [pid_t] = [], queue = [pid]
        while let next = queue.popLast() { tree.append(next); queue += parents[next] ?? [] }
        for p in tree { kill(p, SIGKILL) }
    }

    /// A scratch folder for one test, removed by the caller's `defer`.
    static func scratch(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "sf-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// The runner's timeout ends a whole process tree, not only its root.
final class TestRunnerTests: XCTestCase {
    func testKillTreeEndsEveryDescendant() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        let marker = "sf-killtree-\(getpid())"
        p.arguments = ["-c", "bash -c 'exec -a \(marker) sleep 300' & exec -a \(marker) sleep 300"]
        try p.run()
        func alive() -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { e in
                guard pid_t(e) != nil, let cmd = FileManager.default.contents(atPath: "/proc/\(e)/cmdline") else { return false }
                return String(decoding: cmd, as: UTF8.self).hasPrefix(marker)
            }.count
        }
        let deadline = Date().addingTimeInterval(10)
        while alive() < 2 && Date() < deadline { usleep(20_000) }
        XCTAssertEqual(alive(), 2, "the shell's two sleeps")
        CLI.killTree(p.processIdentifier)
        p.waitUntilExit()
        let gone = Date().addingTimeInterval(10)
        while alive() > 0 && Date() < gone { usleep(20_000) }
        XCTAssertEqual(alive(), 0, "the grandchild too")
    }
}
