import Foundation
import XCTest
import Engine
import Formats
import Models
@testable import Trainer

/// Checkpoint and resume: a run stopped after a checkpoint and resumed gives exactly the losses and
/// weights of an uninterrupted run; `latest` only ever names a complete checkpoint.
final class ResumeTests: XCTestCase {
    final class Losses: TrainerCallback {
        var byStep: [Int: Double] = [:]
        var stopAt: Int?
        func trainer(didStep m: StepMetrics) { byStep[m.step] = m.loss }
        func shouldStop(after m: StepMetrics) -> Bool { stopAt.map { m.step >= $0 } ?? false }
    }

    func configuration(output: String) -> TrainingConfiguration {
        let root = TrainerAPITests.root
        var c = TrainingConfiguration(
            model: ModelSource(initialize: .init(config: root + "/Recipes/models/quickstart/config.json", seed: 0,
                                                 tokenizer: root + "/Tokenizers/smollm")),
            data: DataOptions(train: .init(path: root + "/Recipes/data/quickstart_chat.jsonl", format: .chat),
                              eval: .init(split: 0.05), maxSeqLen: 64, packing: true),
            output: OutputOptions(dir: output))
        c.training.maxSteps = 10
        c.training.microBatchSize = 2
        c.training.gradientAccumulationSteps = 2
        c.training.learningRate = 3e-3
        c.training.evalSteps = 5
        c.training.earlyStopping = .init(patience: 5)
        c.scheduler.type = .cosine
        c.scheduler.warmupSteps = 3
        c.optimizer.weightDecay = 0.1
        c.output.saveSteps = 5
        c.logging.progress = .none
        return c
    }

    func testResumedRunIsBitIdenticalToAnUninterruptedOne() throws {
        let a = NSTemporaryDirectory() + "sf-resume-a-\(getpid())", b = NSTemporaryDirectory() + "sf-resume-b-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: a); try? FileManager.default.removeItem(atPath: b) }

        let whole = try Trainer(configuration: configuration(output: a), log: { _ in })
        let wholeLosses = Losses()
        whole.addCallback(wholeLosses)
        _ = try whole.train()

        let first = try Trainer(configuration: configuration(output: b), log: { _ in })
        let firstLosses = Losses()
        firstLosses.stopAt = 5
        first.addCallback(firstLosses)
        XCTAssertEqual(try first.train().steps, 5)
        XCTAssertEqual(try String(contentsOfFile: b + "/latest", encoding: .utf8), "global_step5\n")
        for file in ["engine_state.json", "zero_rank0_optim_states.safetensors", "model.safetensors", "config.json", "tokenizer.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: b + "/global_step5/" + file), file)
        }

        var c = configuration(output: b)
        c.resume = "auto"
        let second = try Trainer(configuration: c, log: { _ in })
        let secondLosses = Losses()
        second.addCallback(secondLosses)
        XCTAssertEqual(try second.train().steps, 10)
        XCTAssertEqual(Array(secondLosses.byStep.keys).sorted(), Array(6...10), "continues at step 6")
        for step in 1...5 { XCTAssertEqual(firstLosses.byStep[step], wholeLosses.byStep[step], "step \(step)") }
        // Exact: same data position, schedule step, optimizer moments and master weights.
        for step in 6...10 { XCTAssertEqual(secondLosses.byStep[step], wholeLosses.byStep[step], "step \(step)") }
        XCTAssertEqual(Array(second.model.params.floats), Array(whole.model.params.floats))
        XCTAssertEqual(second.engine.stepsTaken, 10)
    }

    func testResumeRejectsAnotherModelsCheckpoint() throws {
        let out = NSTemporaryDirectory() + "sf-resume-bad-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let dir = out + "/global_step3"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try JSONValue.object(JSONObject([("global_step", .int(3)), ("layout", .array([.object(JSONObject([("name", .string("x"))]))]))]))
            .write(to: dir + "/engine_state.json")
        var c = configuration(output: out)
        c.resume = dir
        let trainer = try Trainer(configuration: c, log: { _ in })
        XCTAssertThrowsError(try trainer.train()) {
            XCTAssertTrue("\($0)".contains("does not belong to this model"), "\($0)")
        }
    }
}
