import Foundation
import XCTest
import Distributed
import Kernels
import Models
import Tensors
@testable import Engine

/// Data parallel and ZeRO 1/2/3 against one rank: the same global batch of 8 sequences per optimizer
/// step split across ranks (each rank 2 accumulation micro-batches of its slice; normalizer = the global
/// label count), 5 AdamW steps with weight decay and clipping at 0.5. Per-step mean losses, gradient
/// norms and final weights must agree with the one-rank run within 1e-5 relative (only the order of
/// f32 gradient sums differs). Ranks are threads (`ThreadCommunicator`), each with its own model.
final class ZeROEquivalenceTests: XCTestCase {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models").path
    private var savedThreads = 1

    override func setUp() {
        savedThreads = Parallel.threads
        // Rank threads call BLAS concurrently: keep each call single-threaded.
        Parallel.setThreads(1)
    }

    override func tearDown() { Parallel.setThreads(savedThreads) }

    struct Sequence { var tokens: [Int32]; var targets: [Int32] }

    struct Run {
        var losses: [Double] = []
        var norms: [Double] = []
        var weights: [Float] = []
        var stateBytes = 0
    }

    /// Deterministic batches: 8 sequences of 4-13 tokens per step, the first target of each masked.
    static func batches(vocab: Int, steps: Int) -> [[Sequence]] {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((x >> 33) % UInt64(n))
        }
        return (0..<steps).map { _ in
            (0..<8).map { _ in
                let tokens = (0..<(4 + next(10))).map { _ in Int32(next(vocab)) }
                var targets = Array(tokens.dropFirst()) + [CrossEntropy.ignoreIndex]
                targets[0] = CrossEntropy.ignoreIndex
                return Sequence(tokens: tokens, targets: targets)
            }
        }
    }

    /// Sequences packed into one micro-batch: one attention span each, positions restarting at 0.
    static func packed(_ seqs: ArraySlice<Sequence>) -> (tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32]) {
        var tokens: [Int32] = [], targets: [Int32] = [], positions: [Int32] = [], spans: [AttentionSpan] = []
        for s in seqs {
            spans.append(AttentionSpan(qStart: tokens.count, qLen: s.tokens.count))
            tokens += s.tokens
            targets += s.targets
            positions += (0..<s.tokens.count).map(Int32.init)
        }
        return (tokens, positions, spans, targets)
    }

    static func microStep(_ engine: TrainingEngine, _ seqs: ArraySlice<Sequence>, normalizer: Float) throws -> Double {
        let b = packed(seqs)
        return try engine.microStep(tokens: b.tokens, positions: b.positions, spans: b.spans, targets: b.targets, normalizer: normalizer).lossSum
    }

    /// `adapt` attaches an adapter to each rank's model (the run's weights are then the adapter's);
    /// `baseDType` is where its frozen base is kept.
    func train(model name: String, stage: Int, ranks: Int, checkpointing: Bool = false, frozen: Set<String> = [],
               adapt: ((TransformerModel) throws -> Void)? = nil, baseDType: DType = .f32) throws -> [Run] {
        let path = Self.models + "/" + name
        let vocab = try TransformerModel.load(directory: path).config.vocabSize
        let batches = Self.batches(vocab: vocab, steps: 5)
        return try ThreadCommunicator.run(worldSize: ranks) { comm -> Run in
            let model = try TransformerModel.load(directory: path)
            try adapt?(model)
            let base = model.adapter != nil && baseDType == .f32 ? Self.values(model.params) : []
            var options = EngineOptions()
            options.zeroStage = stage
            options.activationCheckpointing = checkpointing
            let engine = try TrainingEngine(model: model, options: options,
                                            optimizer: .adamw(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1),
                                            frozen: frozen, frozenBaseDType: baseDType, maxTokens: 64, communicator: comm)
            var run = Run()
            for batch in batches {
                let labels = batch.reduce(0) { $0 + $1.targets.filter { $0 != CrossEntropy.ignoreIndex }.count }
                let mine = batch[(comm.rank * 8 / ranks)..<((comm.rank + 1) * 8 / ranks)]
                let half = mine.startIndex + mine.count / 2
                engine.zeroGradients()
                var lossSum = try Self.microStep(engine, mine[mine.startIndex..<half], normalizer: Float(labels))
                lossSum += try Self.microStep(engine, mine[half...], normalizer: Float(labels))
                lossSum = try comm.allReduce(lossSum, op: .sum)
                let result = try engine.step(lr: 3e-3, maxGradNorm: 0.5)
                run.losses.append(lossSum / Double(labels))
                run.norms.append(result.gradNorm!)
            }
            try engine.gatherFullParameters()
            run.weights = Self.values(engine.trainableParams)
            run.stateBytes = engine.modelStateBytes
            if !base.isEmpty { XCTAssertTrue(Self.values(model.params) == base, "the frozen base never moves") }
            return run
        }
    }

    /// A copy of a buffer's floats; the argument keeps the buffer alive while they are read.
    static func values(_ buffer: FlatBuffer) -> [Float] { Array(buffer.floats) }

    static func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for i in a.indices { num += Double(a[i] - b[i]) * Double(a[i] - b[i]); den += Double(b[i]) * Double(b[i]) }
        return (num / den).squareRoot()
    }

    func checkAllStages(model name: String) throws {
        let reference = try train(model: name, stage: 0, ranks: 1)[0]
        XCTAssertGreaterThan(reference.norms[0], 0.5, "clipping must be active in the first step")
        let initial = Self.values(try TransformerModel.load(directory: Self.models + "/" + name).params)
        XCTAssertGreaterThan(Self.relativeL2(reference.weights, initial), 1e-3, "the steps must move the weights far beyond the tolerance")
        for (stage, ranks) in [(0, 2), (1, 2), (2, 2), (3, 2), (0, 4), (1, 4), (2, 4), (3, 4), (3, 1)] {
            let runs = try train(model: name, stage: stage, ranks: ranks)
            let label = "\(name) stage \(stage) on \(ranks) ranks"
            for run in runs {
                for s in 0..<5 {
                    XCTAssertEqual(run.losses[s], reference.losses[s], accuracy: 1e-5 * reference.losses[s], "\(label): loss of step \(s)")
                    XCTAssertEqual(run.norms[s], reference.norms[s], accuracy: 1e-5 * reference.norms[s], "\(label): grad norm of step \(s)")
                }
                let rel = Self.relativeL2(run.weights, reference.weights)
                XCTAssertLessThan(rel, 1e-5, "\(label): final weights")
                XCTAssertEqual(run.weights, runs[0].weights, "\(label): every rank ends with the same weights")
            }
            let maxAbs = zip(runs[0].weights, reference.weights).map { abs($0 - $1) }.max()!
            print("\(label): loss[4] \(runs[0].losses[4]) vs \(reference.losses[4]); weights rel L2 \(Self.relativeL2(runs[0].weights, reference.weights)), max abs \(maxAbs)")
        }
    }

    /// Untied LM head (group L+1 holds lm_head), GQA, llama3 RoPE.
    func testUntiedModelAllStagesMatchOneRank() throws {
        try checkAllStages(model: "llama_gqa_llama3rope")
    }

    /// Tied LM head: the embedding group is used by the head phase and receives gradients twice.
    func testTiedModelAllStagesMatchOneRank() throws {
        try checkAllStages(model: "smollm_chat")
    }

    /// Frozen tensors (the embedding, one MLP weight) and activation checkpointing (backward re-runs
    /// each block's forward, so ZeRO-3 gathers it for that too), stages 0-3 on 2 ranks against 1 rank.
    func testFrozenAndCheckpointedStagesMatchOneRank() throws {
        let name = "llama_gqa_llama3rope"
        let frozen: Set<String> = ["model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight"]
        let reference = try train(model: name, stage: 0, ranks: 1, checkpointing: true, frozen: frozen)[0]
        let model = try TransformerModel.load(directory: Self.models + "/" + name)
        let initial = Self.values(model.params)
        for f in frozen {
            let r = model.layout[f]!.range
            XCTAssertEqual(Array(reference.weights[r]), Array(initial[r]), "\(f) must not move")
        }
        for stage in 0...3 {
            let runs = try train(model: name, stage: stage, ranks: 2, checkpointing: true, frozen: frozen)
            for run in runs {
                for s in 0..<5 {
                    XCTAssertEqual(run.losses[s], reference.losses[s], accuracy: 1e-5 * reference.losses[s], "stage \(stage): loss of step \(s)")
                    XCTAssertEqual(run.norms[s], reference.norms[s], accuracy: 1e-5 * reference.norms[s], "stage \(stage): norm of step \(s)")
                }
                XCTAssertLessThan(Self.relativeL2(run.weights, reference.weights), 1e-5, "stage \(stage): final weights")
                for f in frozen {
                    let r = model.layout[f]!.range
                    XCTAssertEqual(Array(run.weights[r]), Array(initial[r]), "stage \(stage): \(f) must not move")
                }
            }
        }
    }

    /// A rank with no tokens in a micro-step still takes part in ZeRO-2/3's per-group collectives.
    func testEmptyRankMicroStepStage3() throws {
        let path = Self.models + "/llama_gqa_llama3rope"
        let seqs = Self.batches(vocab: 96, steps: 1)[0]
        let labels = seqs.reduce(0) { $0 + $1.targets.filter { $0 != CrossEntropy.ignoreIndex }.count }
        var options = EngineOptions()
        let reference = try ThreadCommunicator.run(worldSize: 1) { comm -> [Float] in
            let model = try TransformerModel.load(directory: path)
            let engine = try TrainingEngine(model: model, options: options, optimizer: .sgd(momentum: 0, dampening: 0, weightDecay: 0, nesterov: false),
                                            maxTokens: 128, communicator: comm)
            _ = try Self.microStep(engine, seqs[...], normalizer: Float(labels))
            _ = try engine.step(lr: 0.1, maxGradNorm: nil)
            return Self.values(model.params)
        }[0]
        options.zeroStage = 3
        let runs = try ThreadCommunicator.run(worldSize: 2) { comm -> [Float] in
            let model = try TransformerModel.load(directory: path)
            let engine = try TrainingEngine(model: model, options: options, optimizer: .sgd(momentum: 0, dampening: 0, weightDecay: 0, nesterov: false),
                                            maxTokens: 128, communicator: comm)
            _ = try Self.microStep(engine, comm.rank == 0 ? seqs[...] : seqs[0..<0], normalizer: Float(labels))
            _ = try engine.step(lr: 0.1, maxGradNorm: nil)
            try engine.gatherFullParameters()
            return Self.values(model.params)
        }
        // Identical arithmetic (rank 1 adds exact zeros): tolerance 0 up to the SGD update's rounding.
        for run in runs { XCTAssertLessThan(Self.relativeL2(run, reference), 1e-7) }
    }

    // MARK: LoRA

    static let peftAdapter = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/lora/smollm_chat/adapter").path

    static func attachPEFTAdapter(_ model: TransformerModel) throws {
        model.adapter = try LoRAAdapter.load(directory: peftAdapter, model: model)
    }

    /// LoRA training (a PEFT adapter with non-zero B on the tied Llama, all-linear): data parallel and
    /// ZeRO 1-3 on 2 ranks equal one rank within 1e-5 (losses, norms, adapter weights); the base never
    /// moves, and the model state is the adapter's alone.
    func testLoRAAllStagesMatchOneRank() throws {
        let name = "smollm_chat"
        let reference = try train(model: name, stage: 0, ranks: 1, adapt: Self.attachPEFTAdapter)[0]
        let adapterCount = reference.weights.count
        // f32 AdamW: weights, gradients, two moments; nothing for the base.
        XCTAssertEqual(reference.stateBytes, 4 * 4 * adapterCount)
        let initial = try TransformerModel.load(directory: Self.models + "/" + name)
        try Self.attachPEFTAdapter(initial)
        XCTAssertGreaterThan(Self.relativeL2(reference.weights, Self.values(initial.adapter!.params)), 1e-3, "the adapter must move")
        for stage in 0...3 {
            let runs = try train(model: name, stage: stage, ranks: 2, checkpointing: stage == 3, adapt: Self.attachPEFTAdapter)
            for run in runs {
                for s in 0..<5 {
                    XCTAssertEqual(run.losses[s], reference.losses[s], accuracy: 1e-5 * reference.losses[s], "LoRA stage \(stage): loss of step \(s)")
                    XCTAssertEqual(run.norms[s], reference.norms[s], accuracy: 1e-5 * reference.norms[s], "LoRA stage \(stage): norm of step \(s)")
                }
                XCTAssertLessThan(Self.relativeL2(run.weights, reference.weights), 1e-5, "LoRA stage \(stage): adapter weights")
            }
        }
    }

    /// A bf16-stored frozen base is the f32 base rounded once: training over it is bit-identical to
    /// training over an f32 base holding the rounded values (the kernels see the same f32 numbers), at
    /// stage 0 and at stage 3 on 2 ranks, and it takes 2 bytes a weight.
    func testBF16FrozenBaseEqualsTheRoundedF32Base() throws {
        let name = "smollm_chat"
        let roundedBase: (TransformerModel) throws -> Void = { model in
            let p = model.params.floats
            for i in p.indices { p[i] = HalfConversion.float(bf16: HalfConversion.bf16Bits(p[i])) }
            try Self.attachPEFTAdapter(model)
        }
        for (stage, ranks) in [(0, 1), (3, 2)] {
            let rounded = try train(model: name, stage: stage, ranks: ranks, adapt: roundedBase)
            let half = try train(model: name, stage: stage, ranks: ranks, adapt: Self.attachPEFTAdapter, baseDType: .bf16)
            for (a, b) in zip(half, rounded) {
                XCTAssertEqual(a.losses, b.losses, "stage \(stage): losses")
                XCTAssertTrue(a.weights == b.weights, "stage \(stage): adapter weights, max diff \(zip(a.weights, b.weights).map { abs($0 - $1) }.max() ?? 0)")
            }
        }
        let model = try TransformerModel.load(directory: Self.models + "/" + name)
        try Self.attachPEFTAdapter(model)
        let engine = try TrainingEngine(model: model, options: EngineOptions(), optimizer: .adamw(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0),
                                        frozenBaseDType: .bf16, maxTokens: 64)
        XCTAssertEqual(engine.frozenBaseBytes, 2 * model.parameterCount)
        // Inference over the 16-bit base widens one group at a time and leaves none widened after; its
        // logits equal those of the f32 model holding the rounded weights.
        let rounded = try TransformerModel.load(directory: Self.models + "/" + name)
        try roundedBase(rounded)
        let batch: [[Int32]] = [[1, 5, 9, 2, 7], [3, 3, 8, 1, 0]]
        XCTAssertEqual(model.logits(batch: batch), rounded.logits(batch: batch))
        XCTAssertTrue(model.params.floats.allSatisfy { $0 == 0 }, "no group stays widened")
    }
}
