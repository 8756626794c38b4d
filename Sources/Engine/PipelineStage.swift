import Distributed
import Tensors

public enum PipelineError: Error, CustomStringConvertible {
    case partition(String)
    /// A point-to-point transfer between neighbour stages failed (a message of the wrong size, a peer
    /// that died); `what` says which tensor of which micro-batch.
    case transfer(stage: Int, peer: Int, what: String, underlying: Error)
    case unsupported(String)

    public var description: String {
        switch self {
        case .partition(let m): return "engine.pipeline.partition: \(m)"
        case .transfer(let s, let p, let w, let u): return "pipeline stage \(s): \(w) with stage \(p) failed: \(u)"
        case .unsupported(let m): return "engine.pipeline: \(m)"
        }
    }
}

/// The blocks each pipeline stage runs: contiguous, at least one each, in stage order. The embedding
/// always goes with stage 0 and the final norm, head and loss with the last stage.
public struct PipelinePartition: Sendable, Equatable {
    /// Blocks per stage.
    public let blockCounts: [Int]

    public init(blockCounts: [Int]) { self.blockCounts = blockCounts }

    public var stages: Int { blockCounts.count }

    public func blocks(stage s: Int) -> Range<Int> {
        let lo = blockCounts[..<s].reduce(0, +)
        return lo..<lo + blockCounts[s]
    }

    /// The stage whose blocks include `block`.
    public func stage(ofBlock block: Int) -> Int {
        var end = 0
        for (s, n) in blockCounts.enumerated() {
            end += n
            if block < end { return s }
        }
        return blockCounts.count - 1
    }

    /// The stage that holds layer group `g` (0 the embeddings, 1...L blocks, L+1 the head) without a
    /// tied head. A tied embedding is stepped and written by the last stage instead
    /// (`PipelinePlacement.ownerStage(ofGroup:)`).
    public func stage(ofGroup g: Int) -> Int {
        let L = blockCounts.reduce(0, +)
        if g == 0 { return 0 }
        if g > L { return stages - 1 }
        return stage(ofBlock: g - 1)
    }

    /// DeepSpeed's `partition_method`: `uniform` gives every stage ⌊L/P⌋ blocks and the first L mod P one
    /// more (ds_utils.partition_uniform); `parameters` picks the contiguous split that minimises the
    /// largest stage's parameter count, the embeddings counted on the first stage and the final norm and
    /// head on the last; a list is taken as given.
    ///
    /// `parameters` counts what a stage holds, as DeepSpeed's count does where every held parameter has
    /// its full model state (weight, gradient, optimizer state: 2c + K = 16 bytes at either precision,
    /// MemoryEstimate): a tied embedding is stepped on the last stage only, so there it counts whole, and
    /// the first stage's replica (compute weights alone, c bytes of the 16: a quarter in f32, an eighth in
    /// 16-bit) counts as that fraction of its parameters. Counting the replica whole, as DeepSpeed does
    /// for its two stepped copies, would give the first stage blocks' worth of state it does not hold.
    /// Untied models split exactly as DeepSpeed's parameter count does.
    public static func make(_ method: EngineOptions.Pipeline.Partition, stages P: Int, layout: ParameterLayout,
                            blocks L: Int, tiedHead: Bool, computeDType: DType = .f32) throws -> PipelinePartition {
        guard P >= 1, L >= P else {
            throw PipelineError.partition("\(P) stages need at least as many blocks; the model has \(L)")
        }
        switch method {
        case .uniform:
            let base = L / P, extra = L % P
            return PipelinePartition(blockCounts: (0..<P).map { base + ($0 < extra ? 1 : 0) })
        case .blocks(let counts):
            guard counts.count == P, counts.allSatisfy({ $0 >= 1 }), counts.reduce(0, +) == L else {
                throw PipelineError.partition("\(counts) must list \(P) block counts of at least 1 that sum to the model's \(L) blocks")
            }
            return PipelinePartition(blockCounts: counts)
        case .parameters:
            // In units of 1/16 of a parameter's full state, so the replica's fraction stays an integer.
            let full = 16
            let weights = (0..<L).map { full * layout.range(ofGroup: $0 + 1).count }
            let embed = layout.range(ofGroup: 0).count
            let replica = P > 1 && tiedHead ? computeDType.byteSize : full
            let head = full * (layout.range(ofGroup: L + 1).count + (tiedHead ? embed : 0))
            return PipelinePartition(blockCounts: balanced(weights, parts: P, first: replica * embed, last: head))
        }
    }

    /// Minimal largest part over contiguous splits of `weights` into `parts` non-empty parts, `first` and
    /// `last` added to the first and last part (dynamic programming; ties go to the earliest split).
    static func balanced(_ weights: [Int], parts P: Int, first: Int, last: Int) -> [Int] {
        let L = weights.count
        var prefix = [0]
        for w in weights { prefix.append(prefix.last! + w) }
        func cost(_ part: Int, _ lo: Int, _ hi: Int) -> Int {
            prefix[hi] - prefix[lo] + (part == 0 ? first : 0) + (part == P - 1 ? last : 0)
        }
        // best[p][i]: the minimal largest part covering blocks 0..<i with parts 0..<p.
        let inf = Int.max
        var best = Array(repeating: Array(repeating: inf, count: L + 1), count: P + 1)
        var cut = Array(repeating: Array(repeating: 0, count: L + 1), count: P + 1)
        best[0][0] = 0
        for p in 1...P {
            for i in p...L - (P - p) {
                for j in (p - 1)..<i where best[p - 1][j] < inf {
                    let c = Swift.max(best[p - 1][j], cost(p - 1, j, i))
                    if c < best[p][i] { best[p][i] = c; cut[p][i] = j }
                }
            }
        }
        var counts: [Int] = [], i = L
        for p in stride(from: P, to: 0, by: -1) {
            let j = cut[p][i]
            counts.append(i - j)
            i = j
        }
        return counts.reversed()
    }
}

/// One rank's place in a pipeline: its stage, the blocks it runs, the layer groups it steps, and the
/// communicators it needs beyond its data-parallel group (which is the engine's `communicator`).
///
/// Tied embeddings (DeepSpeed's TiedLayerSpec) keep one logical weight with one optimizer state: the
/// last stage, whose LM head writes the weight's dense gradient, owns it (steps it, counts it in the
/// gradient norm, writes it in checkpoints). The first stage embeds with a replica of the compute
/// weights and no optimizer state; its gradient contribution (only the rows of the step's tokens:
/// `TiedEmbeddingRows`, PipelineEngine.swift) goes to the owner before the step, and the stepped
/// weights come back after it, both over `tied` (the first and last stage of this replica).
public final class PipelinePlacement {
    public let partition: PipelinePartition
    public let stage: Int
    public var stages: Int { partition.stages }
    /// Ranks of this replica, one per stage (rank = stage).
    public let pipeline: Communicator
    /// The first and last stage of this replica, when the head is tied; nil otherwise.
    public let tied: Communicator?
    /// This rank in the whole job: names its checkpoint file.
    public let worldRank: Int
    public let worldSize: Int
    public let blocks: Range<Int>
    /// Layer groups this stage steps: their optimizer state, norm share and checkpoint tensors are its own.
    public let ownedGroups: Set<Int>
    /// Layer groups whose weights stay resident here: the owned ones and a tied embedding's replica.
    public let residentGroups: Set<Int>
    public let tiedHead: Bool

    public var isFirst: Bool { stage == 0 }
    public var isLast: Bool { stage == stages - 1 }

    /// Collective over `groups.pipeline` when the head is tied (the tied communicator is split off).
    public init(groups: ParallelGroups, partition: PipelinePartition, tiedHead: Bool) throws {
        guard partition.stages == groups.pipelineStages else {
            throw PipelineError.partition("\(partition.stages) stages in the partition, \(groups.pipelineStages) in the job")
        }
        self.partition = partition
        stage = groups.stage
        pipeline = groups.pipeline
        worldRank = groups.world.rank
        worldSize = groups.world.worldSize
        self.tiedHead = tiedHead
        let L = partition.blockCounts.reduce(0, +)
        blocks = partition.blocks(stage: stage)
        let isFirst = stage == 0, isLast = stage == partition.stages - 1
        var owned = Set(blocks.map { $0 + 1 })
        if isFirst && !(tiedHead && partition.stages > 1) { owned.insert(0) }
        if isLast { owned.formUnion(tiedHead ? [0, L + 1] : [L + 1]) }
        ownedGroups = owned
        residentGroups = isFirst ? owned.union([0]) : owned
        if tiedHead && partition.stages > 1 {
            tied = try groups.pipeline.split(color: isFirst || isLast ? 0 : 1, key: stage)
        } else {
            tied = nil
        }
    }

    /// Whether this stage embeds with a replica of a tied embedding it does not step (the first stage).
    public var holdsTiedReplica: Bool { tiedHead && isFirst && !isLast }
    /// Whether this stage steps a tied embedding whose replica is on the first stage (the last stage).
    public var ownsTiedWeight: Bool { tiedHead && isLast && !isFirst }
    /// The last stage's rank in `tied` (ranks there follow the stages: first 0, last 1).
    var tiedOwnerRank: Int { 1 }

    /// The stage that steps and writes layer group `g`.
    public func ownerStage(ofGroup g: Int) -> Int {
        g == 0 && tiedHead ? stages - 1 : partition.stage(ofGroup: g)
    }
}
