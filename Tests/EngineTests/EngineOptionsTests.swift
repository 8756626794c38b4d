import Foundation
import XCTest
import Models
@testable import Engine

/// A Swift caller building an engine directly meets the same rules as a recipe: `TrainingEngine.init`
/// throws `EngineOptions.problems()`, every one of them, under `engine.`.
final class EngineOptionsTests: XCTestCase {
    func testEngineInitThrowsEveryOptionProblem() throws {
        let model = try TransformerModel.load(directory: ZeROEquivalenceTests.models + "/llama_gqa_llama3rope")
        var o = EngineOptions()
        o.zeroStage = 1
        o.pipeline.stages = 2
        o.offloadParam.device = .cpu
        o.precision = .fp16
        o.lossScaler.minLossScale = .nan
        XCTAssertThrowsError(try TrainingEngine(model: model, options: o, optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                                maxTokens: 16)) { error in
            guard let e = error as? ConfigurationError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.problems, o.problems().under("engine"))
            XCTAssertEqual(e.problems.map(\.keyPath), ["engine.pipeline.stages", "engine.offload_param", "engine.loss_scaler.min_loss_scale"])
            XCTAssertEqual("\(e)", """
            engine.pipeline.stages: pipeline parallelism does not combine with offload in this build
            engine.offload_param: parameter offload needs zero_stage 3 (as in DeepSpeed), got zero_stage 1
            engine.loss_scaler.min_loss_scale: is nan, expected finite and > 0 when dynamic loss scaling is enabled (loss_scale=0)
            """)
        }
        // Pipeline stages with ZeRO-2 and more is DeepSpeed's rule, reported before the offload one.
        var z = EngineOptions()
        z.zeroStage = 2
        z.pipeline.stages = 4
        XCTAssertEqual(z.problems().map(\.description), ["pipeline.stages: pipeline parallelism composes only with ZeRO stage 0 or 1 (as in DeepSpeed: ZeRO-2 and ZeRO-3 reduce gradients during backward, across the pipeline's interleaved micro-batches), zero_stage is 2"])
        // The loss scaler is only looked at when fp16 uses it.
        var bf16 = o
        bf16.precision = .bf16
        XCTAssertFalse(bf16.problems().contains { $0.keyPath.hasPrefix("loss_scaler") })
    }
}
