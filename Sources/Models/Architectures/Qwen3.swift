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

// MARK: GGUF names

/// Qwen3 as llama.cpp writes it (`qwen3`): Qwen2's keys and unpermuted Q/K, no q/k/v biases, the per-head
/// norms as attn_q_norm/attn_k_norm. transformers 5.23 reads no head size for qwen3 (its GGUF key table has
/// no attention.key_length), so the config keeps Qwen3Config's head_dim 128: a file whose heads are
/// another size cannot be loaded by it, and import refuses it naming the key; export refuses such a model.
extension Qwen3Architecture {
    public static let ggufFamilies = [ggufQwen3]

    /// transformers' fixed head size for qwen3 GGUF files.
    static let ggufHeadDim = 128

    static let ggufQwen3: GGUFArchitectureMapping = {
        var m = GGUFArchitectureMapping(
            ggufArchitecture: "qwen3", modelType: "qwen3", hfClass: "Qwen3ForCausalLM", tokenizerClass: "Qwen2Tokenizer",
            tokenizerConfigExtras: [("add_prefix_space", .null)], configKeys: GGUFArchitectureMapping.llamaKeys,
            requiredKeys: GGUFArchitectureMapping.requiredKeys,
            configDefaults: [
                ("attention_bias", .bool(false)), ("attention_dropout", .double(0)), ("bos_token_id", .null),
                ("eos_token_id", .null), ("head_dim", .int(Int64(ggufHeadDim))), ("hidden_act", .string("silu")),
                ("initializer_range", .double(0.02)), ("max_position_embeddings", .int(32768)), ("max_window_layers", .int(28)),
                ("pad_token_id", .null), ("rms_norm_eps", .double(1e-6)), ("rope_theta", .double(10000)),
                ("sliding_window", .null), ("use_cache", .bool(true)), ("use_sliding_window", .bool(false)),
            ],
            permutesQK: false, qkvBias: false, defaultPreTokenizer: "qwen2", listsLayerTypes: true,
            blockTensors: GGUFArchitectureMapping.llamaBlock(qkvBias: false, extras: [
                .init(gguf: "attn_q_norm.weight", hf: "self_attn.q_norm.weight"),
                .init(gguf: "attn_k_norm.weight", hf: "self_attn.k_norm.weight"),
            ]))
        // llama.cpp's TextModel writes the head size as key and value length whenever config.json has head_dim.
        m.exportOnlyKeys = [("attention.key_length", "head_dim"), ("attention.value_length", "head_dim")]
        return m
    }()
}
