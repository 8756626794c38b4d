import Distributed
import Tensors

/// Where this rank accumulates gradients across the micro-batches of a step and where the step reads
/// them, chosen once in `TrainingEngine.init` from the stage and precision. Backward always writes f32
/// into the engine's full-size `grads`; what happens to a group's gradients once backward has finished
/// them (`gradientsReady`) is this type's:
///
/// | stage | precision | storage                                                           |
/// |-------|-----------|-------------------------------------------------------------------|
/// | 0–1   | f32       | full: `grads` accumulates, all-reduced (f32) before the step       |
/// | 0–1   | 16-bit    | accumulated half: rounded into 16 bits per micro-batch, all-reduced in 16 bits |
/// | 2–3   | f32       | reduce-scattered (f32) group by group into this rank's f32 shards |
/// | 2–3   | 16-bit    | reduce-scattered in 16 bits, the shards accumulating in f32       |
///
/// Except in the first row the full-size pages of a group are released once its gradients have moved
/// (mmap-backed `grads`), so a rank keeps only what this storage holds. Offload never moves gradients.
enum GradientStorage {
    /// What a reduce-scatter sends: f32, or gradients rounded to 16 bits (half the traffic).
    enum Wire {
        case f32
        case half(HalfFormat)
    }

    /// f32, stages 0–1: the full-size f32 buffer backward writes.
    case full(FlatBuffer)
    /// Mixed precision, stages 0–1: a full-size 16-bit accumulator; the step widens it into `scratch`
    /// chunk by chunk.
    case accumulatedHalf(FlatBuffer, HalfFormat, scratch: FlatBuffer)
    /// Stages 2–3: this rank's reduced f32 gradient shards (compact).
    case reduceScattered(FlatBuffer, Wire)

    /// Elements widened per chunk when the step reads 16-bit gradients.
    static let halfChunk = 1 << 18

    /// `grads` is the full-size f32 buffer backward writes; `scratchCount` the widening scratch a 16-bit
    /// accumulator needs (at least one chunk of the offload stream).
    init(stage: Int, format: HalfFormat?, grads: FlatBuffer, localCount: Int, scratchCount: Int) {
        switch (format, stage) {
        case (nil, 0...1): self = .full(grads)
        case (nil, _): self = .reduceScattered(FlatBuffer(dtype: .f32, count: localCount), .f32)
        case (let f?, 0...1):
            self = .accumulatedHalf(FlatBuffer(dtype: f.dtype, count: grads.count), f, scratch: FlatBuffer(dtype: .f32, count: scratchCount))
        case (let f?, _): self = .reduceScattered(FlatBuffer(dtype: .f32, count: localCount), .half(f))
        }
    }

    /// Bytes of gradients kept between micro-batches (the widening scratch is transient).
    var byteCount: Int {
        switch self {
        case .full(let b), .accumulatedHalf(let b, _, _), .reduceScattered(let b, _): return b.byteCount
        }
    }

    /// Reduce-scattered gradients cross ranks during every micro-step's backward, so every rank must run
    /// every micro-step, empty ones included.
    var reducesDuringBackward: Bool {
        if case .reduceScattered = self { return true }
        return false
    }

    func zero() {
        switch self {
        case .full(let b), .accumulatedHalf(let b, _, _), .reduceScattered(let b, _): b.zero()
        }
    }

    /// Zeroes `ranges` (full-buffer coordinates) of a full-size accumulator, or every shard: a pipeline
    /// stage's own groups, so the other stages' pages of the full-size buffer are never touched.
    func zero(_ ranges: [Range<Int>]) {
        switch self {
        case .full(let b):
            for r in ranges { b.raw.assumingMemoryBound(to: Float.self).advanced(by: r.lowerBound).update(repeating: 0, count: r.count) }
        case .accumulatedHalf(let b, _, _):
            for r in ranges { b.raw.assumingMemoryBound(to: UInt16.self).advanced(by: r.lowerBound).update(repeating: 0, count: r.count) }
        case .reduceScattered(let b, _):
            b.zero()
        }
    }

    /// Backward has finished group `g`'s f32 gradients of this micro-batch in `grads`: move them into
    /// this storage and release their full-size pages. Collective for reduce-scattered storage.
    func groupReady(_ g: ShardLayout.GroupShards, grads: FlatBuffer, collectives: ShardCollectives) throws {
        let full = grads.raw.assumingMemoryBound(to: Float.self)
        switch self {
        case .full:
            return
        case .accumulatedHalf(let words, let format, _):
            format.accumulate(full + g.range.lowerBound, count: g.range.count,
                              into: words.raw.assumingMemoryBound(to: UInt16.self) + g.range.lowerBound)
        case .reduceScattered(let shards, .f32):
            try collectives.reduceScatter(group: g.group, full: full, addInto: shards.raw.assumingMemoryBound(to: Float.self))
        case .reduceScattered(let shards, .half(let format)):
            try collectives.reduceScatterHalf(group: g.group, full: full, addInto: shards.raw.assumingMemoryBound(to: Float.self), format: format)
        }
        grads.release(g.range)
    }

    /// Before the step: sums full-size gradients over ranks (f32 or 16-bit); shards are already reduced.
    /// `ranges` limits it to a pipeline stage's groups (nil: the whole buffer).
    func reduceAcrossRanks(_ communicator: Communicator, ranges: [Range<Int>]? = nil) throws {
        guard communicator.worldSize > 1 else { return }
        for r in ranges ?? [0..<count] { try sum(r, over: communicator) }
    }

    /// Elements of the full-size accumulator (0 for shards).
    private var count: Int {
        switch self {
        case .full(let b), .accumulatedHalf(let b, _, _): return b.count
        case .reduceScattered: return 0
        }
    }

    /// Sums `range` of the full-size gradients over `communicator` in place (f32, or 16-bit as
    /// accumulated).
    func sum(_ range: Range<Int>, over communicator: Communicator) throws {
        guard !range.isEmpty else { return }
        switch self {
        case .full(let b):
            try communicator.allReduce(b.raw.assumingMemoryBound(to: Float.self) + range.lowerBound, count: range.count, op: .sum)
        case .accumulatedHalf(let words, let format, _):
            try communicator.allReduce(halves: words.raw.assumingMemoryBound(to: UInt16.self) + range.lowerBound, count: range.count,
                                       format: format)
        case .reduceScattered:
            break
        }
    }

    /// Calls `body(f32 gradients, count)` over this rank's gradients of every non-empty step range in
    /// order: in place (one call per range; the body may modify them), or widened from 16 bits into the
    /// scratch in chunks of `halfChunk`.
    func forEachRangeChunk(_ ranges: [StepRange], _ body: (UnsafeMutablePointer<Float>, Int) -> Void) {
        switch self {
        case .accumulatedHalf(let words, let format, let scratch):
            let w = words.raw.assumingMemoryBound(to: UInt16.self), f = scratch.raw.assumingMemoryBound(to: Float.self)
            for s in ranges {
                var offset = 0
                while offset < s.full.count {
                    let n = Swift.min(Self.halfChunk, s.full.count - offset)
                    format.load(w + s.full.lowerBound + offset, count: n, into: f)
                    body(f, n)
                    offset += n
                }
            }
        case .full, .reduceScattered:
            for s in ranges where !s.full.isEmpty { body(chunk(s, offset: 0, count: s.full.count), s.full.count) }
        }
    }

    /// The f32 gradients of `count` elements of step range `s` from `offset`: in place, or widened into
    /// the scratch (valid until the next call).
    func chunk(_ s: StepRange, offset: Int, count: Int) -> UnsafeMutablePointer<Float> {
        switch self {
        case .full(let b):
            return b.raw.assumingMemoryBound(to: Float.self) + s.full.lowerBound + offset
        case .accumulatedHalf(let words, let format, let scratch):
            let f = scratch.raw.assumingMemoryBound(to: Float.self)
            format.load(words.raw.assumingMemoryBound(to: UInt16.self) + s.full.lowerBound + offset, count: count, into: f)
            return f
        case .reduceScattered(let shards, _):
            return shards.raw.assumingMemoryBound(to: Float.self) + s.local + offset
        }
    }
}
