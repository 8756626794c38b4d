import Kernels
import Tensors

/// Mixed precision's saved activations: one block's tensors kept in bf16 or f16 between its forward and
/// its backward, while the block computes in one shared f32 working set (the CPU has no half arithmetic).
/// The per-row statistics (LayerNorm mean, rstd) stay f32: they are [N] against [N, H] and I-wide
/// tensors, and rounding an rstd to 8 mantissa bits would scale a whole row's gradient by its error,
/// which is why transformers' norms upcast too.
final class ActivationStash {
    let dtype: DType
    /// The [N, width] tensors, each at its offset for `maxTokens` rows; only the first N rows are used.
    private let tensors: FlatBuffer
    private let stats: FlatBuffer
    private var probs: FlatBuffer

    init(dtype: DType, slots: [ActivationSlot], maxTokens: Int) {
        self.dtype = dtype
        let statWidth = slots.filter(\.isStatistic).map(\.width).reduce(0, +)
        let tensorWidth = slots.map(\.width).reduce(0, +) - statWidth
        tensors = FlatBuffer(dtype: dtype, count: tensorWidth * maxTokens, zeroed: false)
        stats = FlatBuffer(dtype: .f32, count: statWidth * maxTokens, zeroed: false)
        probs = FlatBuffer(dtype: dtype, count: 0)
    }

    var byteCount: Int { tensors.byteCount + stats.byteCount + probs.byteCount }

    /// Copies (rounding) the first `tokens` rows of every piece, and `probsCount` probabilities, in.
    func save(_ a: BlockActivations, slots: [ActivationSlot], tokens n: Int, probsCount: Int) {
        var tensorOffset = 0, statOffset = 0
        for (i, view) in a.views.enumerated() {
            let count = slots[i].width * n
            if slots[i].isStatistic {
                stats.store(UnsafeBufferPointer(start: view, count: count), at: statOffset)
                statOffset += count
            } else {
                Self.convert(count) { r in tensors.store(UnsafeBufferPointer(start: view + r.lowerBound, count: r.count), at: tensorOffset + r.lowerBound) }
                tensorOffset += count
            }
        }
        if probs.count < probsCount { probs = FlatBuffer(dtype: dtype, count: probsCount, zeroed: false) }
        let p = a.probs!.pointer(count: probsCount)
        Self.convert(probsCount) { r in probs.store(UnsafeBufferPointer(start: p + r.lowerBound, count: r.count), at: r.lowerBound) }
    }

    /// The saved rows back into the f32 working set `a` (as saved by `save` with the same arguments).
    func restore(into a: BlockActivations, slots: [ActivationSlot], tokens n: Int, probsCount: Int) {
        var tensorOffset = 0, statOffset = 0
        for (i, view) in a.views.enumerated() {
            let count = slots[i].width * n
            if slots[i].isStatistic {
                stats.load(into: UnsafeMutableBufferPointer(start: view, count: count), from: statOffset)
                statOffset += count
            } else {
                Self.convert(count) { r in tensors.load(into: UnsafeMutableBufferPointer(start: view + r.lowerBound, count: r.count), from: tensorOffset + r.lowerBound) }
                tensorOffset += count
            }
        }
        let p = a.probs!.pointer(count: probsCount)
        Self.convert(probsCount) { r in probs.load(into: UnsafeMutableBufferPointer(start: p + r.lowerBound, count: r.count), from: r.lowerBound) }
    }

    /// Conversion is memory-bound but still worth both cores on large tensors.
    private static func convert(_ count: Int, _ body: (Range<Int>) -> Void) {
        Parallel.forEachChunk(count, minPerThread: 1 << 16, body)
    }
}
