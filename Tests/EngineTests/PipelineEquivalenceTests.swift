import Foundation
import XCTest
import Distributed
import Kernels
import Models
import Tensors
@testable import Engine

/// Pipeline parallelism against one rank, ranks as threads: P stages × D replicas (world rank = stage ×
/// D + replica) train the same global batch of 8 sequences per step as one rank does (each replica its
/// slice, cut into M = 4 micro-batches, the 1F1B schedule over them), 5 AdamW steps with weight decay
/// and clipping at 0.5. Per-step losses, gradient norms and the final weights gathered from the stages
/// must agree with the one-rank run within 1e-5 relative (only the order of f32 sums differs).
final class PipelineEquivalenceTests: XCTestCase {
    typealias Z = ZeROEquivalenceTests
    private var savedThreads = 1

    // Rank threads call BLAS concurrently: each call single-threaded.
    override func setUp() { savedThreads = Parallel.threads; Parallel.setThreads(1) }
    override func tearDown() { Parallel.setThreads(savedThreads) }

    static func microBatch(_ model: TransformerModel, _ seqs: ArraySlice<Z.Sequence>, normalizer: Float) throws -> MicroBatch? {
        guard !seqs.isEmpty else { return nil }
        let b = Z.packed(seqs)
        return try model.batch(tokens: b.tokens, positions: b.positions, spans: b.spans, targets: b.targets, normalizer: normalizer)
    }

    struct Run {
        var losses: [Double] = []
        var norms: [Double] = []
        var weights: [Float] = []
        var stateBytes = 0
        var stage = 0
    }

    /// `stages` 1 is the one-rank reference (the ordinary micro-step), else a pipeline of `stages` ×
    /// `replicas` ranks.
    func train(model name: String, stages: Int, replicas: Int, zero: Int = 0, checkpointing: Bool = false,
               partition: EngineOptions.Pipeline.Partition = .uniform, precision: EngineOptions.Precision = .f32,
               microBatches M: Int = 4) throws -> [Run] {
        let path = Z.models + "/" + name
        let vocab = try TransformerModel.load(directory: path).config.vocabSize
        let batches = Z.batches(vocab: vocab, steps: 5)
        return try ThreadCommunicator.run(worldSize: stages * replicas) { world -> Run in
            let model = try TransformerModel.load(directory: path)
            var options = EngineOptions()
            options.zeroStage = zero
            options.activationCheckpointing = checkpointing
            options.precision = precision
            options.pipeline.stages = stages
            options.pipeline.partition = partition
            var placement: PipelinePlacement?
            var data: Communicator = world
            if stages > 1 {
                let groups = try ParallelGroups(world: world, pipelineStages: stages)
                let split = try PipelinePartition.make(partition, stages: stages, layout: model.trainableLayout,
                                                       blocks: model.config.numLayers, tiedHead: model.isHeadTied)
                placement = try PipelinePlacement(groups: groups, partition: split, tiedHead: model.isHeadTied)
                data = groups.dataParallel
            }
            let engine = try TrainingEngine(model: model, options: options,
                                            optimizer: .adamw(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1),
                                            maxTokens: 64, communicator: data, pipeline: placement)
            var run = Run()
            run.stage = placement?.stage ?? 0
            for batch in batches {
                let labels = batch.reduce(0) { $0 + $1.targets.filter { $0 != CrossEntropy.ignoreIndex }.count }
                let r = data.rank, D = data.worldSize
                let mine = batch[(r * 8 / D)..<((r + 1) * 8 / D)]
                let cuts = (0...M).map { mine.startIndex + $0 * mine.count / M }
                let micro = try (0..<M).map { try Self.microBatch(model, mine[cuts[$0]..<cuts[$0 + 1]], normalizer: Float(labels)) }
                engine.zeroGradients()
                var lossSum: Double
                if placement != nil {
                    lossSum = try engine.pipelineMicroSteps(micro).lossSum
                } else {
                    lossSum = 0
                    for case let b? in micro {
                        lossSum += try engine.microStep(tokens: b.tokens, positions: b.positions, spans: b.spans, targets: b.targets,
                                                        normalizer: b.normalizer).lossSum
                    }
                }
                lossSum = try data.allReduce(lossSum, op: .sum)
                let result = try engine.step(lr: 3e-3, maxGradNorm: 0.5)
                run.losses.append(lossSum / Double(labels))
                run.norms.append(result.gradNorm!)
                // What a checkpoint or an evaluation does between steps: the whole model onto every rank.
                if run.losses.count == 2 { try engine.gatherFullParameters() }
            }
            run.stateBytes = engine.modelStateBytes
            try engine.gatherFullParameters()
            run.weights = Z.values(engine.trainableParams)
            return run
        }
    }

    func check(model name: String, layouts: [(stages: Int, replicas: Int, zero: Int)], checkpointing: Bool = false,
               partition: EngineOptions.Pipeline.Partition = .uniform, precision: EngineOptions.Precision = .f32,
               tolerance: Double = 1e-5, referenceReplicas: Bool = false) throws {
        for (P, D, zero) in layouts {
            // 16-bit data parallelism rounds its gradient all-reduce and each micro-batch's accumulation:
            // its fair reference is data parallelism on as many replicas with the same micro-batches.
            let reference = try train(model: name, stages: 1, replicas: referenceReplicas ? D : 1, checkpointing: checkpointing,
                                      precision: precision)[0]
            XCTAssertGreaterThan(reference.norms[0], 0.5, "clipping must be active in the first step")
            let runs = try train(model: name, stages: P, replicas: D, zero: zero, checkpointing: checkpointing, partition: partition,
                                 precision: precision)
            let label = "\(name) P=\(P) D=\(D) ZeRO-\(zero) \(precision)\(checkpointing ? " checkpointed" : "")"
            for run in runs {
                for s in 0..<5 {
                    XCTAssertEqual(run.losses[s], reference.losses[s], accuracy: tolerance * reference.losses[s], "\(label): loss of step \(s)")
                    XCTAssertEqual(run.norms[s], reference.norms[s], accuracy: tolerance * reference.norms[s], "\(label): grad norm of step \(s)")
                }
                XCTAssertLessThan(Z.relativeL2(run.weights, reference.weights), tolerance, "\(label): final weights")
                XCTAssertEqual(run.weights, runs[0].weights, "\(label): every rank gathers the same weights")
                XCTAssertLessThan(run.stateBytes, reference.stateBytes, "\(label): a stage holds less model state than one rank")
            }
            print("\(label): loss[4] \(runs[0].losses[4]) vs \(reference.losses[4]); weights rel L2 \(Z.relativeL2(runs[0].weights, reference.weights)); state bytes per stage \(runs.map(\.stateBytes)) vs \(reference.stateBytes)")
        }
    }

    /// Untied head: stage 0 holds the embedding and block 0, stage 1 block 1, the final norm and lm_head.
    func testUntiedPipelineMatchesOneRank() throws {
        try check(model: "llama_gqa_llama3rope", layouts: [(2, 1, 0), (2, 2, 0), (2, 2, 1)])
    }

    /// Tied head: the last stage steps the embedding, the first embeds with a replica; the replica's
    /// gradient rows are added into the owner's before the step.
    func testTiedPipelineMatchesOneRank() throws {
        try check(model: "smollm_chat", layouts: [(2, 1, 0), (2, 2, 1)])
    }

    /// Three stages over gemma3's three blocks (a middle stage receives and sends both ways), tied head,
    /// with activation checkpointing (the last block's recompute rewrites the sent activations).
    func testThreeStagesCheckpointedMatchOneRank() throws {
        try check(model: "gemma3_text", layouts: [(3, 1, 0)], checkpointing: true, partition: .parameters)
    }

    /// bf16 (16-bit compute weights and gradient accumulation per stage, f32 master and messages),
    /// against data parallelism on as many replicas: untied within 1e-5 (measured: identical). Tied, the
    /// owner accumulates the head's part of the embedding's gradient in bf16 per micro-batch and adds the
    /// first stage's f32 rows (summed over the step) with one more rounding, where one rank rounds the f32
    /// sum of both parts once per micro-batch: measured 1.0e-4 relative on the final weights, held to 1e-3.
    func testBF16PipelineMatchesDataParallel() throws {
        try check(model: "llama_gqa_llama3rope", layouts: [(2, 1, 0), (2, 2, 1)], precision: .bf16, referenceReplicas: true)
        try check(model: "smollm_chat", layouts: [(2, 1, 0), (2, 2, 1)], precision: .bf16, tolerance: 1e-3, referenceReplicas: true)
    }

    /// One logical tied weight, one optimizer state: the last stage holds the embedding's full state
    /// (16 B per parameter in f32, as for its blocks and final norm), the first stage its f32 weights and
    /// the f32 gradient rows of the last step's distinct tokens, nothing more; the estimate counts the
    /// same less those rows. Counted from the layout here, compared exactly with the engines' figures.
    func testTiedEmbeddingStateOnTheOwnerOnly() throws {
        let name = "smollm_chat", path = Z.models + "/" + name
        let model = try TransformerModel.load(directory: path)
        let layout = model.trainableLayout, L = model.config.numLayers, H = model.config.hiddenSize
        XCTAssertTrue(model.isHeadTied)
        let split = try PipelinePartition.make(.uniform, stages: 2, layout: layout, blocks: L, tiedHead: true)
        func count(_ groups: [Int]) -> Int { groups.reduce(0) { $0 + layout.range(ofGroup: $1).count } }
        let embed = count([0])
        let firstBlocks = count(split.blocks(stage: 0).map { $0 + 1 })
        let lastOwned = count(split.blocks(stage: 1).map { $0 + 1 } + [L + 1, 0])
        let lastStep = Z.batches(vocab: model.config.vocabSize, steps: 5)[4]
        let rows = Set(lastStep.flatMap(\.tokens)).count
        let runs = try train(model: name, stages: 2, replicas: 1)
        XCTAssertEqual(runs.map(\.stage), [0, 1])
        XCTAssertEqual(runs[0].stateBytes, 16 * firstBlocks + 4 * embed + 4 * rows * H, "first stage: blocks, f32 replica, gradient rows")
        XCTAssertEqual(runs[1].stateBytes, 16 * lastOwned, "last stage: blocks, final norm and the embedding's full state")
        let estimate = try MemoryEstimate.pipelineModelStateBytes(layout: layout, blocks: L, stages: 2, ranks: 2, zeroStage: 0,
                                                                  partition: .uniform)
        XCTAssertEqual(estimate, [runs[0].stateBytes - 4 * rows * H, runs[1].stateBytes])
        // The gradient rows: the step's distinct tokens (and the whole table only without a [V, H] entry).
        let one = try model.batch(tokens: [3, 1, 3], positions: [0, 1, 2], spans: [AttentionSpan(qStart: 0, qLen: 3)],
                                  targets: [1, 3, -100], normalizer: 2)
        let table = layout.range(ofGroup: 0).lowerBound
        XCTAssertEqual(TiedEmbeddingRows(layout: layout, config: model.config, batches: [one, nil]).ranges,
                       [table + H..<table + 2 * H, table + 3 * H..<table + 4 * H])
    }

    /// DeepSpeed's TrainSchedule order: warm-up forwards, 1F1B, cool-down backwards.
    func testTrainScheduleOrder() {
        let f = PipelineInstruction.forward, b = PipelineInstruction.backward
        XCTAssertEqual(PipelineSchedule.train(stage: 0, stages: 2, microBatches: 3), [f(0), f(1), b(0), f(2), b(1), b(2)])
        XCTAssertEqual(PipelineSchedule.train(stage: 1, stages: 2, microBatches: 3), [f(0), b(0), f(1), b(1), f(2), b(2)])
        XCTAssertEqual(PipelineSchedule.train(stage: 0, stages: 4, microBatches: 2), [f(0), f(1), b(0), b(1)])
        XCTAssertEqual(PipelineSchedule.idealBubble(stages: 2, microBatches: 8), 1.0 / 9.0)
    }

    /// Partitions: uniform gives the first stages the extra blocks; parameters balances counts with the
    /// embedding on the first and the head on the last stage; a list must cover every block.
    func testPartitions() throws {
        var layout = ParameterLayout()
        layout.append("embed", shape: [100], group: 0)
        for l in 0..<5 { layout.append("block\(l)", shape: [10], group: l + 1) }
        layout.append("head", shape: [1], group: 6)
        XCTAssertEqual(try PipelinePartition.make(.uniform, stages: 2, layout: layout, blocks: 5, tiedHead: false).blockCounts, [3, 2])
        // The 100-element embedding outweighs everything: stage 0 keeps one block.
        XCTAssertEqual(try PipelinePartition.make(.parameters, stages: 2, layout: layout, blocks: 5, tiedHead: false).blockCounts, [1, 4])
        // Tied, the last stage steps the embedding (1 600 units of 1/16 parameter, + 16 for the head) and
        // the first holds its f32 weights alone (400): [4, 1] (1 040 vs 1 776). DeepSpeed, which steps two
        // copies, counts the replica whole (1 600 + 160k) and would say [3, 2].
        XCTAssertEqual(try PipelinePartition.make(.parameters, stages: 2, layout: layout, blocks: 5, tiedHead: true).blockCounts, [4, 1])
        // Blocks of 40 show the replica's fraction by precision: f32, it counts 25 of its 100 parameters:
        // [3, 2] (145 vs 181, against 185 vs 141 for [4, 1]); bf16, 12.5: [4, 1] (172.5 vs 141). Untied
        // (the embedding whole on the first stage, the head on the last): [1, 4] (140 vs 161).
        var wide = ParameterLayout()
        wide.append("embed", shape: [100], group: 0)
        for l in 0..<5 { wide.append("block\(l)", shape: [40], group: l + 1) }
        wide.append("head", shape: [1], group: 6)
        XCTAssertEqual(try PipelinePartition.make(.parameters, stages: 2, layout: wide, blocks: 5, tiedHead: true).blockCounts, [3, 2])
        XCTAssertEqual(try PipelinePartition.make(.parameters, stages: 2, layout: wide, blocks: 5, tiedHead: true,
                                                  computeDType: .bf16).blockCounts, [4, 1])
        XCTAssertEqual(try PipelinePartition.make(.parameters, stages: 2, layout: wide, blocks: 5, tiedHead: false).blockCounts, [1, 4])
        XCTAssertEqual(try PipelinePartition.make(.blocks([2, 3]), stages: 2, layout: layout, blocks: 5, tiedHead: false).blockCounts, [2, 3])
        XCTAssertThrowsError(try PipelinePartition.make(.blocks([2, 2]), stages: 2, layout: layout, blocks: 5, tiedHead: false)) {
            XCTAssertTrue("\($0)".contains("sum to the model's 5 blocks"), "\($0)")
        }
        XCTAssertThrowsError(try PipelinePartition.make(.uniform, stages: 6, layout: layout, blocks: 5, tiedHead: false))
        let p = PipelinePartition(blockCounts: [2, 3])
        XCTAssertEqual(p.stage(ofGroup: 0), 0)
        XCTAssertEqual(p.stage(ofGroup: 2), 0)
        XCTAssertEqual(p.stage(ofGroup: 3), 1)
        XCTAssertEqual(p.stage(ofGroup: 6), 1)
    }

    /// ZeRO-2/3 with P > 1 are refused with DeepSpeed's reason.
    func testZeRO2And3Refused() {
        for zero in [2, 3] {
            var o = EngineOptions()
            o.zeroStage = zero
            o.pipeline.stages = 2
            XCTAssertTrue(o.problems().contains { $0.description.contains("composes only with ZeRO stage 0 or 1 (as in DeepSpeed: ZeRO-2 and ZeRO-3 reduce") }, "\(o.problems())")
        }
        var o = EngineOptions()
        o.zeroStage = 1
        o.pipeline.stages = 2
        XCTAssertTrue(o.problems().isEmpty, "\(o.problems())")
    }
}
