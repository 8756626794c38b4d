import Tensors

/// DeepSpeed's model-state memory per rank (ZeRO paper, FORMATS.md) for Ψ parameters on N ranks with
/// Adam: compute weights and gradients at the compute dtype's c bytes each, plus K bytes per parameter
/// of optimizer state (partitioned from stage 1 on):
///
///     stage 0: (2c + K)Ψ     stage 1: 2cΨ + KΨ/N     stage 2: cΨ + (c + K)Ψ/N     stage 3: (2c + K)Ψ/N
///
/// Mixed precision (c = 2) has K = 12: an fp32 master copy, m and v. With f32 compute (c = 4) the
/// compute weights ARE the master weights, so no copy exists and K = 8 (m and v); the totals keep
/// DeepSpeed's 16Ψ at stage 0 and 16Ψ/N at stage 3. This is what `TrainingEngine.modelStateBytes`
/// holds, up to the padding of shards (at most N − 1 elements per layer group).
public enum MemoryEstimate {
    public static func modelStateBytes(parameters psi: Int, stage: Int, ranks n: Int, computeDType: DType = .f32) -> Int {
        let c = computeDType.byteSize
        let k = c >= 4 ? 8 : 12
        let n = max(1, n)
        switch stage {
        case 0: return (2 * c + k) * psi
        case 1: return 2 * c * psi + k * psi / n
        case 2: return c * psi + (c + k) * psi / n
        default: return (2 * c + k) * psi / n
        }
    }

    /// Per stage of a pipeline of `stages` over `ranks` (D = ranks / stages replicas): the groups the
    /// stage steps under the formula above over its D replicas, at stage max(1, `zeroStage`) (a stage's
    /// engine always keeps compact, ZeRO-1, optimizer state, which with D = 1 is stage 0's). A tied
    /// embedding is stepped by the last stage alone; the first stage adds its replica's compute weights
    /// (c bytes per parameter). Not counted: the replica's f32 gradient rows of the step's tokens (at
    /// most tokens per step × hidden × 4 bytes, data-dependent; the engine's figure includes them).
    public static func pipelineModelStateBytes(layout: ParameterLayout, blocks: Int, stages: Int, ranks: Int, zeroStage: Int,
                                               computeDType: DType = .f32,
                                               partition: EngineOptions.Pipeline.Partition = .parameters) throws -> [Int] {
        let tied = layout["lm_head.weight"] == nil
        let split = try PipelinePartition.make(partition, stages: stages, layout: layout, blocks: blocks, tiedHead: tied,
                                               computeDType: computeDType)
        let embed = layout.range(ofGroup: 0).count
        return (0..<stages).map { s in
            var groups = Set(split.blocks(stage: s).map { $0 + 1 })
            if s == stages - 1 { groups.formUnion(tied ? [0, blocks + 1] : [blocks + 1]) }
            if s == 0 && !tied { groups.insert(0) }
            let psi = groups.reduce(0) { $0 + layout.range(ofGroup: $1).count }
            let replica = s == 0 && tied ? embed * computeDType.byteSize : 0
            return modelStateBytes(parameters: psi, stage: Swift.max(1, zeroStage), ranks: ranks / stages, computeDType: computeDType) + replica
        }
    }
}
