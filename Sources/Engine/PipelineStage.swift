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

    /// The stage that holds layer group `g` (0 the embeddings, 1...L blocks, L+1 the head) and writes it
    /// in checkpoints. A tied embedding is also held by the last stage, which does not write it.
    public func stage(ofGroup g: Int) -> Int {
        let L = blockCounts.reduce(0, +)
        if g == 0 { return 0 }
        if g > L { return stages - 1 }
        return stage(ofBlock: g - 1)
    }

    /// DeepSpeed's `partition_method`: `uniform` gives every stage ⌊L/P⌋ blocks and the first L mod P one
    /// more (ds_utils.partition_uniform); `parameters` picks the contiguous split that minimises the
    /// largest stage's parameter count, the embeddings counted on the first stage and the final norm and
    /// head (the tied embedding included) on the last; a list is taken as given.
    public static func make(_ method: EngineOptions.Pipeline.Partition, stages P: Int, layout: ParameterLayout,
                            blocks L: Int, tiedHead: Bool) throws -> PipelinePartition {
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
            let weights = (0..<L).map { layout.range(ofGroup: $0 + 1).count }
            let embed = layout.range(ofGroup: 0).count
            let head = layout.range(ofGroup: L + 1).count + (tiedHead ? embed : 0)
            return PipelinePartition(blockCounts: balanced(weights, parts: P, first: embed, last: head))
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
/// Tied embeddings (DeepSpeed's TiedLayerSpec): the first stage embeds with the weight and the last
/// stage's LM head reads it, so both hold group 0 and step it; before every step their gradients of
/// group 0 are summed over `tied` (the first and last stage of this replica), so both copies take the
/// same step and stay identical. Only the first stage counts it in the gradient norm and writes it.
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
    /// Layer groups this stage holds and steps.
    public let ownedGroups: Set<Int>
    /// Layer groups this stage alone holds among the stages: counted in the norm, written in checkpoints.
    public let primaryGroups: Set<Int>
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
        var primary = Set(blocks.map { $0 + 1 })
        if isFirst { primary.insert(0) }
        if isLast { primary.insert(L + 1) }
        primaryGroups = primary
        ownedGroups = tiedHead && isLast ? primary.union([0]) : primary
        if tiedHead && partition.stages > 1 {
            tied = try groups.pipeline.split(color: isFirst || isLast ? 0 : 1, key: stage)
        } else {
            tied = nil
        }
    }

    /// Whether this stage holds a second copy of group 0 for its tied head.
    public var holdsTiedCopy: Bool { tiedHead && isLast && !isFirst }
}
