import Foundation
import XCTest
import Distributed
import Kernels
import Models
import Tensors
@testable import Engine

/// bf16 and fp16 training (MixedPrecision.swift): every ZeRO stage does the same arithmetic, the result
/// stays near f32 without equalling it, and fp16's overflow handling is DeepSpeed's: an overflowing step
/// (flag agreed across ranks) changes nothing but the loss scaler.
final class MixedPrecisionTests: XCTestCase {
    typealias Z = ZeROEquivalenceTests
    private var savedThreads = 1

    override func setUp() {
        savedThreads = Parallel.threads
        Parallel.setThreads(1)
    }

    override func tearDown() { Parallel.setThreads(savedThreads) }

    struct Run {
        var losses: [Double] = []
        var skipped: [Bool] = []
        var scales: [Double] = []
        var weights: [Float] = []
        var moments: [Float] = []
        var stepsTaken = 0
    }

    /// 4 AdamW steps, one micro-batch of this rank's slice of 8 sequences per step. `inject(step, rank)`
    /// poisons that rank's gradients after backward (an overflow); `skipBatch` leaves a step's batch out.
    func train(_ precision: EngineOptions.Precision, stage: Int, ranks: Int, model name: String = "llama_gqa_llama3rope",
               inject: (Int, Int)? = nil, skipBatch: Int? = nil, steps: Int = 4) throws -> [Run] {
        let path = Z.models + "/" + name
        let vocab = try TransformerModel.load(directory: path).config.vocabSize
        let batches = Z.batches(vocab: vocab, steps: steps).enumerated().filter { $0.offset != skipBatch }.map(\.element)
        return try ThreadCommunicator.run(worldSize: ranks) { comm -> Run in
            let model = try TransformerModel.load(directory: path)
            var options = EngineOptions()
            options.zeroStage = stage
            options.precision = precision
            let engine = try TrainingEngine(model: model, options: options,
                                            optimizer: .adamw(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1),
                                            maxTokens: 64, communicator: comm)
            var run = Run()
            for (i, batch) in batches.enumerated() {
                let labels = batch.reduce(0) { $0 + $1.targets.filter { $0 != CrossEntropy.ignoreIndex }.count }
                let mine = batch[(comm.rank * 8 / ranks)..<((comm.rank + 1) * 8 / ranks)]
                engine.zeroGradients()
                let lossSum = try comm.allReduce(try Z.microStep(engine, mine, normalizer: Float(labels)), op: .sum)
                if let (step, rank) = inject, step == i, rank == comm.rank { Self.poison(engine) }
                run.scales.append(engine.lossScale)
                let result = try engine.step(lr: 3e-3, maxGradNorm: 0.5)
                run.losses.append(lossSum / Double(labels))
                run.skipped.append(result.skipped)
            }
            try engine.gatherFullParameters()
            run.weights = Z.values(model.params)
            run.moments = Z.values(engine.firstMoment) + Z.values(engine.secondMoment!)
            run.stepsTaken = engine.stepsTaken
            return run
        }
    }

    /// One gradient element of this rank becomes +inf, where the engine keeps gradients for the step.
    static func poison(_ engine: TrainingEngine) {
        switch engine.gradients {
        case .accumulatedHalf(let h, _, _): h.halves[h.count / 2] = engine.computeFormat == .bf16 ? 0x7F80 : 0x7C00
        case .reduceScattered(let shards, _): shards.floats[0] = .infinity
        case .full: XCTFail("mixed precision never keeps f32 full-size gradients")
        }
    }

    func testEveryStageDoesTheSameArithmeticOnOneRank() throws {
        let f32 = try train(.f32, stage: 0, ranks: 1)[0]
        for precision in [EngineOptions.Precision.bf16, .fp16] {
            let reference = try train(precision, stage: 0, ranks: 1)[0]
            XCTAssertEqual(reference.skipped, [false, false, false, false])
            // Rounding happened (the run is not f32's) but stays close: final weights within 1e-2 relative L2.
            let gap = Z.relativeL2(reference.weights, f32.weights)
            XCTAssertGreaterThan(gap, 1e-7, "\(precision) must round")
            XCTAssertLessThan(gap, 1e-2, "\(precision) vs f32")
            for s in 0..<4 { XCTAssertEqual(reference.losses[s], f32.losses[s], accuracy: 1e-2 * f32.losses[s]) }
            for stage in 1...3 {
                let run = try train(precision, stage: stage, ranks: 1)[0]
                // One micro-batch per step and one rank: the same roundings in the same order, bit for bit
                // (a last-bit difference in a master weight would flip 16-bit roundings and show).
                XCTAssertEqual(run.losses, reference.losses, "\(precision) stage \(stage)")
                XCTAssertTrue(run.weights == reference.weights, "\(precision) stage \(stage): weights differ")
                XCTAssertTrue(run.moments == reference.moments, "\(precision) stage \(stage): optimizer state differs")
            }
            print("\(precision): final weights rel L2 vs f32 \(gap); loss[3] \(reference.losses[3]) vs \(f32.losses[3])")
        }
    }

    func testStagesAgreeOnTwoRanks() throws {
        for precision in [EngineOptions.Precision.bf16, .fp16] {
            let reference = try train(precision, stage: 0, ranks: 2)
            XCTAssertTrue(reference[0].weights == reference[1].weights, "\(precision): ranks disagree")
            let oneRank = try train(precision, stage: 0, ranks: 1)[0]
            // Two ranks round each rank's gradient before the 16-bit sum: near, not equal, to one rank.
            XCTAssertLessThan(Z.relativeL2(reference[0].weights, oneRank.weights), 1e-2)
            for stage in 1...3 {
                let runs = try train(precision, stage: stage, ranks: 2)
                for run in runs {
                    // The same 16-bit gradient sums; only the f64 norm's summation order differs (partial
                    // sums per rank): 1e-6 relative.
                    XCTAssertLessThan(Z.relativeL2(run.weights, reference[0].weights), 1e-6, "\(precision) stage \(stage)")
                    XCTAssertTrue(run.weights == runs[0].weights, "\(precision) stage \(stage): every rank ends with the same weights")
                }
            }
        }
    }

    /// An overflow on one rank only: every rank skips the step (MAX of the flags), nothing but the
    /// scaler moves, and the run continues exactly as if that batch had never been seen (the scale stays
    /// 2^16 through the first overflow: DeepSpeed's hysteresis of 2).
    func testInjectedOverflowIsSkippedOnEveryRank() throws {
        for stage in [0, 2] {
            let poisoned = try train(.fp16, stage: stage, ranks: 2, inject: (2, 1))
            let without = try train(.fp16, stage: stage, ranks: 2, skipBatch: 2, steps: 4)
            for (r, run) in poisoned.enumerated() {
                XCTAssertEqual(run.skipped, [false, false, true, false], "stage \(stage) rank \(r)")
                XCTAssertEqual(run.stepsTaken, 3)
                XCTAssertEqual(run.scales, [65536, 65536, 65536, 65536])
                XCTAssertTrue(run.weights == without[r].weights, "stage \(stage) rank \(r): the skipped step changed the weights")
                XCTAssertTrue(run.moments == without[r].moments, "stage \(stage) rank \(r): the skipped step changed the optimizer state")
            }
        }
    }

    /// Two overflows in a row exhaust the hysteresis and halve the scale, on one rank as DeepSpeed does.
    func testRepeatedOverflowHalvesTheScale() throws {
        let run = try ThreadCommunicator.run(worldSize: 1) { comm -> [Double] in
            let model = try TransformerModel.load(directory: Z.models + "/llama_gqa_llama3rope")
            var options = EngineOptions()
            options.precision = .fp16
            let engine = try TrainingEngine(model: model, options: options, optimizer: .sgd(momentum: 0, dampening: 0, weightDecay: 0, nesterov: false),
                                            maxTokens: 64, communicator: comm)
            var scales: [Double] = []
            let seqs = Z.batches(vocab: 96, steps: 1)[0]
            for _ in 0..<3 {
                engine.zeroGradients()
                _ = try Z.microStep(engine, seqs[...], normalizer: 50)
                Self.poison(engine)
                XCTAssertTrue(try engine.step(lr: 0.1, maxGradNorm: nil).skipped)
                scales.append(engine.lossScale)
            }
            XCTAssertEqual(engine.stepsTaken, 0)
            return scales
        }[0]
        XCTAssertEqual(run, [65536, 32768, 16384])
    }

    /// Loss scale 1 = `min_loss_scale` with hysteresis 1: the first overflow cannot lower the scale, where
    /// DeepSpeed exits the run. The step throws the scaler's error as `EngineError.stepFailed` (the
    /// process goes on), leaving the scaler and the step count as they were.
    func testOverflowAtMinimumScaleIsThrownFromTheStep() throws {
        let model = try TransformerModel.load(directory: Z.models + "/llama_gqa_llama3rope")
        var options = EngineOptions()
        options.precision = .fp16
        options.lossScaler.initialScalePower = 0
        options.lossScaler.minLossScale = 1
        options.lossScaler.hysteresis = 1
        let engine = try TrainingEngine(model: model, options: options, optimizer: .sgd(momentum: 0, dampening: 0, weightDecay: 0, nesterov: false),
                                        maxTokens: 64)
        let scaler = engine.lossScaler
        engine.zeroGradients()
        _ = try Z.microStep(engine, Z.batches(vocab: 96, steps: 1)[0][...], normalizer: 50)
        Self.poison(engine)
        XCTAssertThrowsError(try engine.step(lr: 0.1, maxGradNorm: nil)) { error in
            guard case .stepFailed(let rank, let underlying) = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertEqual(rank, 0)
            XCTAssertEqual(underlying as? LossScalerError, .scaleAtMinimum(scale: 1, minLossScale: 1, iteration: 0))
        }
        XCTAssertEqual(engine.lossScaler, scaler)
        XCTAssertEqual(engine.stepsTaken, 0)
    }

    func testStateBytesFollowTheMixedPrecisionFormula() throws {
        let model = try TransformerModel.load(directory: Z.models + "/llama_gqa_llama3rope")
        let n = model.layout.totalCount
        var options = EngineOptions()
        options.precision = .bf16
        let engine = try TrainingEngine(model: model, options: options, optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                        maxTokens: 16)
        // Stage 0: f32 master, m, v (12Ψ) and 16-bit gradients (2Ψ); compute weights are rounded per use.
        XCTAssertEqual(engine.modelStateBytes, 14 * n)
    }
}
