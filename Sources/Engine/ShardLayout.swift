import Distributed
import Tensors

/// ZeRO's partitioning (ARCHITECTURE.md, "ZeRO is slicing"): every layer group's range of the flat
/// buffers is split into `worldSize` shards of `shardSize = ⌈count / worldSize⌉` elements; rank r owns
/// shard r of every group. The last shards of a group may reach past its end (padding) and are clipped
/// in the full buffers; in a rank's compact buffers (its gradient, optimizer and ZeRO-3 weight shards,
/// `localCount` elements) every shard takes its padded size, so all ranks agree on every offset.
public struct ShardLayout: Sendable, Equatable {
    public struct GroupShards: Sendable, Equatable {
        public var group: Int
        /// The group's range in the full buffers.
        public var range: Range<Int>
        /// Elements per shard, padding included.
        public var shardSize: Int
        /// Where this group's shard starts in a rank's compact buffers.
        public var localOffset: Int
    }

    public let worldSize: Int
    public let rank: Int
    public let groups: [GroupShards]
    /// A pipeline stage's layer groups (nil: all). The others keep their full-buffer range but have
    /// empty shards, so this rank holds no optimizer state, gradient shard or step range for them.
    public let ownedGroups: Set<Int>?
    /// Elements of a rank's compact shard buffers.
    public let localCount: Int

    public init(layout: ParameterLayout, worldSize: Int, rank: Int, ownedGroups: Set<Int>? = nil) {
        self.worldSize = worldSize
        self.rank = rank
        self.ownedGroups = ownedGroups
        var groups: [GroupShards] = []
        var offset = 0
        for g in 0..<layout.groupCount {
            let range = layout.range(ofGroup: g)
            let owned = ownedGroups?.contains(g) ?? true
            let size = owned ? (range.count + worldSize - 1) / worldSize : 0
            groups.append(GroupShards(group: g, range: range, shardSize: size, localOffset: offset))
            offset += size
        }
        self.groups = groups
        localCount = offset
    }

    /// The elements of `group` that `rank` owns, in full-buffer coordinates (empty for a shard that is
    /// all padding).
    public func ownedRange(group g: Int, rank r: Int) -> Range<Int> {
        let s = groups[g]
        let lo = Swift.min(s.range.lowerBound + r * s.shardSize, s.range.upperBound)
        let hi = Swift.min(lo + s.shardSize, s.range.upperBound)
        return lo..<hi
    }

    public func ownedRange(group g: Int) -> Range<Int> { ownedRange(group: g, rank: rank) }

    /// Whether this rank's pipeline stage holds group `g` (always true without a pipeline).
    public func owns(group g: Int) -> Bool { ownedGroups?.contains(g) ?? true }
}

/// Moves one group between full buffers and compact shard buffers with the communicator's equal-block
/// collectives. Shards are unequal at a group's end, so blocks go through scratch in chunks of at most
/// `chunkElements` per rank: a chunk copies the valid part of each shard and zero-pads the rest. The
/// scratch costs (worldSize + 1) · chunkElements floats, however large the group.
final class ShardCollectives {
    let shards: ShardLayout
    let communicator: Communicator
    let chunkElements: Int
    private let scratch: FlatBuffer
    let blockScratch: FlatBuffer
    /// Mixed precision's staging in 16-bit words (`HalfShardCollectives.swift`), allocated on first use.
    lazy var halfScratch = FlatBuffer(dtype: .bf16, count: shards.worldSize * chunkElements)
    lazy var halfBlockScratch = FlatBuffer(dtype: .bf16, count: chunkElements)

    init(shards: ShardLayout, communicator: Communicator, chunkElements: Int = 1 << 20) {
        self.shards = shards
        self.communicator = communicator
        let largest = shards.groups.map(\.shardSize).max() ?? 0
        self.chunkElements = Swift.max(1, Swift.min(chunkElements, largest))
        scratch = FlatBuffer(dtype: .f32, count: shards.worldSize * self.chunkElements)
        blockScratch = FlatBuffer(dtype: .f32, count: self.chunkElements)
    }

    /// The chunks of a shard: (offset within the shard, length); the same on every rank.
    func chunks(_ shardSize: Int) -> [(Int, Int)] {
        stride(from: 0, to: shardSize, by: chunkElements).map { ($0, Swift.min(chunkElements, shardSize - $0)) }
    }

    /// Sums group `g` of every rank's `full` buffer and ADDS this rank's shard of the sum into `local`
    /// (compact coordinates).
    func reduceScatter(group g: Int, full: UnsafePointer<Float>, addInto local: UnsafeMutablePointer<Float>) throws {
        let s = shards.groups[g], n = shards.worldSize
        let input = scratch.raw.assumingMemoryBound(to: Float.self)
        let output = blockScratch.raw.assumingMemoryBound(to: Float.self)
        for (start, length) in chunks(s.shardSize) {
            for q in 0..<n {
                let owned = shards.ownedRange(group: g, rank: q)
                let valid = Swift.max(0, Swift.min(length, owned.count - start))
                let dst = input + q * length
                if valid > 0 { dst.update(from: full + owned.lowerBound + start, count: valid) }
                if valid < length { (dst + valid).update(repeating: 0, count: length - valid) }
            }
            try communicator.reduceScatter(input: input, output: output, blockCount: length)
            let target = local + s.localOffset + start
            for i in 0..<length { target[i] += output[i] }
        }
    }

    /// Every rank's shard of group `g` (compact `local` buffers) into the group's range of `full`.
    func allGather(group g: Int, local: UnsafePointer<Float>, into full: UnsafeMutablePointer<Float>) throws {
        let offset = shards.groups[g].localOffset
        try allGather(group: g, into: full) { start, _ in local + offset + start }
    }

    /// Like `allGather`, with each rank's shard read in place from `full` itself (ZeRO-1/2, where every
    /// rank holds full parameters and has just stepped its own shard). The shard is staged through
    /// scratch because it may be shorter than the block.
    func allGatherInPlace(group g: Int, full: UnsafeMutablePointer<Float>) throws {
        let input = blockScratch.raw.assumingMemoryBound(to: Float.self)
        let mine = shards.ownedRange(group: g)
        try allGather(group: g, into: full) { start, length in
            let valid = Swift.max(0, Swift.min(length, mine.count - start))
            if valid > 0 { input.update(from: full + mine.lowerBound + start, count: valid) }
            if valid < length { (input + valid).update(repeating: 0, count: length - valid) }
            return UnsafePointer(input)
        }
    }

    /// Starts gathering every rank's whole padded shard of group `g` into `scratch` (worldSize ×
    /// shardSize floats, rank-major) without chunking; `finishGather` moves it into the full buffer once
    /// the returned handle has been waited for. `local` and `scratch` must stay untouched until then.
    func startGather(group g: Int, local: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) throws -> PendingCollective {
        let s = shards.groups[g]
        return try communicator.startAllGather(input: local + s.localOffset, output: scratch, blockCount: s.shardSize)
    }

    /// The gathered blocks of `startGather` into the group's range of `full`, clipping the padding:
    /// the same values the chunked `allGather` writes.
    func finishGather(group g: Int, scratch: UnsafePointer<Float>, into full: UnsafeMutablePointer<Float>) {
        let size = shards.groups[g].shardSize
        for q in 0..<shards.worldSize {
            let owned = shards.ownedRange(group: g, rank: q)
            if !owned.isEmpty { (full + owned.lowerBound).update(from: scratch + q * size, count: owned.count) }
        }
    }

    /// Chunk by chunk: `block(start, length)` gives this rank's contribution, and the gathered blocks
    /// land in each rank's owned range of `full`.
    private func allGather(group g: Int, into full: UnsafeMutablePointer<Float>,
                           block: (Int, Int) -> UnsafePointer<Float>) throws {
        let output = scratch.raw.assumingMemoryBound(to: Float.self)
        for (start, length) in chunks(shards.groups[g].shardSize) {
            try communicator.allGather(input: block(start, length), output: output, blockCount: length)
            for q in 0..<shards.worldSize {
                let owned = shards.ownedRange(group: g, rank: q)
                let valid = Swift.max(0, Swift.min(length, owned.count - start))
                if valid > 0 { (full + owned.lowerBound + start).update(from: output + q * length, count: valid) }
            }
        }
    }
}
