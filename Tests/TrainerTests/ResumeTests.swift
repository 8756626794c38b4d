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

    static func configuration(output: String) -> TrainingConfiguration {
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
        try checkResume(tag: "f32") { _ in }
    }

    /// fp16 with a loss scale so large that the first steps overflow (skipped, logged, the scale halving
    /// with hysteresis 1) while a window of 2 doubles it again later: the scaler's state crosses the
    /// checkpoint. Optimizer state and master weights live on disk (NVMe offload) in the first half and
    /// in memory after the resume: the checkpoint does not depend on where state lived.
    func testFP16WithSkippedStepsAndOffloadResumesBitIdentically() throws {
        let offload = NSTemporaryDirectory() + "sf-resume-offload-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: offload) }
        let metrics = try checkResume(tag: "fp16", secondHalf: { $0.engine.offloadOptimizer = EngineOptions.Offload() }) { c in
            c.engine.precision = .fp16
            c.engine.lossScaler.initialScalePower = 18
            c.engine.lossScaler.hysteresis = 1
            c.engine.lossScaler.lossScaleWindow = 2
            c.engine.offloadOptimizer.device = .nvme
            c.engine.offloadOptimizer.path = offload
        }
        let skipped = metrics.filter { $0["skipped"]?.boolValue == true }.count
        let scales = metrics.compactMap { $0["loss_scale"]?.doubleValue }
        print("fp16 resume: skipped \(skipped) of \(metrics.count) steps; loss scales \(scales)")
        XCTAssertGreaterThan(skipped, 0, "the large initial scale must overflow")
        XCTAssertLessThan(skipped, metrics.count, "the scale must come down far enough to train")
        XCTAssertEqual(scales.count, metrics.count, "every step logs loss_scale")
    }

    /// LoRA (fresh adapter, all-linear, rsLoRA, bf16-stored base, dropout 0.1) on the tiny pretrained
    /// Llama: checkpoints are PEFT adapter folders plus engine state, and the resumed run is exact.
    func testLoRAResumesBitIdentically() throws {
        try checkResume(tag: "lora") { c in
            c.model = ModelSource(path: TrainerAPITests.root + "/Tests/Fixtures/models/smollm_chat")
            var lora = LoRAOptions(r: 4, alpha: 8, targetModules: ["all-linear"])
            lora.rslora = true
            lora.dropout = 0.1
            lora.baseDType = .bf16
            c.lora = lora
        }
    }

    /// Runs 10 steps whole, and 5 + resume 5 (with `secondHalf` changing the resumed run's settings);
    /// returns the whole run's step records from metrics.jsonl.
    @discardableResult
    func checkResume(tag: String, secondHalf: (inout TrainingConfiguration) -> Void = { _ in },
                     _ configure: (inout TrainingConfiguration) -> Void) throws -> [JSONValue] {
        let a = NSTemporaryDirectory() + "sf-resume-a-\(tag)-\(getpid())", b = NSTemporaryDirectory() + "sf-resume-b-\(tag)-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: a); try? FileManager.default.removeItem(atPath: b) }
        func configuration(output: String) -> TrainingConfiguration {
            var c = Self.configuration(output: output)
            configure(&c)
            return c
        }

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
        let lora = configuration(output: b).lora != nil
        let folder = lora ? ["adapter_model.safetensors", "adapter_config.json"] : ["model.safetensors", "config.json"]
        for file in ["engine_state.json", "zero_rank0_optim_states.safetensors", "tokenizer.json"] + folder {
            XCTAssertTrue(FileManager.default.fileExists(atPath: b + "/global_step5/" + file), file)
        }

        var c = configuration(output: b)
        secondHalf(&c)
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
        XCTAssertEqual(Array(second.engine.trainableParams.floats), Array(whole.engine.trainableParams.floats))
        if lora {
            XCTAssertFalse(FileManager.default.fileExists(atPath: b + "/global_step5/model.safetensors"), "an adapter checkpoint holds no base weights")
            XCTAssertTrue(FileManager.default.fileExists(atPath: a + "/final/adapter_model.safetensors"))
        }
        XCTAssertEqual(second.engine.stepsTaken, whole.engine.stepsTaken)
        XCTAssertEqual(second.engine.lossScaler, whole.engine.lossScaler)
        let text = try String(contentsOfFile: a + "/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONValue.parse(String($0)) }.filter { $0["loss"] != nil }
    }

    func testResumeRejectsAnotherModelsCheckpoint() throws {
        let out = NSTemporaryDirectory() + "sf-resume-bad-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let dir = out + "/global_step3"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try JSONValue.object(JSONObject([("global_step", .int(3)), ("layout", .array([.object(JSONObject([("name", .string("x"))]))]))]))
            .write(to: dir + "/engine_state.json")
        var c = Self.configuration(output: out)
        c.resume = dir
        let trainer = try Trainer(configuration: c, log: { _ in })
        XCTAssertThrowsError(try trainer.train()) {
            XCTAssertTrue("\($0)".contains("does not belong to this model"), "\($0)")
        }
    }
}
