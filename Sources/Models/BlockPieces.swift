import Kernels
import Tensors

/// What every piece of the forward and backward reads: the batch and the base pointers of the
/// weights and (backward only) the gradients, both laid out by the model's `ParameterLayout`.
public struct BlockContext {
    let weights: UnsafeMutablePointer<Float>
    /// Nil in inference, and for the frozen base weights of adapter training.
    let grads: UnsafeMutablePointer<Float>?
    let tokens: [Int32]
    let positions: [Int32]
    let spans: [AttentionSpan]
    /// Incremental decoding: keys and values go to (and attention reads from) the cache.
    let cache: KVCache?
    /// LoRA: the adapters attached at named projections, with their own weights and gradients.
    var adapter: AdapterContext? = nil
    /// Told when a block's attention and MLP compute (the FLOPs profiler); nil outside training.
    var timer: ScheduleTimer? = nil
    var N: Int { tokens.count }

    /// Weight views; a base tensor that `modules_to_save` replaced reads the adapter's trained copy.
    @inline(__always) func w(_ offset: Int) -> UnsafeMutablePointer<Float> {
        if let a = adapter, !a.saved.isEmpty, let o = a.savedOffset(offset) { return a.weights + o }
        return weights + offset
    }
    @inline(__always) func w(_ offset: Int?) -> UnsafeMutablePointer<Float>? { offset.map { w($0) } }
    /// Gradient views: nil where the base weights are frozen (no weight gradient is computed); a saved
    /// module's gradient goes to the adapter's.
    @inline(__always) func g(_ offset: Int) -> UnsafeMutablePointer<Float>? {
        if let a = adapter, !a.saved.isEmpty, let o = a.savedOffset(offset) { return a.grads.map { $0 + o } }
        return grads.map { $0 + offset }
    }
    @inline(__always) func g(_ offset: Int?) -> UnsafeMutablePointer<Float>? { offset.flatMap { g($0) } }

    func withPositions<R>(_ body: (UnsafePointer<Int32>) -> R) -> R {
        positions.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// One tensor a block keeps between its forward and backward: `width` floats per token. Statistics
/// ([N]-sized norm means and rstds) stay f32 under mixed precision (see `ActivationStash`).
public struct ActivationSlot: Sendable, Equatable {
    public var width: Int
    public var isStatistic: Bool
    public init(_ width: Int, statistic: Bool = false) {
        self.width = width
        isStatistic = statistic
    }
}

/// One block's saved tensors, as views [N, width] in the order of the architecture's slots (each
/// architecture names them with its own `Int` enum), plus the attention probabilities, whose size
/// depends on the spans. `probs` is nil in inference, which keeps none.
public struct BlockActivations {
    let views: [UnsafeMutablePointer<Float>]
    let probs: GrowingBuffer?

    @inline(__always) subscript<Slot: RawRepresentable>(_ s: Slot) -> UnsafeMutablePointer<Float> where Slot.RawValue == Int {
        views[s.rawValue]
    }

    /// Views carved from one allocation for `tokens` rows.
    static func carve(_ slots: [ActivationSlot], tokens n: Int, keepProbs: Bool) -> (FlatBuffer, BlockActivations) {
        let (buffer, views) = Models.carve(slots.map { $0.width * n })
        return (buffer, BlockActivations(views: views, probs: keepProbs ? GrowingBuffer() : nil))
    }

    /// Where attention writes its probabilities: the kept buffer, or nil (inference).
    func probsPointer(count: Int) -> UnsafeMutablePointer<Float>? { probs?.pointer(count: count) }
}

/// Scratch shared by every block's forward and backward (nothing in it outlives one block call):
/// the sizes cover every family.
public final class BlockScratch {
    private let storage: FlatBuffer
    let proj: UnsafeMutablePointer<Float>   // [N, H]     a branch's output before its residual add
    let dres: UnsafeMutablePointer<Float>   // [N, H]     gradient of the residual stream
    let dln: UnsafeMutablePointer<Float>    // [N, H]     gradient of a norm output
    let dtmp: UnsafeMutablePointer<Float>   // [N, H]     gradient of a post-norm's input (Gemma)
    let datt: UnsafeMutablePointer<Float>   // [N, qDim]
    let dq: UnsafeMutablePointer<Float>     // [N, qDim]
    let dk: UnsafeMutablePointer<Float>     // [N, kvDim]
    let dv: UnsafeMutablePointer<Float>     // [N, kvDim]
    let dact: UnsafeMutablePointer<Float>   // [N, I]
    let dgate: UnsafeMutablePointer<Float>  // [N, I]
    let dup: UnsafeMutablePointer<Float>    // [N, I]
    let dqRaw: UnsafeMutablePointer<Float>  // [N, qDim]  gradient of q before a per-head norm (Qwen3, Gemma)
    let dkRaw: UnsafeMutablePointer<Float>  // [N, kvDim]

    init(_ c: TransformerConfig, tokens n: Int) {
        let s = c.attentionShape, H = c.hiddenSize, I = c.intermediateSize
        let (buffer, v) = carve([H, H, H, H, s.qDim, s.qDim, s.kvDim, s.kvDim, I, I, I, s.qDim, s.kvDim].map { $0 * n })
        storage = buffer
        (proj, dres, dln, dtmp, datt, dq) = (v[0], v[1], v[2], v[3], v[4], v[5])
        (dk, dv, dact, dgate, dup, dqRaw, dkRaw) = (v[6], v[7], v[8], v[9], v[10], v[11], v[12])
    }
}

/// The final norm's saved statistics over N rows (mean only for LayerNorm).
public struct NormStatistics {
    let mean: UnsafeMutablePointer<Float>
    let rstd: UnsafeMutablePointer<Float>
}

/// A dense layer y[N, out] = x[N, in]·W + b over one weight in the parameter buffer. A LoRA adapter
/// attaches here, by the projection's name. `columnOffset`/`ldw` select a column block of a fused
/// [in, k·out] Conv1D weight (GPT-2's c_attn); row blocks of a fused nn.Linear weight (Phi-3's qkv_proj)
/// are plain offsets.
public struct Linear {
    /// The Hugging Face module path ("model.layers.0.self_attn.q_proj"): where a LoRA adapter attaches.
    var module: String
    /// Where this piece's outputs start among the module's (a row block of a fused projection).
    var outputOffset = 0
    var weight: Int
    var bias: Int?
    var inFeatures: Int
    var outFeatures: Int
    var layout: WeightLayout = .outIn
    /// Row stride of a Conv1D column block; nil when the weight is packed.
    var ldw: Int? = nil

    func forward(_ ctx: BlockContext, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>) {
        let N = ctx.N
        if let ldw {
            // A column block of a fused [in, ldw] Conv1D weight: bias rows first, then accumulate.
            let b = ctx.w(bias)!
            for r in 0..<N { (out + r * outFeatures).update(from: b, count: outFeatures) }
            Matmul.gemm(transA: false, transB: false, M: N, N: outFeatures, K: inFeatures, A: inp, lda: inFeatures,
                        B: ctx.w(weight), ldb: ldw, beta: 1, C: out, ldc: outFeatures)
        } else {
            Matmul.forward(out: out, inp: inp, weight: ctx.w(weight), bias: ctx.w(bias), M: N, K: inFeatures,
                           N: outFeatures, layout: layout)
        }
        if let lora = ctx.adapter?.module(module) { lora.forward(ctx, piece: self, out: out, inp: inp) }
    }

    /// dinp = dout·Wᵀ (added when `accumulate`), dW and db added into ctx.grads.
    func backward(_ ctx: BlockContext, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                  accumulate: Bool = false) {
        Matmul.backward(dinp: dinp, dweight: ctx.g(weight), dbias: ctx.g(bias), dout: dout, inp: inp, weight: ctx.w(weight),
                        M: ctx.N, K: inFeatures, N: outFeatures, layout: layout, ldw: ldw, accumulateInput: accumulate)
        if let lora = ctx.adapter?.module(module) { lora.backward(ctx, piece: self, dinp: dinp, dout: dout, inp: inp) }
    }
}

/// A norm over rows of `channels`: RMSNorm (weight, or 1 + weight for Gemma) or LayerNorm (weight and
/// bias). Forward saves rstd (and LayerNorm's mean); `rows` per token is the number of heads for a
/// per-head q/k norm, 1 otherwise.
struct Norm {
    enum Kind { case rms, rmsUnitOffset, layer(bias: Int) }
    var kind: Kind
    var weight: Int
    var channels: Int
    var eps: Float
    var rowsPerToken = 1

    func forward(_ ctx: BlockContext, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                 mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?) {
        let rows = ctx.N * rowsPerToken
        switch kind {
        case .rms:
            RMSNorm.forward(out: out, rstd: rstd, inp: inp, weight: ctx.w(weight), N: rows, C: channels, eps: eps)
        case .rmsUnitOffset:
            RMSNorm.forward(out: out, rstd: rstd, inp: inp, weight: ctx.w(weight), N: rows, C: channels, eps: eps, unitOffset: true)
        case .layer(let bias):
            LayerNorm.forward(out: out, mean: mean, rstd: rstd, inp: inp, weight: ctx.w(weight), bias: ctx.w(bias),
                              N: rows, C: channels, eps: eps)
        }
    }

    /// dinp += the input gradient; weight (and bias) gradients added into ctx.grads.
    func backward(_ ctx: BlockContext, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                  mean: UnsafePointer<Float>?, rstd: UnsafePointer<Float>) {
        let rows = ctx.N * rowsPerToken
        switch kind {
        case .rms:
            RMSNorm.backward(dinp: dinp, dweight: ctx.g(weight), dout: dout, inp: inp, weight: ctx.w(weight), rstd: rstd,
                             N: rows, C: channels)
        case .rmsUnitOffset:
            RMSNorm.backward(dinp: dinp, dweight: ctx.g(weight), dout: dout, inp: inp, weight: ctx.w(weight), rstd: rstd,
                             N: rows, C: channels, unitOffset: true)
        case .layer(let bias):
            LayerNorm.backward(dinp: dinp, dweight: ctx.g(weight), dbias: ctx.g(bias), dout: dout, inp: inp,
                               weight: ctx.w(weight), mean: mean!, rstd: rstd, N: rows, C: channels)
        }
    }
}

/// Self-attention's core on projected q[N, qDim], k, v[N, kvDim] (RoPE already applied): causal per
/// span, optionally limited to a sliding window, scaled by `scale` (head_dim^-0.5 unless the family says
/// otherwise). With a KV cache, k and v were written into it and attention reads all cached rows.
struct SelfAttention {
    var shape: AttentionShape
    var scale: Float
    /// Sliding-window layers: a query sees only the last `window` keys, itself included.
    var window: Int? = nil

    func forward(_ ctx: BlockContext, layer l: Int, out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                 q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>) {
        let keys = ctx.cache.map { UnsafePointer($0.keys(layer: l)) } ?? k
        let values = ctx.cache.map { UnsafePointer($0.values(layer: l)) } ?? v
        Attention.forward(out: out, probs: probs, q: q, k: keys, v: values, spans: ctx.spans, shape: shape,
                          scale: scale, window: window)
    }

    /// dq overwritten; dk, dv zeroed and accumulated.
    func backward(_ ctx: BlockContext, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                  dout: UnsafePointer<Float>, probs: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                  v: UnsafePointer<Float>) {
        dk.update(repeating: 0, count: ctx.N * shape.kvDim)
        dv.update(repeating: 0, count: ctx.N * shape.kvDim)
        Attention.backward(dq: dq, dk: dk, dv: dv, dout: dout, probs: probs, q: q, k: k, v: v, spans: ctx.spans, shape: shape,
                           scale: scale)
    }

    /// Where this layer's new keys and values go: the cache's next rows, or the block's own buffers.
    func keyValueDestinations(_ ctx: BlockContext, layer l: Int, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>)
        -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        guard let cache = ctx.cache else { return (k, v) }
        return (cache.keys(layer: l) + cache.length * shape.kvDim, cache.values(layer: l) + cache.length * shape.kvDim)
    }
}

/// An f32 buffer that grows to the largest size asked for (attention probabilities depend on the spans).
final class GrowingBuffer {
    private var storage = FlatBuffer(dtype: .f32, count: 0)
    func pointer(count: Int) -> UnsafeMutablePointer<Float> {
        if storage.count < count { storage = FlatBuffer(dtype: .f32, count: count, zeroed: false) }
        return storage.raw.assumingMemoryBound(to: Float.self)
    }
}

/// Carves consecutive f32 views of the given sizes out of one allocation.
func carve(_ sizes: [Int]) -> (FlatBuffer, [UnsafeMutablePointer<Float>]) {
    let buffer = FlatBuffer(dtype: .f32, count: sizes.reduce(0, +), zeroed: false)
    var p = buffer.raw.assumingMemoryBound(to: Float.self)
    var views: [UnsafeMutablePointer<Float>] = []
    for s in sizes { views.append(p); p += s }
    return (buffer, views)
}
