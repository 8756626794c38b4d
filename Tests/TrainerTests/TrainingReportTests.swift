import Foundation
import XCTest
import Formats
@testable import Trainer

/// report.html from a run's files: every curve that has data, the recipe (escaped), the profile's bars,
/// nothing fetched from anywhere; a half-written last line (a running run) is left out, a broken line
/// elsewhere is an error naming it.
final class TrainingReportTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "sf-report-\(getpid())-\(name.hashValue)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/" + name))
    }

    func testReportHasEveryCurveTheRecipeAndTheProfile() throws {
        var lines: [String] = [#"{"step":0,"eval_loss":3.5,"eval_perplexity":33.1,"eval_tokens":10}"#]
        for s in 1...6 {
            let loss = s == 3 ? "null" : String(4.0 - 0.25 * Double(s))
            lines.append(#"{"step":\#(s),"epoch":0.1,"loss":\#(loss),"learning_rate":\#(Double(s) * 1e-4),"grad_norm":1.5,"tokens":100,"tokens_per_second":900,"loss_scale":65536,"skipped":\#(s == 3),"elapsed_seconds":\#(s),"time_ms":{"forward":10,"backward":20,"communication":1,"optimizer":3,"other":0.5,"step":34.5}}"#)
        }
        lines.append(#"{"step":6,"eval_loss":2.5,"eval_perplexity":12.2,"eval_tokens":10}"#)
        try write("metrics.jsonl", lines.joined(separator: "\n") + "\n" + #"{"step":7,"epo"#)
        try write("recipe.yaml", "training: {learning_rate: 3.0e-4}  # <b>not markup</b>\n")
        try write("flops_profile.json", #"{"step":2,"fwd_flops":1000000,"bwd_flops":2000000,"step_latency_ms":10,"achieved_flops":3e8,"sgemm_peak_flops":1e11,"mfu":0.003,"modules":[{"name":"step","depth":0,"params":10,"fwd_flops":1000000,"bwd_flops":2000000,"latency_ms":10},{"name":"embedding","depth":1,"params":5,"fwd_flops":0,"bwd_flops":0,"latency_ms":1},{"name":"block 0","depth":2,"params":5,"fwd_flops":1000000,"bwd_flops":2000000,"latency_ms":8},{"name":"block 0 mlp","depth":3,"params":5,"fwd_flops":600000,"bwd_flops":1200000,"latency_ms":null}]}"#)
        let run = try TrainingReport.read(outputDir: dir)
        XCTAssertEqual(run.steps.count, 6, "the half-written step 7 is left out")
        XCTAssertEqual(run.evals.count, 2)
        let path = try TrainingReport.write(outputDir: dir)
        let html = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, 6 + 2, "loss, lr, grad norm, tokens/s, loss scale, step time; two bar charts")
        XCTAssertEqual(html.components(separatedBy: "<polyline").count - 1, 5 + 5, "one line each, five in the step-time chart")
        XCTAssertEqual(html.components(separatedBy: "<circle").count - 1, 2, "the two evaluations")
        XCTAssertTrue(html.contains("&lt;b&gt;not markup&lt;/b&gt;"), "the recipe is escaped")
        XCTAssertTrue(html.contains("latency per module (ms)") && html.contains("block 0 mlp") && html.contains("MFU 0.3%"))
        XCTAssertTrue(html.contains("1 step(s) skipped by the fp16 loss scaler"))
        XCTAssertFalse(html.contains("<script") || html.contains("src=") || html.contains("href=") || html.contains("@import"), "self-contained")
        // The loss curve leaves out the null loss of the skipped step: 5 points.
        let loss = try XCTUnwrap(html.range(of: "<polyline").map { html[$0.upperBound...] }?.components(separatedBy: "points=\"")[1].split(separator: "\"")[0])
        XCTAssertEqual(loss.split(separator: " ").count, 5)
    }

    func testBrokenOrMissingMetricsAreNamedErrors() throws {
        XCTAssertThrowsError(try TrainingReport.read(outputDir: dir)) { XCTAssertTrue("\($0)".contains("no metrics.jsonl"), "\($0)") }
        try write("metrics.jsonl", "{\"step\":1,\"loss\":2}\n{oops\n{\"step\":2,\"loss\":1}\n")
        XCTAssertThrowsError(try TrainingReport.read(outputDir: dir)) { XCTAssertTrue("\($0)".contains("metrics.jsonl:2: not a metrics record"), "\($0)") }
        try write("metrics.jsonl", "{\"loss\":2}\n")
        XCTAssertThrowsError(try TrainingReport.read(outputDir: dir)) { XCTAssertTrue("\($0)".contains("metrics.jsonl:1: not a metrics record: no 'step'"), "\($0)") }
    }

    func testEmptyRunStillRenders() throws {
        try write("metrics.jsonl", "")
        let html = TrainingReport.html(try TrainingReport.read(outputDir: dir), title: dir)
        XCTAssertTrue(html.contains("no data yet") && html.contains("no flops_profile.json"))
    }
}
