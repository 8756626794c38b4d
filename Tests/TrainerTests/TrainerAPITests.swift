import Foundation
import XCTest
import Engine
import Formats
import Models
@testable import Trainer

/// The Trainer driven from Swift code, as the README shows: callbacks, metrics.jsonl, evaluation, early
/// stopping, checkpoints with `latest` and keep_last, and an exported folder that loads back.
final class TrainerAPITests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    final class Recorder: TrainerCallback {
        var steps: [StepMetrics] = [], evals: [EvalMetrics] = [], saves: [String] = []
        var stopAt: Int?
        func trainer(didStep m: StepMetrics) { steps.append(m) }
        func trainer(didEvaluate m: EvalMetrics) { evals.append(m) }
        func trainer(didSave checkpoint: String, step: Int) { saves.append(checkpoint) }
        func shouldStop(after m: StepMetrics) -> Bool { stopAt.map { m.step >= $0 } ?? false }
    }

    func configuration(output: String) -> TrainingConfiguration { Self.configuration(output: output) }

    static func configuration(output: String) -> TrainingConfiguration {
        var c = TrainingConfiguration(
            model: ModelSource(initialize: .init(config: Self.root + "/Recipes/models/quickstart/config.json", seed: 0,
                                                 tokenizer: Self.root + "/Tokenizers/smollm")),
            data: DataOptions(train: .init(path: Self.root + "/Recipes/data/quickstart_chat.jsonl", format: .chat),
                              eval: .init(split: 0.05), maxSeqLen: 96, packing: true),
            output: OutputOptions(dir: output))
        c.training.maxSteps = 12
        c.training.microBatchSize = 4
        c.training.learningRate = 3e-3
        c.training.evalSteps = 4
        c.output.saveSteps = 4
        c.output.keepLast = 1
        c.logging.progress = .none
        return c
    }

    func testTrainFromCodeWithCallbacksLogsAndCheckpoints() throws {
        let out = NSTemporaryDirectory() + "sf-trainer-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let trainer = try Trainer(configuration: configuration(output: out), log: { _ in })
        let recorder = Recorder()
        trainer.addCallback(recorder)
        let summary = try trainer.train()
        XCTAssertEqual(summary.steps, 12)
        XCTAssertEqual(recorder.steps.map(\.step), Array(1...12))
        XCTAssertEqual(recorder.evals.map(\.step), [4, 8, 12])
        XCTAssertLessThan(recorder.steps.last!.loss, recorder.steps.first!.loss, "train loss falls")
        XCTAssertLessThan(recorder.evals.last!.evalLoss, recorder.evals.first!.evalLoss, "eval loss falls")
        XCTAssertEqual(recorder.saves.count, 2, "steps 4 and 8 (the last step exports instead)")

        // metrics.jsonl: one object per optimizer step with the documented keys, plus eval records.
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let records = try lines.map { try JSONValue.parse(String($0)) }
        let stepRecords = records.filter { $0["loss"] != nil }
        XCTAssertEqual(stepRecords.count, 12)
        for key in ["step", "loss", "learning_rate", "grad_norm", "tokens", "tokens_per_second"] {
            XCTAssertNotNil(stepRecords[0][key], key)
        }
        XCTAssertEqual(records.filter { $0["eval_loss"] != nil }.count, 4, "before training and at steps 4, 8, 12")

        // keep_last 1: only global_step8 remains, and latest names it.
        let entries = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("global_step") }
        XCTAssertEqual(entries, ["global_step8"])
        XCTAssertEqual(try String(contentsOfFile: out + "/latest", encoding: .utf8), "global_step8\n")

        // The exported folder is a Hugging Face model folder that loads back with the trained weights.
        let reloaded = try TransformerModel.load(directory: summary.exportedModel)
        XCTAssertEqual(Array(reloaded.params.floats), Array(trainer.model.params.floats))
        for file in ["config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: summary.exportedModel + "/" + file), file)
        }
    }

    func testCallbackCanStopAndEarlyStoppingStops() throws {
        let out = NSTemporaryDirectory() + "sf-trainer-stop-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var c = configuration(output: out)
        c.output.saveSteps = nil
        let trainer = try Trainer(configuration: c, log: { _ in })
        let recorder = Recorder()
        recorder.stopAt = 3
        trainer.addCallback(recorder)
        XCTAssertEqual(try trainer.train().steps, 3)

        var stopper = EarlyStopping(patience: 2, minDelta: 0.01)
        XCTAssertFalse(stopper.record(evalLoss: 3.0))
        XCTAssertFalse(stopper.record(evalLoss: 2.5))
        XCTAssertFalse(stopper.record(evalLoss: 2.495), "improvement below min_delta counts as none")
        XCTAssertTrue(stopper.record(evalLoss: 2.6))
    }

    func testClearErrorsForUnsupportedOrBrokenSetups() throws {
        var c = configuration(output: NSTemporaryDirectory() + "sf-unused")
        c.engine.pipeline.stages = 2
        XCTAssertThrowsError(try Trainer(configuration: c, log: { _ in })) {
            XCTAssertTrue("\($0)".contains("pipeline"), "\($0)")
        }
        for (change, message) in [({ (c: inout TrainingConfiguration) in c.logging.tensorboardJobName = "a/b" }, "logging.tensorboard_job_name"),
                                  ({ (c: inout TrainingConfiguration) in c.deepspeed = "ds.json" }, "deepspeed: ds.json: cannot read"),
                                  ({ (c: inout TrainingConfiguration) in c.training.trainBatchSize = 7 }, "train_batch_size 7 ≠ micro_batch_size 4")] {
            var bad = configuration(output: NSTemporaryDirectory() + "sf-unused")
            change(&bad)
            XCTAssertThrowsError(try Trainer(configuration: bad, log: { _ in })) {
                XCTAssertTrue("\($0)".contains(message), "\($0)")
            }
        }
        c = configuration(output: NSTemporaryDirectory() + "sf-unused")
        c.data.train = .init(path: Self.root + "/Recipes/data/quickstart_chat.jsonl", format: .text)
        XCTAssertThrowsError(try Trainer(configuration: c, log: { _ in })) {
            XCTAssertTrue("\($0)".contains("quickstart_chat.jsonl:1"), "\($0)")
        }
    }
}

final class ProgressAndLogTests: XCTestCase {
    func testPlainProgressLinesAndETA() {
        var lines: [String] = []
        let p = ProgressDisplay(style: .plain, totalSteps: 20, output: { lines.append($0) })
        for step in 1...20 {
            p.update(StepMetrics(step: step, epoch: 0, loss: 2, learningRate: 1e-3, gradNorm: 0.5, tokens: 100,
                                 tokensPerSecond: 1000, elapsedSeconds: Double(step)), logEvery: 10)
        }
        XCTAssertEqual(lines.count, 3, "steps 1, 10 and 20")
        XCTAssertTrue(lines[1].contains("step 10/20  loss 2.0000  lr 1.000e-03  1000 tok/s  eta 00:10  grad_norm 0.500"), lines[1])
        XCTAssertEqual(ProgressDisplay.eta(seconds: 3725), "1:02:05")
    }
}
