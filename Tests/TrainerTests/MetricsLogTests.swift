import Foundation
import XCTest
import Formats
@testable import Trainer

/// metrics.jsonl stays JSON when a number is not finite (null, as Docs/RECIPES.md says), and metrics.csv
/// leaves such cells empty; both sinks receive the same records through MetricsLog.
final class MetricsLogTests: XCTestCase {
    func testNonFiniteNumbersAreNullInJSONLAndEmptyInCSV() throws {
        let dir = NSTemporaryDirectory() + "sf-metrics-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let log = try MetricsLog(directory: dir, jsonl: true, csv: true)
            XCTAssertEqual(log.sinks.count, 2)
            log.log(StepMetrics(step: 1, epoch: 0.5, loss: .nan, learningRate: 1e-3, gradNorm: .infinity, tokens: 10,
                                tokensPerSecond: 5, lossScale: 65536, skipped: true, elapsedSeconds: 1))
            log.log(EvalMetrics(step: 1, evalLoss: .infinity, evalTokens: 4))
        }
        let text = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        XCTAssertFalse(text.contains("NaN") || text.contains("Infinity") || text.contains("nan") || text.contains("inf"), text)
        let lines = try text.split(separator: "\n").map { try JSONValue.parse(String($0)) }
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(lines[0]["loss"], .null)
        XCTAssertEqual(lines[0]["grad_norm"], .null)
        XCTAssertEqual(lines[0]["loss_scale"], .double(65536))
        XCTAssertEqual(lines[0]["skipped"], .bool(true))
        XCTAssertEqual(lines[1]["eval_loss"], .null)
        XCTAssertEqual(lines[1]["eval_perplexity"], .null)
        let csv = try String(contentsOfFile: dir + "/metrics.csv", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(csv[0], "step,epoch,loss,learning_rate,grad_norm,tokens,tokens_per_second,loss_scale,skipped,elapsed_seconds,eval_loss")
        XCTAssertEqual(csv[1], "1,0.5,,0.001,,10,5.0,65536.0,1,1.0,")
        XCTAssertEqual(csv[2], "1,,,,,,,,,,")
    }
}
