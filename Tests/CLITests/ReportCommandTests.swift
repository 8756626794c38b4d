import Foundation
import XCTest

/// `swift-finetune report OUTPUT_DIR` rebuilds report.html from the folder's files, and names the
/// problem when there is nothing to build from.
final class ReportCommandTests: XCTestCase {
    func testReportRebuildsFromMetrics() throws {
        let dir = NSTemporaryDirectory() + "sf-report-cli-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let missing = try CLI.run(["report", dir])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("no metrics.jsonl"), missing.stderr)
        try Data(#"{"step":1,"loss":2.0,"learning_rate":0.001,"grad_norm":1.0,"tokens_per_second":100}"#.utf8 + [10])
            .write(to: URL(fileURLWithPath: dir + "/metrics.jsonl"))
        let r = try CLI.run(["report", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, dir + "/report.html\n")
        XCTAssertTrue(try String(contentsOfFile: dir + "/report.html", encoding: .utf8).contains("<svg"))
        XCTAssertNotEqual(try CLI.run(["report"]).status, 0, "needs the folder")
    }
}
