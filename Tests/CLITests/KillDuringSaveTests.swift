import Foundation
import XCTest
import Formats
import SwiftFinetune

/// A run killed (SIGKILL) while it writes a checkpoint: `latest` still names a complete checkpoint, and
/// `resume: auto` continues from it to the end.
final class KillDuringSaveTests: XCTestCase {
    func testKillDuringSaveLeavesLatestCompleteAndResumable() throws {
        let root = URL(fileURLWithPath: CLI.fixtures).deletingLastPathComponent().deletingLastPathComponent().path
        let out = NSTemporaryDirectory() + "sf-kill-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let args = ["Recipes/quickstart_tiny.yaml", "output.dir=\(out)", "output.save_steps=1", "output.keep_last=2",
                    "training.max_steps=60", "training.eval_steps=null", "logging.sample_prompts=[]", "logging.progress=none",
                    "data.eval=null", "training.early_stopping=null"]
        func start() throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CLI.binary)
            p.arguments = args
            p.currentDirectoryURL = URL(fileURLWithPath: root)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        var killedMidSave = false
        for attempt in 0..<12 where !killedMidSave {
            let p = try start()
            // Wait for a first checkpoint, then kill at a varying moment.
            let deadline = Date().addingTimeInterval(30)
            while !FileManager.default.fileExists(atPath: out + "/latest") && Date() < deadline && p.isRunning { usleep(20_000) }
            guard p.isRunning else { return XCTFail("the run ended before it could be killed (status \(p.terminationStatus))") }
            usleep(UInt32(30_000 + attempt * 37_000))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
            killedMidSave = entries.contains { $0.contains(".tmp-") }
            // Whatever the moment, latest names a complete checkpoint.
            let latest = try String(contentsOfFile: out + "/latest", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            for file in ["engine_state.json", "zero_rank0_optim_states.safetensors", "model.safetensors", "config.json"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + latest + "/" + file), "\(latest)/\(file)")
            }
            XCTAssertNoThrow(try JSONValue.read(path: out + "/" + latest + "/engine_state.json"))
            XCTAssertNoThrow(try SafeTensorsFile(path: out + "/" + latest + "/zero_rank0_optim_states.safetensors"))
            try? FileManager.default.removeItem(atPath: out)
        }
        XCTAssertTrue(killedMidSave, "no kill landed inside a save in 12 attempts")

        // Kill once more and resume to the end.
        let p = try start()
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: out + "/latest") && p.isRunning && Date() < deadline { usleep(20_000) }
        usleep(150_000)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let r = try CLI.run(args + ["resume=auto"], cwd: root)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("trained 60 steps"), r.stdout)
    }
}
