import Foundation
import XCTest
import Engine
import Formats
@testable import Trainer

/// What a run does with `output.dir` when it already holds something: an earlier run is continued
/// (`resume: auto`) or replaced (`output.overwrite: true`), never mixed with a fresh one; `latest` that
/// cannot be followed is an error; only names the Trainer writes are ever deleted.
final class OutputFolderTests: XCTestCase {
    var out = ""

    override func setUpWithError() throws {
        out = NSTemporaryDirectory() + "sf-outfolder-\(getpid())-\(name.hashValue)"
        try? FileManager.default.removeItem(atPath: out)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: out) }

    func configuration() -> TrainingConfiguration {
        var c = ResumeTests.configuration(output: out)
        c.training.maxSteps = 4
        c.training.evalSteps = nil
        c.training.earlyStopping = nil
        c.data.eval = nil
        c.output.saveSteps = 2
        c.logging.steps = 1
        return c
    }

    func metricsSteps() throws -> [Int] {
        try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONValue.parse(String($0))["step"]?.intValue }
    }

    func testAFreshRunIntoAUsedFolderIsRefusedUnlessItResumesOrOverwrites() throws {
        var first = configuration()
        first.training.maxSteps = 6  // checkpoints at 2 and 4; the last step is the final export
        _ = try Trainer(configuration: first, log: { _ in }).train()
        try Data("mine".utf8).write(to: URL(fileURLWithPath: out + "/notes.txt"))
        let firstRun = try metricsSteps()
        XCTAssertThrowsError(try Trainer(configuration: configuration(), log: { _ in })) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("output.dir: '\(out)' holds an earlier run (final, latest, metrics.jsonl, global_step2, global_step4)"), text)
            XCTAssertTrue(text.contains("set resume: auto to continue it, or output.overwrite: true"), text)
        }
        var again = configuration()
        again.output.overwrite = true
        _ = try Trainer(configuration: again, log: { _ in }).train()
        // The earlier run is gone (its step 4 checkpoint and its metrics), the user's file is not.
        XCTAssertEqual(try metricsSteps(), firstRun.filter { $0 <= 4 })
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/global_step4"))
        XCTAssertEqual(try String(contentsOfFile: out + "/latest", encoding: .utf8), "global_step2\n")
        XCTAssertEqual(try String(contentsOfFile: out + "/notes.txt", encoding: .utf8), "mine")
        // resume: auto continues it.
        var resumed = configuration()
        resumed.resume = "auto"
        resumed.training.maxSteps = 6
        XCTAssertEqual(try Trainer(configuration: resumed, log: { _ in }).train().steps, 6)
    }

    func testResumeAutoFailsLoudlyOnAnUnusableLatest() throws {
        _ = try Trainer(configuration: configuration(), log: { _ in }).train()
        var c = configuration()
        c.resume = "auto"
        let latest = out + "/latest"
        func refused(_ expected: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try Trainer(configuration: c, log: { _ in }).train(), file: file, line: line) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)", file: file, line: line)
            }
        }
        for (content, expected) in [("\n", "is empty"), ("../../etc\n", "names '../../etc', which is not a checkpoint folder of this output folder"),
                                    ("global_step99\n", "names 'global_step99', but \(out)/global_step99/engine_state.json does not exist")] {
            try Data(content.utf8).write(to: URL(fileURLWithPath: latest))
            refused("resume: auto: \(latest) " + expected)
        }
        try FileManager.default.removeItem(atPath: latest)
        try FileManager.default.createDirectory(atPath: latest, withIntermediateDirectories: false)
        refused("resume: auto: \(latest) cannot be read: a folder, expected a file")
        try FileManager.default.removeItem(atPath: latest)
        try Data("global_step2\n".utf8).write(to: URL(fileURLWithPath: latest))
        // A negative step in the checkpoint it names.
        let state = out + "/global_step2/engine_state.json"
        var o = try XCTUnwrap(JSONValue.read(path: state).objectValue)
        o["global_step"] = .int(-3)
        try JSONValue.object(o).write(to: state)
        refused("\(state): global_step and data_position must be non-negative, got global_step -3")
    }

    func testStagingFoldersOfDeadRunsAreRemovedAndNothingElse() throws {
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let names = ["global_step2.tmp-\(dead.processIdentifier)", "final.old-\(dead.processIdentifier)",
                     "global_step2.tmp-1",  // PID 1 is alive: another run may be writing it
                     "mine.tmp-\(dead.processIdentifier)", "global_stepX.tmp-\(dead.processIdentifier)"]
        for n in names { try FileManager.default.createDirectory(atPath: out + "/" + n, withIntermediateDirectories: false) }
        var logged: [String] = []
        _ = try Trainer(configuration: configuration(), log: { logged.append($0) }).train()
        let left = try FileManager.default.contentsOfDirectory(atPath: out)
        XCTAssertFalse(left.contains(names[0]) || left.contains(names[1]), "\(left)")
        XCTAssertTrue(Set(names[2...]).isSubset(of: Set(left)), "\(left)")
        XCTAssertTrue(logged.contains { $0.contains("removed unfinished staging folders") && $0.contains(names[0]) }, "\(logged)")
    }

    func testKeepLastNeverRemovesTheNewCheckpointOrHigherOnes() throws {
        for s in [2, 4, 6, 8] { try FileManager.default.createDirectory(atPath: out + "/global_step\(s)", withIntermediateDirectories: false) }
        // A resume from step 2 has just saved step 4; 6 and 8 are the earlier timeline's.
        XCTAssertEqual(OutputFolder.checkpointsBeyond(keep: 1, current: 4, in: out), ["global_step2"])
        XCTAssertEqual(OutputFolder.checkpointsBeyond(keep: 2, current: 4, in: out), [])
        XCTAssertEqual(OutputFolder.checkpointsBeyond(keep: 2, current: 8, in: out), ["global_step2", "global_step4"])
    }
}
