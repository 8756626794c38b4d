import Formats
import Kernels
import Tensors

/// The Llama family: Llama 2/3, Mistral, Qwen2 and SmolLM share one architecture (RMSNorm, RoPE,
/// GQA attention, SwiGLU MLP); they differ in config keys and in where biases sit. Phi-3 and Qwen3
/// build on its block (Phi3.swift, Qwen3.swift).
public struct LlamaArchitecture: Architecture {
    /// Bias on q/k/v (Qwen2 always; Llama when attention_bias), on o_proj (Llama attention_bias only),
    /// and on the MLP's projections (mlp_bias).
    public var qkvBias: Bool
    public var outputBias: Bool
    public var mlpBias: Bool
    /// Keys a query sees at most, on every layer (Mistral); nil for full causal attention.
    public var slidingWindow: Int? = nil

    /// config.json as transformers 4 and 5 write it. Optional where transformers accepts null or absence.
    struct File: Decodable {
        var modelType: String
        var vocabSize: Int
        var hiddenSize: Int
        var intermediateSize: Int
        var numHiddenLayers: Int
        var numAttentionHeads: Int
        var numKeyValueHeads: Int?
        var headDim: Int?
        var hiddenAct: String?
        var maxPositionEmbeddings: Int?
        var rmsNormEps: Double?
        var ropeTheta: Double?
        var ropeScaling: RopeScaling?
        var ropeParameters: RopeScaling?
        var tieWordEmbeddings: Bool?
        var attentionBias: Bool?
        var mlpBias: Bool?
        var bosTokenId: Int?
        var eosTokenId: TokenIds?
        var padTokenId: Int?
        var torchDtype: String?
        var dtype: String?
        var slidingWindow: Int?
        var useSlidingWindow: Bool?

        enum CodingKeys: String, CodingKey {
            case modelType = "model_type"
            case vocabSize = "vocab_size"
            case hiddenSize = "hidden_size"
            case intermediateSize = "intermediate_size"
            case numHiddenLayers = "num_hidden_layers"
            case numAttentionHeads = "num_attention_heads"
            case numKeyValueHeads = "num_key_value_heads"
            case headDim = "head_dim"
            case hiddenAct = "hidden_act"
            case maxPositionEmbeddings = "max_position_embeddings"
            case rmsNormEps = "rms_norm_eps"
            case ropeTheta = "rope_theta"
            case ropeScaling = "rope_scaling"
            case ropeParameters = "rope_parameters"
            case tieWordEmbeddings = "tie_word_embeddings"
            case attentionBias = "attention_bias"
            case mlpBias = "mlp_bias"
            case bosTokenId = "bos_token_id"
            case eosTokenId = "eos_token_id"
            case padTokenId = "pad_token_id"
            case torchDtype = "torch_dtype"
            case dtype
            case slidingWindow = "sliding_window"
            case useSlidingWindow = "use_sliding_window"
        }
    }

    /// `rope_scaling` (transformers 4; old files say "type") or `rope_parameters` (transformers 5,
    /// which also carries rope_theta).
    struct RopeScaling: Decodable {
        var ropeType: String?
        var type: String?
        var factor: Double?
        var lowFreqFactor: Double?
        var highFreqFactor: Double?
        var originalMaxPositionEmbeddings: Int?
        var ropeTheta: Double?

        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type"
            case type
            case factor
            case lowFreqFactor = "low_freq_factor"
            case highFreqFactor = "high_freq_factor"
            case originalMaxPositionEmbeddings = "original_max_position_embeddings"
            case ropeTheta = "rope_theta"
        }
    }

    static func decode(_ json: JSONValue, source: String) throws -> TransformerConfig {
        let f = try JSONValueDecoder(source: source).decode(File.self, from: json)
        try f.requireSiluAndFullAttention(source: source)
        let isQwen2 = f.modelType == "qwen2"
        // Mistral attends over a sliding window on every layer when the key is set; Llama has no such key
        // and Qwen2 uses it only with use_sliding_window, refused above.
        let window = f.modelType == "mistral" ? f.slidingWindow : nil
        let architecture = LlamaArchitecture(qkvBias: isQwen2 || (f.attentionBias ?? false),
                                             outputBias: !isQwen2 && (f.attentionBias ?? false), mlpBias: f.mlpBias ?? false,
                                             slidingWindow: window)
        return try f.config(architecture: architecture, json: json, source: source)
    }

    static func rotaryScaling(_ s: RopeScaling?, source: String) throws -> RotaryEmbedding.Scaling {
        guard let s else { return .none }
        let type = s.ropeType ?? s.type ?? "default"
        let key = "rope_scaling.factor"
        switch type {
        case "default": return .none
        case "linear":
            guard let factor = s.factor else { throw ModelConfigError.invalid(file: source, key: key, message: "linear scaling needs a factor") }
            return .linear(factor: Float(factor))
        case "llama3":
            guard let factor = s.factor, let low = s.lowFreqFactor, let high = s.highFreqFactor,
                  let orig = s.originalMaxPositionEmbeddings else {
                throw ModelConfigError.invalid(file: source, key: "rope_scaling",
                                               message: "llama3 scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings")
            }
            return .llama3(factor: Float(factor), lowFreqFactor: Float(low), highFreqFactor: Float(high), originalMaxPositions: orig)
        default:
            throw ModelConfigError.unsupported(file: source, key: "rope_scaling.rope_type", message: "'\(type)' (supported: default, linear, llama3)")
        }
    }

    /// Hugging Face names in state-dict order; each block's tensors contiguous.
    public func layout(_ c: TransformerConfig) -> ParameterLayout {
        Self.layout(c, qkvBias: qkvBias, outputBias: outputBias, mlpBias: mlpBias)
    }

    /// The Llama-style table; `attentionExtras` appends a family's own per-layer attention tensors
    /// (Qwen3's q_norm/k_norm) after o_proj, where transformers' state dict has them.
    static func layout(_ c: TransformerConfig, qkvBias: Bool, outputBias: Bool, mlpBias: Bool,
                       attentionExtras: [(name: String, shape: [Int])] = []) -> ParameterLayout {
        var l = ParameterLayout()
        let (h, q, kv, i) = (c.hiddenSize, c.numHeads * c.headDim, c.numKVHeads * c.headDim, c.intermediateSize)
        l.append("model.embed_tokens.weight", shape: [c.vocabSize, h], group: 0)
        for layer in 0..<c.numLayers {
            let p = "model.layers.\(layer)."
            let g = layer + 1
            func linear(_ name: String, _ shape: [Int], bias: Bool) {
                l.append(p + name + ".weight", shape: shape, group: g)
                if bias { l.append(p + name + ".bias", shape: [shape[0]], group: g) }
            }
            linear("self_attn.q_proj", [q, h], bias: qkvBias)
            linear("self_attn.k_proj", [kv, h], bias: qkvBias)
            linear("self_attn.v_proj", [kv, h], bias: qkvBias)
            linear("self_attn.o_proj", [h, q], bias: outputBias)
            for e in attentionExtras { l.append(p + e.name, shape: e.shape, group: g) }
            linear("mlp.gate_proj", [i, h], bias: mlpBias)
            linear("mlp.up_proj", [i, h], bias: mlpBias)
            linear("mlp.down_proj", [h, i], bias: mlpBias)
            l.append(p + "input_layernorm.weight", shape: [h], group: g)
            l.append(p + "post_attention_layernorm.weight", shape: [h], group: g)
        }
        l.append("model.norm.weight", shape: [h], group: c.numLayers + 1)
        if !c.tieWordEmbeddings { l.append("lm_head.weight", shape: [c.vocabSize, h], group: c.numLayers + 1) }
        return l
    }

    /// In the order of `LlamaBinding.Slot`.
    public func activationSlots(_ c: TransformerConfig) -> [ActivationSlot] {
        let s = c.attentionShape, H = c.hiddenSize, I = c.intermediateSize
        return [ActivationSlot(H), ActivationSlot(1, statistic: true), ActivationSlot(s.qDim), ActivationSlot(s.kvDim),
                ActivationSlot(s.kvDim), ActivationSlot(s.qDim), ActivationSlot(H), ActivationSlot(H),
                ActivationSlot(1, statistic: true), ActivationSlot(I), ActivationSlot(I), ActivationSlot(I)]
    }

    public func bind(_ c: TransformerConfig, layout: ParameterLayout) -> BoundArchitecture {
        LlamaBinding(c, blocks: Self.blockWeights(c, layout: layout), layout: layout, window: slidingWindow)
    }

    /// Each block's projections and norms by their Llama names.
    static func blockWeights(_ c: TransformerConfig, layout: ParameterLayout) -> [LlamaBlockWeights] {
        let off = { (name: String) in layout[name]!.offset }
        let opt = { (name: String) in layout[name]?.offset }
        let shape = c.attentionShape, (H, I) = (c.hiddenSize, c.intermediateSize)
        return (0..<c.numLayers).map { l in
            let p = "model.layers.\(l)."
            func linear(_ name: String, _ inFeatures: Int, _ outFeatures: Int) -> Linear {
                Linear(module: p + name, weight: off(p + name + ".weight"), bias: opt(p + name + ".bias"), inFeatures: inFeatures,
                       outFeatures: outFeatures)
            }
            return LlamaBlockWeights(
                norm1: Norm(kind: .rms, weight: off(p + "input_layernorm.weight"), channels: H, eps: c.normEps),
                q: linear("self_attn.q_proj", H, shape.qDim), k: linear("self_attn.k_proj", H, shape.kvDim),
                v: linear("self_attn.v_proj", H, shape.kvDim), o: linear("self_attn.o_proj", shape.qDim, H),
                norm2: Norm(kind: .rms, weight: off(p + "post_attention_layernorm.weight"), channels: H, eps: c.normEps),
                gate: linear("mlp.gate_proj", H, I), up: linear("mlp.up_proj", H, I), down: linear("mlp.down_proj", I, H))
        }
    }
}

/// One Llama-style block's weights, resolved to offsets. Phi-3's fused projections resolve to row
/// blocks of one weight.
struct LlamaBlockWeights {
    var norm1: Norm
    var q, k, v, o: Linear
    var norm2: Norm
    var gate, up, down: Linear
}

/// The Llama block: x + o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x)))), then + down(silu(gate(n2))·up(n2)).
/// Qwen3 subclasses it to normalise q and k per head before RoPE.
class LlamaBinding: BoundArchitecture {
    enum Slot: Int, CaseIterable { case ln1, rstd1, q, k, v, att, mid, ln2, rstd2, gate, up, act }

    let config: TransformerConfig
    let blocks: [LlamaBlockWeights]
    let embedding: Int
    let finalNorm: Norm
    let headWeight: Int
    let attention: SelfAttention
    var rope: RotaryEmbedding

    /// The embedding, final norm and head by their Llama names (every Llama-style family shares them).
    /// `window`: every layer attends over the last `window` keys only (Mistral's and Phi-3's sliding_window).
    init(_ c: TransformerConfig, blocks: [LlamaBlockWeights], layout: ParameterLayout, window: Int? = nil) {
        config = c
        self.blocks = blocks
        embedding = layout["model.embed_tokens.weight"]!.offset
        finalNorm = Norm(kind: .rms, weight: layout["model.norm.weight"]!.offset, channels: c.hiddenSize, eps: c.normEps)
        headWeight = c.tieWordEmbeddings ? embedding : layout["lm_head.weight"]!.offset
        attention = SelfAttention(shape: c.attentionShape, scale: c.attentionShape.scale, window: window)
        guard case .rotary(let theta, let scaling) = c.positions else { preconditionFailure("Llama blocks use rotary positions") }
        rope = RotaryEmbedding(headDim: c.headDim, theta: theta, scaling: scaling)
    }

    var logitSoftcap: Float? { nil }

    var projections: [(group: Int, piece: Linear)] {
        blocks.enumerated().flatMap { l, b in [b.q, b.k, b.v, b.o, b.gate, b.up, b.down].map { (l + 1, $0) } }
    }

    func reserveRotary(positions n: Int) { rope.reserve(positions: n) }

    func embedForward(_ ctx: BlockContext, out: UnsafeMutablePointer<Float>) {
        Embedding.forward(out: out, tokens: ctx.tokens, table: ctx.w(embedding), C: config.hiddenSize)
    }

    func embedBackward(_ ctx: BlockContext, dout: UnsafeMutablePointer<Float>) {
        guard let table = ctx.g(embedding) else { return }
        Embedding.backward(dtable: table, dout: dout, indices: ctx.tokens, C: config.hiddenSize,
                           skipping: config.paddingIndex.map(Int32.init))
    }

    func blockForward(_ l: Int, _ ctx: BlockContext, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                      a: BlockActivations, s: BlockScratch) {
        let b = blocks[l], n = ctx.N * config.hiddenSize
        b.norm1.forward(ctx, out: a[Slot.ln1], inp: x, mean: nil, rstd: a[Slot.rstd1])
        ctx.timer?.begin(.attention(l), backward: false)
        let (k, v) = attention.keyValueDestinations(ctx, layer: l, k: a[Slot.k], v: a[Slot.v])
        projectQKV(l, ctx, a: a, k: k, v: v)
        attention.forward(ctx, layer: l, out: a[Slot.att], probs: a.probsPointer(count: attention.shape.probsCount(ctx.spans)),
                          q: a[Slot.q], k: k, v: v)
        b.o.forward(ctx, out: s.proj, inp: a[Slot.att])
        a[Slot.mid].update(from: x, count: n)
        Residual.add(a[Slot.mid], s.proj, count: n)
        ctx.timer?.end(.attention(l), backward: false)
        b.norm2.forward(ctx, out: a[Slot.ln2], inp: a[Slot.mid], mean: nil, rstd: a[Slot.rstd2])
        ctx.timer?.begin(.mlp(l), backward: false)
        b.gate.forward(ctx, out: a[Slot.gate], inp: a[Slot.ln2])
        b.up.forward(ctx, out: a[Slot.up], inp: a[Slot.ln2])
        SwiGLU.forward(out: a[Slot.act], gate: a[Slot.gate], up: a[Slot.up], count: ctx.N * config.intermediateSize)
        b.down.forward(ctx, out: s.proj, inp: a[Slot.act])
        out.update(from: a[Slot.mid], count: n)
        Residual.add(out, s.proj, count: n)
        ctx.timer?.end(.mlp(l), backward: false)
    }

    /// q[N, qDim] into the activations and k, v into their destinations (the cache when decoding), from
    /// the normed input, RoPE applied to q and k.
    func projectQKV(_ l: Int, _ ctx: BlockContext, a: BlockActivations, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) {
        let b = blocks[l]
        b.q.forward(ctx, out: a[Slot.q], inp: a[Slot.ln1])
        b.k.forward(ctx, out: k, inp: a[Slot.ln1])
        b.v.forward(ctx, out: v, inp: a[Slot.ln1])
        applyRotary(ctx, q: a[Slot.q], k: k)
    }

    func applyRotary(_ ctx: BlockContext, q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>) {
        ctx.withPositions { pos in
            rope.apply(q, N: ctx.N, heads: config.numHeads, positions: pos)
            rope.apply(k, N: ctx.N, heads: config.numKVHeads, positions: pos)
        }
    }

    /// Backward of `applyRotary`, in place on the gradients.
    func applyRotaryBackward(_ ctx: BlockContext, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>) {
        ctx.withPositions { pos in
            rope.applyBackward(dq, N: ctx.N, heads: config.numHeads, positions: pos)
            rope.applyBackward(dk, N: ctx.N, heads: config.numKVHeads, positions: pos)
        }
    }

    func blockBackward(_ l: Int, _ ctx: BlockContext, x: UnsafePointer<Float>, a: BlockActivations, s: BlockScratch) {
        let b = blocks[l]
        // MLP: the residual passes dres straight through; the branch adds its input gradient via norm2.
        ctx.timer?.begin(.mlp(l), backward: true)
        b.down.backward(ctx, dinp: s.dact, dout: s.dres, inp: a[Slot.act])
        SwiGLU.backward(dgate: s.dgate, dup: s.dup, dout: s.dact, gate: a[Slot.gate], up: a[Slot.up], count: ctx.N * config.intermediateSize)
        b.gate.backward(ctx, dinp: s.dln, dout: s.dgate, inp: a[Slot.ln2])
        b.up.backward(ctx, dinp: s.dln, dout: s.dup, inp: a[Slot.ln2], accumulate: true)
        ctx.timer?.end(.mlp(l), backward: true)
        b.norm2.backward(ctx, dinp: s.dres, dout: s.dln, inp: a[Slot.mid], mean: nil, rstd: a[Slot.rstd2])
        // Attention.
        ctx.timer?.begin(.attention(l), backward: true)
        b.o.backward(ctx, dinp: s.datt, dout: s.dres, inp: a[Slot.att])
        attention.backward(ctx, dq: s.dq, dk: s.dk, dv: s.dv, dout: s.datt, probs: a.probs!.pointer(count: attention.shape.probsCount(ctx.spans)),
                           q: a[Slot.q], k: a[Slot.k], v: a[Slot.v])
        projectQKVBackward(l, ctx, a: a, s: s)
        ctx.timer?.end(.attention(l), backward: true)
        b.norm1.backward(ctx, dinp: s.dres, dout: s.dln, inp: x, mean: nil, rstd: a[Slot.rstd1])
    }

    /// From dq, dk, dv (after RoPE) to s.dln, the gradient of the normed input.
    func projectQKVBackward(_ l: Int, _ ctx: BlockContext, a: BlockActivations, s: BlockScratch) {
        let b = blocks[l]
        applyRotaryBackward(ctx, dq: s.dq, dk: s.dk)
        b.q.backward(ctx, dinp: s.dln, dout: s.dq, inp: a[Slot.ln1])
        b.k.backward(ctx, dinp: s.dln, dout: s.dk, inp: a[Slot.ln1], accumulate: true)
        b.v.backward(ctx, dinp: s.dln, dout: s.dv, inp: a[Slot.ln1], accumulate: true)
    }

    func finalNormForward(_ ctx: BlockContext, inp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, stats: NormStatistics) {
        finalNorm.forward(ctx, out: out, inp: inp, mean: stats.mean, rstd: stats.rstd)
    }

    func finalNormBackward(_ ctx: BlockContext, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                           inp: UnsafePointer<Float>, stats: NormStatistics) {
        finalNorm.backward(ctx, dinp: dinp, dout: dout, inp: inp, mean: stats.mean, rstd: stats.rstd)
    }
}

extension LlamaArchitecture.File {
    /// The MLP activation the Llama block computes (SwiGLU), and no `use_sliding_window` (Qwen2/Qwen3's
    /// switch for windowed layers, which these families do not implement).
    func requireSiluAndFullAttention(source: String, slidingWindowSwitch: Bool = true) throws {
        if let act = hiddenAct, act != "silu" {
            throw ModelConfigError.unsupported(file: source, key: "hidden_act", message: "activation '\(act)' (only silu)")
        }
        if slidingWindowSwitch, useSlidingWindow == true {
            throw ModelConfigError.unsupported(file: source, key: "use_sliding_window", message: "sliding-window attention")
        }
    }

    /// The architecture-independent part of a Llama-style config.json (also Qwen3's and Phi-3's keys).
    func config(architecture: any Architecture, json: JSONValue, source: String) throws -> TransformerConfig {
        let scaling = ropeParameters ?? ropeScaling
        let theta = ropeParameters?.ropeTheta ?? ropeTheta ?? 10000
        guard numAttentionHeads > 0 else {
            throw ModelConfigError.invalid(file: source, key: "num_attention_heads", message: "must be positive")
        }
        return try TransformerConfig(
            modelType: modelType, architecture: architecture, vocabSize: vocabSize, hiddenSize: hiddenSize,
            intermediateSize: intermediateSize, numLayers: numHiddenLayers, numHeads: numAttentionHeads,
            numKVHeads: numKeyValueHeads ?? numAttentionHeads, headDim: headDim ?? hiddenSize / numAttentionHeads,
            maxPositions: maxPositionEmbeddings ?? 2048, normEps: Float(rmsNormEps ?? 1e-6),
            positions: .rotary(theta: Float(theta), scaling: LlamaArchitecture.rotaryScaling(scaling, source: source)),
            tieWordEmbeddings: tieWordEmbeddings ?? false, bosTokenId: bosTokenId, eosTokenIds: eosTokenId?.ids ?? [],
            paddingIndex: padTokenId,
            torchDtype: (dtype ?? torchDtype).flatMap(DType.init(torchName:)),
            raw: json.objectValue ?? JSONObject()
        ).validated(source: source)
    }
}

/// `eos_token_id` may be one id or a list.
struct TokenIds: Decodable {
    var ids: [Int]
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(Int.self) { ids = [one] } else { ids = try c.decode([Int].self) }
    }
}

// MARK: GGUF names

/// The Llama-style families as llama.cpp spells them (ModelRegistry.ggufFamilies).
extension LlamaArchitecture {
    public static let ggufFamilies = [ggufLlama, ggufMistral, ggufQwen2]


    static let ggufLlama = GGUFArchitectureMapping(
        ggufArchitecture: "llama", modelType: "llama", hfClass: "LlamaForCausalLM", tokenizerClass: "TokenizersBackend",
        tokenizerConfigExtras: [], configKeys: GGUFArchitectureMapping.llamaKeys + [("rope.dimension_count", "head_dim")], requiredKeys: GGUFArchitectureMapping.requiredKeys,
        configDefaults: [
            ("attention_bias", .bool(false)), ("attention_dropout", .double(0)), ("bos_token_id", .int(1)),
            ("eos_token_id", .int(2)), ("hidden_act", .string("silu")), ("initializer_range", .double(0.02)),
            ("max_position_embeddings", .int(2048)), ("mlp_bias", .bool(false)), ("pad_token_id", .null),
            ("pretraining_tp", .int(1)), ("rms_norm_eps", .double(1e-6)), ("rope_theta", .double(10000)),
            ("use_cache", .bool(true)),
        ],
        permutesQK: true, qkvBias: false, defaultPreTokenizer: "default")

    /// Mistral has no GGUF architecture of its own: llama.cpp writes `llama`, and transformers calls the
    /// file Mistral only when `general.name` is exactly "mistral" (a list-membership test in
    /// `load_gguf_checkpoint`). Its weights are laid out (and permuted) as llama's.
    static let ggufMistral = GGUFArchitectureMapping(
        ggufArchitecture: "llama", modelType: "mistral", hfClass: "MistralForCausalLM", tokenizerClass: "TokenizersBackend",
        tokenizerConfigExtras: [], configKeys: GGUFArchitectureMapping.llamaKeys + [("rope.dimension_count", "head_dim")], requiredKeys: GGUFArchitectureMapping.requiredKeys,
        configDefaults: [
            ("attention_dropout", .double(0)), ("bos_token_id", .int(1)), ("eos_token_id", .int(2)),
            ("hidden_act", .string("silu")), ("initializer_range", .double(0.02)), ("max_position_embeddings", .int(131072)),
            ("pad_token_id", .null), ("rms_norm_eps", .double(1e-6)), ("rope_theta", .double(10000)),
            ("sliding_window", .int(4096)), ("use_cache", .bool(true)),
        ],
        permutesQK: true, qkvBias: false, defaultPreTokenizer: "default", generalName: "mistral")

    static let ggufQwen2 = GGUFArchitectureMapping(
        ggufArchitecture: "qwen2", modelType: "qwen2", hfClass: "Qwen2ForCausalLM", tokenizerClass: "Qwen2Tokenizer",
        tokenizerConfigExtras: [("add_prefix_space", .null)], configKeys: GGUFArchitectureMapping.llamaKeys, requiredKeys: GGUFArchitectureMapping.requiredKeys,
        configDefaults: [
            ("attention_dropout", .double(0)), ("bos_token_id", .null), ("eos_token_id", .null),
            ("hidden_act", .string("silu")), ("initializer_range", .double(0.02)), ("max_position_embeddings", .int(32768)),
            ("max_window_layers", .int(28)), ("pad_token_id", .null), ("rms_norm_eps", .double(1e-6)),
            ("rope_theta", .double(10000)), ("sliding_window", .null), ("use_cache", .bool(true)),
            ("use_sliding_window", .bool(false)),
        ],
        permutesQK: false, qkvBias: true, defaultPreTokenizer: "qwen2", listsLayerTypes: true)
}
