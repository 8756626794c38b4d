import Distributed
import Kernels
import Tensors

extension HalfFormat {
    public var dtype: DType { self == .bf16 ? .bf16 : .f16 }

    public init?(_ precision: EngineOptions.Precision) {
        switch precision {
        case .f32: return nil
        case .bf16: self = .bf16
        case .fp16: self = .f16
        }
    }

    /// f32 → 16-bit words, rounding to nearest even (PyTorch's conversion), split across the kernel threads.
    func store(_ src: UnsafePointer<Float>, count: Int, into dst: UnsafeMutablePointer<UInt16>) {
        Parallel.forEachChunk(count, minPerThread: 1 << 16) { r in
            let s = UnsafeBufferPointer(start: src + r.lowerBound, count: r.count)
            let d = UnsafeMutableBufferPointer(start: dst + r.lowerBound, count: r.count)
            if self == .bf16 { HalfConversion.toBF16(s, d) } else { HalfConversion.toF16(s, d) }
        }
    }

    /// 16-bit words → f32 (exact).
    func load(_ src: UnsafePointer<UInt16>, count: Int, into dst: UnsafeMutablePointer<Float>) {
        Parallel.forEachChunk(count, minPerThread: 1 << 16) { r in
            let s = UnsafeBufferPointer(start: src + r.lowerBound, count: r.count)
            let d = UnsafeMutableBufferPointer(start: dst + r.lowerBound, count: r.count)
            if self == .bf16 { HalfConversion.fromBF16(s, d) } else { HalfConversion.fromF16(s, d) }
        }
    }

    /// dst = f32(round(src)): the value a half-precision copy of `src` holds, without keeping the copy.
    /// Goes through a small stack of 16-bit words per thread.
    func roundTrip(_ src: UnsafePointer<Float>, count: Int, into dst: UnsafeMutablePointer<Float>) {
        Parallel.forEachChunk(count, minPerThread: 1 << 16) { r in
            withUnsafeTemporaryAllocation(of: UInt16.self, capacity: 4096) { words in
                var i = r.lowerBound
                while i < r.upperBound {
                    let n = Swift.min(4096, r.upperBound - i)
                    let s = UnsafeBufferPointer(start: src + i, count: n)
                    let w = UnsafeMutableBufferPointer(rebasing: words[0..<n])
                    let d = UnsafeMutableBufferPointer(start: dst + i, count: n)
                    if self == .bf16 { HalfConversion.toBF16(s, w); HalfConversion.fromBF16(UnsafeBufferPointer(w), d) } else {
                        HalfConversion.toF16(s, w); HalfConversion.fromF16(UnsafeBufferPointer(w), d)
                    }
                    i += n
                }
            }
        }
    }

    /// dst = round(f32(dst) + add): one micro-batch's f32 gradients accumulated into half storage.
    func accumulate(_ add: UnsafePointer<Float>, count: Int, into dst: UnsafeMutablePointer<UInt16>) {
        Parallel.forEachChunk(count, minPerThread: 1 << 16) { r in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 4096) { sum in
                var i = r.lowerBound
                while i < r.upperBound {
                    let n = Swift.min(4096, r.upperBound - i)
                    let s = UnsafeMutableBufferPointer(rebasing: sum[0..<n])
                    let d = UnsafeMutableBufferPointer(start: dst + i, count: n)
                    if self == .bf16 { HalfConversion.fromBF16(UnsafeBufferPointer(d), s) } else { HalfConversion.fromF16(UnsafeBufferPointer(d), s) }
                    for j in 0..<n { s[j] += add[i + j] }
                    if self == .bf16 { HalfConversion.toBF16(UnsafeBufferPointer(s), d) } else { HalfConversion.toF16(UnsafeBufferPointer(s), d) }
                    i += n
                }
            }
        }
    }
}

/// The mixed-precision forms of ShardCollectives' group collectives: what crosses the wire is 16-bit
/// (gradients rounded before the reduce-scatter, weights rounded before the all-gather), as in DeepSpeed,
/// halving communication; the ends stay f32 (gradient shards and master weights).
extension ShardCollectives {
    /// Rounds group `g` of every rank's f32 `full` gradients to `format`, sums them over ranks in that
    /// format, and ADDS this rank's shard of the sum into `local` (f32, compact coordinates).
    func reduceScatterHalf(group g: Int, full: UnsafePointer<Float>, addInto local: UnsafeMutablePointer<Float>,
                           format: HalfFormat) throws {
        let s = shards.groups[g], n = shards.worldSize
        let input = halfScratch.raw.assumingMemoryBound(to: UInt16.self)
        let output = halfBlockScratch.raw.assumingMemoryBound(to: UInt16.self)
        let widened = blockScratch.raw.assumingMemoryBound(to: Float.self)
        for (start, length) in chunks(s.shardSize) {
            for q in 0..<n {
                let owned = shards.ownedRange(group: g, rank: q)
                let valid = Swift.max(0, Swift.min(length, owned.count - start))
                let dst = input + q * length
                if valid > 0 { format.store(full + owned.lowerBound + start, count: valid, into: dst) }
                if valid < length { (dst + valid).update(repeating: 0, count: length - valid) }
            }
            try communicator.reduceScatter(halves: input, output: output, blockCount: length, format: format)
            format.load(output, count: length, into: widened)
            let target = local + s.localOffset + start
            for i in 0..<length { target[i] += widened[i] }
        }
    }

    /// Every rank's f32 shard of group `g` (compact `local`), rounded to `format` and all-gathered; each
    /// rank's valid part is handed to `deliver(fullStart, words, count)` in full-buffer coordinates.
    func allGatherHalf(group g: Int, local: UnsafePointer<Float>, format: HalfFormat,
                       deliver: (Int, UnsafePointer<UInt16>, Int) -> Void) throws {
        let s = shards.groups[g]
        let block = halfBlockScratch.raw.assumingMemoryBound(to: UInt16.self)
        let output = halfScratch.raw.assumingMemoryBound(to: UInt16.self)
        for (start, length) in chunks(s.shardSize) {
            // The compact buffer holds the padded shard, so `length` words are always readable.
            format.store(local + s.localOffset + start, count: length, into: block)
            try communicator.allGatherBytes(input: block, output: output, blockBytes: length * 2)
            for q in 0..<shards.worldSize {
                let owned = shards.ownedRange(group: g, rank: q)
                let valid = Swift.max(0, Swift.min(length, owned.count - start))
                if valid > 0 { deliver(owned.lowerBound + start, output + q * length, valid) }
            }
        }
    }

    /// Like `allGatherHalf`, with each rank's shard read in place from the full 16-bit buffer `words`
    /// (mixed precision's compute weights under ZeRO-1/2, where each rank just wrote its own shard).
    func allGatherHalfInPlace(group g: Int, words: UnsafeMutablePointer<UInt16>) throws {
        let s = shards.groups[g]
        let block = halfBlockScratch.raw.assumingMemoryBound(to: UInt16.self)
        let output = halfScratch.raw.assumingMemoryBound(to: UInt16.self)
        let mine = shards.ownedRange(group: g)
        for (start, length) in chunks(s.shardSize) {
            let valid = Swift.max(0, Swift.min(length, mine.count - start))
            if valid > 0 { block.update(from: words + mine.lowerBound + start, count: valid) }
            if valid < length { (block + valid).update(repeating: 0, count: length - valid) }
            try communicator.allGatherBytes(input: block, output: output, blockBytes: length * 2)
            for q in 0..<shards.worldSize where q != shards.rank {
                let owned = shards.ownedRange(group: g, rank: q)
                let n = Swift.max(0, Swift.min(length, owned.count - start))
                if n > 0 { (words + owned.lowerBound + start).update(from: output + q * length, count: n) }
            }
        }
    }
}
