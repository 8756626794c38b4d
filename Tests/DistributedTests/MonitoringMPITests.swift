import Foundation
import XCTest

/// Monitoring in a real 2-rank job (mpirun, ZeRO-2): only rank 0 writes TensorBoard events, metrics and
/// report.html; at `logging.level: debug` each rank prints its own wall-clock breakdown, with the
/// gradients' reduce-scatter under communication; at `info` rank 0 alone does.
final class MonitoringMPITests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testRankZeroWritesAndEveryRankTimesAtDebug() throws {
        let dir = NSTemporaryDirectory() + "sf-monitor-mpi-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The shipped quickstart recipe, shortened, its relative paths made absolute.
        let r = Self.root
        let recipe = [r + "/Recipes/quickstart.yaml", "model.init.config=\(r)/Recipes/models/quickstart/config.json",
                      "model.init.tokenizer=\(r)/Tokenizers/smollm", "data.train.path=\(r)/Recipes/data/quickstart_chat.jsonl",
                      "training.max_steps=4", "training.micro_batch_size=2", "data.max_seq_len=64", "engine.zero_stage=2",
                      "logging={progress: none, tensorboard: true, wall_clock_breakdown: true, steps: 2, level: debug}",
                      "output.dir=\(dir)/out"]
        let run = try BoundedProcess.run(["mpirun", "-np", "2", BoundedProcess.binary] + recipe, timeout: 60)
        XCTAssertEqual(run.exitCode, 0, run.stderr)
        for rank in 0..<2 {
            let lines = run.stderr.split(separator: "\n").filter { $0.hasPrefix("[rank \(rank)] step ") && $0.contains("wall-clock breakdown") }
            XCTAssertEqual(lines.count, 2, "steps 2 and 4 on rank \(rank): \(run.stderr)")
            for line in lines {
                let rs = line.components(separatedBy: "reduce-scatter ")[1].prefix { $0 != "," }
                XCTAssertGreaterThan(Double(rs) ?? 0, 0, String(line))
            }
        }
        let events = try FileManager.default.contentsOfDirectory(atPath: dir + "/out/DeepSpeedJobName")
        XCTAssertEqual(events.filter { $0.hasPrefix("events.out.tfevents.") }.count, 1, "rank 0 alone writes events: \(events)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/report.html"))
        let steps = try String(contentsOfFile: dir + "/out/metrics.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains("\"loss\"") }
        XCTAssertEqual(steps.count, 4, "rank 0 alone writes metrics")
        XCTAssertTrue(steps.allSatisfy { $0.contains("\"time_ms\":{") }, "each step's breakdown: \(steps)")

        let info = try BoundedProcess.run(["mpirun", "-np", "2", BoundedProcess.binary] + recipe + ["logging.level=info", "output.dir=\(dir)/out2"], timeout: 60)
        XCTAssertEqual(info.exitCode, 0, info.stderr)
        let lines = info.stderr.split(separator: "\n").filter { $0.contains("wall-clock breakdown") }
        XCTAssertEqual(lines.count, 2, "rank 0 alone, steps 2 and 4: \(info.stderr)")
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("step ") })
    }
}
