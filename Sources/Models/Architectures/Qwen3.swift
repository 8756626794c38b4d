import Formats
import Kernels
import Tensors

/// Qwen3: the Llama block with q and k RMS-normalised per head (over head_dim, one weight shared by the
/// heads) after their projections and before RoPE. `attention_bias` puts a bias on all four attention
/// projections (unlike Qwen2, whose o_proj never has one); the MLP has none. transformers ignores
/// `sliding_window` unless `use_sliding_window` is true, which we refuse.
public struct Qwen3Architecture: Architecture {
    public var attentionBias: Bool

    static func decode(_ json: JSONValue, source: String) throws -> TransformerConfig {
        let f = try JSONValueDecoder(source: source).decode(LlamaArchitecture.File.self, from: json)
        try f.requireSiluAndFullAttention(source: source)
        return try f.config(architecture: Qwen3Architecture(attentionBias: f.attentionBias ?? false), json: json, source: source)
    }

    public func layout(_ c: TransformerConfig) -> ParameterLayout {
        LlamaArchitecture.layout(c, qkvBias: attentionBias, outputBias: attentionBias, mlpBias: false,
                                 attentionExtras: [("self_attn.q_norm.weight", [c.headDim]), ("self_attn.k_norm.weight", [c.headDim])])
    }

    /// Llama's slots, then the projections before their norm and the norms' statistics.
    public func activationSlots(_ c: TransformerConfig) -> [ActivationSlot] {
        LlamaArchitecture(qkvBias: false, outputBias: false, mlpBias: false).activationSlots(c) +
            [ActivationSlot(c.attentionShape.qDim), ActivationSlot(c.attentionShape.kvDim),
             ActivationSlot(c.numHeads, statistic: true), ActivationSlot(c.numKVHeads, statistic: true)]
    }

    public func bind(_ c: TransformerConfig, layout: ParameterLayout) -> BoundArchitecture {
        let norms = (0..<c.numLayers).map { l in
            let p = "model.layers.\(l).self_attn."
            return (Norm(kind: .rms, weight: layout[p + "q_norm.weight"]!.offset, channels: c.headDim, eps: c.normEps, rowsPerToken: c.numHeads),
                    Norm(kind: .rms, weight: layout[p + "k_norm.weight"]!.offset, channels: c.headDim, eps: c.normEps, rowsPerToken: c.numKVHeads))
        }
        return QKNormBinding(c, blocks: LlamaArchitecture.blockWeights(c, layout: layout), layout: layout, qkNorms: norms)
    }
}

/// The Llama block with per-head q/k norms before RoPE (Qwen3).
final class QKNormBinding: LlamaBinding {
    enum ExtraSlot: Int { case qRaw = 12, kRaw, qRstd, kRstd }
    let qkNorms: [(q: Norm, k: Norm)]

    init(_ c: TransformerConfig, blocks: [LlamaBlockWeights], layout: ParameterLayout, qkNorms: [(q: Norm, k: Norm)]) {
        self.qkNorms = qkNorms
        super.init(c, blocks: blocks, layout: layout)
    }

    override func projectQKV(_ l: Int, _ ctx: BlockContext, a: BlockActivations, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) {
        let b = blocks[l], n = qkNorms[l], ln = a[Slot.ln1]
        b.q.forward(ctx, out: a[ExtraSlot.qRaw], inp: ln)
        b.k.forward(ctx, out: a[ExtraSlot.kRaw], inp: ln)
        b.v.forward(ctx, out: v, inp: ln)
        n.q.forward(ctx, out: a[Slot.q], inp: a[ExtraSlot.qRaw], mean: nil, rstd: a[ExtraSlot.qRstd])
        n.k.forward(ctx, out: k, inp: a[ExtraSlot.kRaw], mean: nil, rstd: a[ExtraSlot.kRstd])
        applyRotary(ctx, q: a[Slot.q], k: k)
    }

    override func projectQKVBackward(_ l: Int, _ ctx: BlockContext, a: BlockActivations, s: BlockScratch) {
        let b = blocks[l], n = qkNorms[l], shape = config.attentionShape
        applyRotaryBackward(ctx, dq: s.dq, dk: s.dk)
        s.dqRaw.update(repeating: 0, count: ctx.N * shape.qDim)
        s.dkRaw.update(repeating: 0, count: ctx.N * shape.kvDim)
        n.q.backward(ctx, dinp: s.dqRaw, dout: s.dq, inp: a[ExtraSlot.qRaw], mean: nil, rstd: a[ExtraSlot.qRstd])
        n.k.backward(ctx, dinp: s.dkRaw, dout: s.dk, inp: a[ExtraSlot.kRaw], mean: nil, rstd: a[ExtraSlot.kRstd])
        b.q.backward(ctx, dinp: s.dln, dout: s.dqRaw, inp: a[Slot.ln1])
        b.k.backward(ctx, dinp: s.dln, dout: s.dkRaw, inp: a[Slot.ln1], accumulate: true)
        b.v.backward(ctx, dinp: s.dln, dout: s.dv, inp: a[Slot.ln1], accumulate: true)
    }
}
