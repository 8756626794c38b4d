import Foundation
import XCTest

/// SIGTERM or SIGINT during training: the step in progress finishes, a checkpoint is written, the run
/// says where it is and how to continue, and exits 128 + signal; `resume=auto` then ends exactly where an
/// uninterrupted run ends.
final class GracefulStopTests: XCTestCase {
    static let root = URL(fileURLWithPath: CLI.fixtures).deletingLastPathComponent().deletingLastPathComponent().path

    /// The tiny quickstart writing to `out`, with `extra` overrides; no eval, samples or early stopping.
    static func args(_ out: String, _ extra: [String]) -> [String] {
        ["Recipes/quickstart_tiny.yaml", "output.dir=\(out)", "training.eval_steps=null", "logging.sample_prompts=[]",
         "logging.progress=none", "logging.steps=1", "data.eval=null", "training.early_stopping=null"] + extra
    }

    /// Starts the run and returns once it has logged 3 steps (metrics.jsonl has a line per step), with
    /// its standard error; nil (and a failure) if it ended first.
    static func startAndWait(_ arguments: [String], out: String) throws -> (Process, Pipe)? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: root)
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        func stepsLogged() -> Int {
            ((try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").count
        }
        while stepsLogged() < 3 && p.isRunning && Date() < deadline { usleep(10_000) }
        guard p.isRunning else { XCTFail("the run ended before the signal"); return nil }
        return (p, err)
    }

    func testASignalStopsAfterTheStepWithACheckpointAndTheRunContinuesIdentically() throws {
        let root = Self.root
        let base = NSTemporaryDirectory() + "sf-graceful-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: base) }
        func args(_ out: String) -> [String] { Self.args(out, ["output.save_steps=null", "training.max_steps=60"]) }
        let whole = try CLI.run(args(base + "/whole"), cwd: root, timeout: 600)
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let finalLoss = { (s: String) in s.components(separatedBy: "final loss ").last?.prefix(while: { $0 != "\n" && $0 != "," }) }

        for (signal, code) in [(SIGTERM, Int32(143)), (SIGINT, Int32(130))] {
            let out = base + "/\(signal)"
            guard let (p, err) = try Self.startAndWait(args(out), out: out) else { return }
            kill(p.processIdentifier, signal)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationReason, .exit, stderr)
            XCTAssertEqual(p.terminationStatus, code, stderr)
            let latest = try String(contentsOfFile: out + "/latest", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let step = try XCTUnwrap(Int(latest.dropFirst("global_step".count)), latest)
            XCTAssertTrue((3..<60).contains(step), latest)
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/\(latest)/engine_state.json"))
            let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
            XCTAssertTrue(stderr.contains("\(name): stopped after step \(step) of 60 and saved \(out)/\(latest)"), stderr)
            XCTAssertTrue(stderr.contains("continue with: swift-finetune Recipes/quickstart_tiny.yaml") && stderr.contains("resume=auto"), stderr)
            let resumed = try CLI.run(args(out) + ["resume=auto"], cwd: root, timeout: 600)
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertTrue(resumed.stdout.contains("trained 60 steps"), resumed.stdout)
            XCTAssertEqual(finalLoss(resumed.stdout), finalLoss(whole.stdout), "\(resumed.stdout) vs \(whole.stdout)")
        }
    }

    /// A second signal exits at once (128 + signal), without waiting for the step and checkpoint the first
    /// one asked for; what is on disk stays consistent: `latest`, if any, names a complete checkpoint.
    func testASecondSignalExitsAtOnce() throws {
        let out = NSTemporaryDirectory() + "sf-graceful-twice-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        guard let (p, err) = try Self.startAndWait(Self.args(out, ["output.save_steps=2", "training.max_steps=100000"]), out: out) else { return }
        let sent = Date()
        // Two signals sent at once can merge into one pending signal: keep sending every 20 ms (a step and
        // a save take longer) until the process is gone.
        let pid = p.processIdentifier
        let sender = Thread { while kill(pid, SIGTERM) == 0 && Date().timeIntervalSince(sent) < 10 { usleep(20_000) } }
        sender.start()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let seconds = Date().timeIntervalSince(sent)
        XCTAssertEqual(p.terminationReason, .exit, stderr)
        XCTAssertEqual(p.terminationStatus, 143, stderr)
        XCTAssertLessThan(seconds, 5, "at once, not after a step and a save")
        XCTAssertFalse(stderr.contains("stopped after step"), stderr)
        if let latest = try? String(contentsOfFile: out + "/latest", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/\(latest)/engine_state.json"), "latest names a complete checkpoint: \(latest)")
        }
        print("two SIGTERMs: exit 143 after \(String(format: "%.3f", seconds)) s")
    }
}
