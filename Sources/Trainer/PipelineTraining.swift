import Distributed
import Engine
import Kernels
import Models

/// The Trainer's part of pipeline parallelism (`engine.pipeline.stages` > 1): the world is split into P
/// stages × D data-parallel replicas (ParallelGroups, pipeline-major); the data loader shards over the D
/// replicas, every stage of a replica reads the same micro-batches, and the engine runs the 1F1B
/// schedule over them (PipelineSchedule.swift). Evaluation, samples, checkpoints and the export gather
/// the whole model onto every rank first (`TrainingEngine.gatherFullParameters`), which for the model
/// sizes this toolkit trains on CPU fits in memory; the per-rank saving is in training state.
struct PipelineTraining {
    let placement: PipelinePlacement?
    /// The group gradients are reduced over and the data is sharded over: the replicas of this stage
    /// (the world without a pipeline).
    let dataParallel: Communicator

    /// Collective over `world` when the recipe asks for stages > 1.
    init(options: EngineOptions, model: TransformerModel, world: Communicator) throws {
        let P = options.pipeline.stages
        guard P > 1 else {
            placement = nil
            dataParallel = world
            return
        }
        let groups = try ParallelGroups(world: world, pipelineStages: P)
        let partition = try PipelinePartition.make(options.pipeline.partition, stages: P, layout: model.trainableLayout,
                                                   blocks: model.config.numLayers, tiedHead: model.isHeadTied,
                                                   computeDType: options.precision.computeDType)
        placement = try PipelinePlacement(groups: groups, partition: partition, tiedHead: model.isHeadTied)
        dataParallel = groups.dataParallel
    }

    /// The start-up log's line: stages, the world ranks of each, and what rank 0's stage holds.
    var description: String? {
        guard let p = placement else { return nil }
        var parts = [p.blocks.count == 1 ? "block \(p.blocks.lowerBound)" : "blocks \(p.blocks.lowerBound)...\(p.blocks.upperBound - 1)"]
        if p.isFirst { parts.insert(p.holdsTiedReplica ? "embedding (a replica; the last stage steps the tied weight)" : "embedding", at: 0) }
        if p.isLast { parts.append(p.tiedHead ? "final norm and tied head (stepping the embedding)" : "final norm and head") }
        // Which world ranks hold which stage, so a rank the launcher reports can be told by its stage.
        let D = dataParallel.worldSize
        let map = (0..<p.stages).map { s -> String in
            let ranks = (0..<D).map { String(s * D + $0) }
            return "stage \(s): world rank\(D == 1 ? "" : "s") \(ranks.joined(separator: ", "))"
        }
        return "pipeline: \(p.stages) stages (blocks per stage \(p.partition.blockCounts)) × \(D) data-parallel (\(map.joined(separator: "; "))); rank 0: \(parts.joined(separator: ", "))"
    }

    /// One step's forwards and backwards of this stage over the replica's micro-batches; the summed loss
    /// of the replica (every stage returns it).
    static func microSteps(engine: TrainingEngine, model: TransformerModel, microBatches: [TokenBatch],
                           normalizer: Float) throws -> Double {
        // fp16: gradients of (scale · loss), as `microStep` does.
        let scaled = normalizer / Float(engine.lossScale)
        let batches = try microBatches.map { mb -> MicroBatch? in
            guard !mb.tokens.isEmpty else { return nil }
            return try model.batch(tokens: mb.tokens, positions: mb.positions,
                                   spans: mb.segments.map { AttentionSpan(qStart: $0.start, qLen: $0.length) },
                                   targets: mb.targets, normalizer: scaled)
        }
        return try engine.pipelineMicroSteps(batches).lossSum
    }
}
