import Foundation
import Formats
import Kernels
import Tensors

/// Gemma 3, text only (`gemma3_text`, transformers' Gemma3ForCausalLM). Against the Llama block:
/// - every RMSNorm scales by (1 + w) (weights stored as offsets from one, initialised to 0);
/// - the embedding output is multiplied by √hidden (an f32 constant);
/// - four norms per block: the attention and MLP outputs are normed again before their residual add;
/// - q and k are normed per head before RoPE; attention is scaled by query_pre_attn_scalar^-0.5;
/// - layers are sliding-window (a query sees its last `sliding_window` keys) or global, interleaved as
///   `layer_types` says (older files: every `sliding_window_pattern`-th layer is global), each type with
///   its own RoPE theta (sliding: rope_local_base_freq; global: rope_theta and rope_scaling);
/// - the MLP is GeGLU with tanh-approximated GELU;
/// - logits are soft-capped: cap·tanh(z / cap) with final_logit_softcapping.
/// transformers 5.23 stores `attn_logit_softcapping` but never applies it; so neither do we.
public struct Gemma3Architecture: Architecture {
    public var attentionBias: Bool
    public var queryPreAttentionScalar: Double
    public var slidingWindow: Int
    /// Per layer: true for sliding-window attention.
    public var slidingLayers: [Bool]
    public var localRopeTheta: Float
    public var finalLogitSoftcap: Float?

    struct File: Decodable {
        struct Rope: Decodable {
            var ropeTheta: Double?
            var ropeType: String?
            var type: String?
            var factor: Double?
            enum CodingKeys: String, CodingKey { case ropeTheta = "rope_theta", ropeType = "rope_type", type, factor }
        }
        struct RopeParameters: Decodable {
            var fullAttention: Rope?
            var slidingAttention: Rope?
            enum CodingKeys: String, CodingKey { case fullAttention = "full_attention", slidingAttention = "sliding_attention" }
        }
        var vocabSize: Int
        var hiddenSize: Int
        var intermediateSize: Int
        var numHiddenLayers: Int
        var numAttentionHeads: Int
        var numKeyValueHeads: Int?
        var headDim: Int?
        var hiddenActivation: String?
        var maxPositionEmbeddings: Int?
        var rmsNormEps: Double?
        var queryPreAttnScalar: Double?
        var slidingWindow: Int?
        var slidingWindowPattern: Int?
        var layerTypes: [String]?
        var finalLogitSoftcapping: Double?
        var attentionBias: Bool?
        var useBidirectionalAttention: Bool?
        var ropeTheta: Double?
        var ropeLocalBaseFreq: Double?
        var ropeScaling: Rope?
        var ropeParameters: RopeParameters?
        var tieWordEmbeddings: Bool?
        var bosTokenId: Int?
        var eosTokenId: TokenIds?
        var padTokenId: Int?
        var torchDtype: String?
        var dtype: String?

        enum CodingKeys: String, CodingKey {
            case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
            case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
            case numKeyValueHeads = "num_key_value_heads", headDim = "head_dim", hiddenActivation = "hidden_activation"
            case maxPositionEmbeddings = "max_position_embeddings", rmsNormEps = "rms_norm_eps"
            case queryPreAttnScalar = "query_pre_attn_scalar", slidingWindow = "sliding_window"
            case slidingWindowPattern = "sliding_window_pattern", layerTypes = "layer_types"
            case finalLogitSoftcapping = "final_logit_softcapping", attentionBias = "attention_bias"
            case useBidirectionalAttention = "use_bidirectional_attention"
            case ropeTheta = "rope_theta", ropeLocalBaseFreq = "rope_local_base_freq", ropeScaling = "rope_scaling"
            case ropeParameters = "rope_parameters", tieWordEmbeddings = "tie_word_embeddings"
            case bosTokenId = "bos_token_id", eosTokenId = "eos_token_id", padTokenId = "pad_token_id"
            case torchDtype = "torch_dtype", dtype
        }
    }

    static func decode(_ json: JSONValue, source: String) throws -> TransformerConfig {
        let f = try JSONValueDecoder(source: source).decode(File.self, from: json)
        func invalid(_ key: String, _ message: String) -> ModelConfigError { .invalid(file: source, key: key, message: message) }
        if let act = f.hiddenActivation, !["gelu_pytorch_tanh", "gelu_new", "gelu_fast"].contains(act) {
            throw ModelConfigError.unsupported(file: source, key: "hidden_activation", message: "'\(act)' (only gelu_pytorch_tanh)")
        }
        if f.useBidirectionalAttention == true {
            throw ModelConfigError.unsupported(file: source, key: "use_bidirectional_attention", message: "bidirectional attention")
        }
        guard f.numAttentionHeads > 0 else { throw invalid("num_attention_heads", "must be positive") }
        let layers = f.numHiddenLayers
        let sliding: [Bool]
        if let types = f.layerTypes {
            guard types.count == layers else { throw invalid("layer_types", "has \(types.count) entries for \(layers) layers") }
            sliding = try types.map {
                switch $0 {
                case "sliding_attention": return true
                case "full_attention": return false
                default: throw invalid("layer_types", "'\($0)' is neither sliding_attention nor full_attention")
                }
            }
        } else {
            let pattern = f.slidingWindowPattern ?? 6
            guard pattern > 0 else { throw invalid("sliding_window_pattern", "must be positive, got \(pattern)") }
            sliding = (0..<max(layers, 0)).map { ($0 + 1) % pattern != 0 }
        }
        let window = f.slidingWindow ?? 4096
        guard window > 0 else { throw invalid("sliding_window", "must be positive, got \(window)") }
        // transformers 5 nests one rope block per layer type; transformers 4 keeps rope_theta (global),
        // rope_local_base_freq (sliding) and rope_scaling (global only) at the top.
        let global = f.ropeParameters?.fullAttention ?? f.ropeScaling
        let globalTheta = f.ropeParameters?.fullAttention?.ropeTheta ?? f.ropeTheta ?? 1_000_000
        let localTheta = f.ropeParameters?.slidingAttention?.ropeTheta ?? f.ropeLocalBaseFreq ?? 10_000
        if let local = f.ropeParameters?.slidingAttention, (local.ropeType ?? local.type ?? "default") != "default" {
            throw ModelConfigError.unsupported(file: source, key: "rope_parameters.sliding_attention.rope_type",
                                               message: "'\(local.ropeType ?? local.type ?? "")' on sliding layers")
        }
        let scaling = try LlamaArchitecture.rotaryScaling(global.map {
            LlamaArchitecture.RopeScaling(ropeType: $0.ropeType, type: $0.type, factor: $0.factor)
        }, source: source)
        let headDim = f.headDim ?? f.hiddenSize / f.numAttentionHeads
        let architecture = Gemma3Architecture(
            attentionBias: f.attentionBias ?? false, queryPreAttentionScalar: f.queryPreAttnScalar ?? Double(headDim),
            slidingWindow: window, slidingLayers: sliding, localRopeTheta: Float(localTheta),
            finalLogitSoftcap: f.finalLogitSoftcapping.map(Float.init))
        guard localTheta.isFinite, localTheta > 0 else {
            throw invalid("rope_local_base_freq", "must be a positive finite number, got \(localTheta)")
        }
        if let cap = architecture.finalLogitSoftcap, !(cap > 0) { throw invalid("final_logit_softcapping", "must be positive, got \(cap)") }
        guard architecture.queryPreAttentionScalar > 0 else {
            throw invalid("query_pre_attn_scalar", "must be positive, got \(architecture.queryPreAttentionScalar)")
        }
        return try TransformerConfig(
            modelType: "gemma3_text", architecture: architecture, vocabSize: f.vocabSize, hiddenSize: f.hiddenSize,
            intermediateSize: f.intermediateSize, numLayers: layers, numHeads: f.numAttentionHeads,
            numKVHeads: f.numKeyValueHeads ?? f.numAttentionHeads, headDim: headDim,
            maxPositions: f.maxPositionEmbeddings ?? 131_072, normEps: Float(f.rmsNormEps ?? 1e-6),
            positions: .rotary(theta: Float(globalTheta), scaling: scaling), tieWordEmbeddings: f.tieWordEmbeddings ?? true,
            bosTokenId: f.bosTokenId, eosTokenIds: f.eosTokenId?.ids ?? [], paddingIndex: f.padTokenId,
            torchDtype: (f.dtype ?? f.torchDtype).flatMap(DType.init(torchName:)), raw: json.objectValue ?? JSONObject()
        ).validated(source: source)
    }

    public func layout(_ c: TransformerConfig) -> ParameterLayout {
        var l = ParameterLayout()
        let (h, s, i) = (c.hiddenSize, c.attentionShape, c.intermediateSize)
        l.append("model.embed_tokens.weight", shape: [c.vocabSize, h], group: 0)
        for layer in 0..<c.numLayers {
            let p = "model.layers.\(layer).", g = layer + 1
            func linear(_ name: String, _ shape: [Int], bias: Bool) {
                l.append(p + name + ".weight", shape: shape, group: g)
                if bias { l.append(p + name + ".bias", shape: [shape[0]], group: g) }
            }
            linear("self_attn.q_proj", [s.qDim, h], bias: attentionBias)
            linear("self_attn.k_proj", [s.kvDim, h], bias: attentionBias)
            linear("self_attn.v_proj", [s.kvDim, h], bias: attentionBias)
            linear("self_attn.o_proj", [h, s.qDim], bias: attentionBias)
            l.append(p + "self_attn.q_norm.weight", shape: [c.headDim], group: g)
            l.append(p + "self_attn.k_norm.weight", shape: [c.headDim], group: g)
            linear("mlp.gate_proj", [i, h], bias: false)
            linear("mlp.up_proj", [i, h], bias: false)
            linear("mlp.down_proj", [h, i], bias: false)
            for norm in ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"] {
                l.append(p + norm + ".weight", shape: [h], group: g)
            }
        }
        l.append("model.norm.weight", shape: [h], group: c.numLayers + 1)
        if !c.tieWordEmbeddings { l.append("lm_head.weight", shape: [c.vocabSize, h], group: c.numLayers + 1) }
        return l
    }

    /// (1 + w) norms: transformers initialises their weights to zero.
    public func initialNormWeight(_ name: String) -> Float? { name.hasSuffix("norm.weight") ? 0 : nil }

    /// In the order of `Gemma3Binding.Slot`.
    public func activationSlots(_ c: TransformerConfig) -> [ActivationSlot] {
        let s = c.attentionShape, H = c.hiddenSize, I = c.intermediateSize
        let stat = { (w: Int) in ActivationSlot(w, statistic: true) }
        return [ActivationSlot(H), stat(1), ActivationSlot(s.qDim), ActivationSlot(s.kvDim), stat(c.numHeads), stat(c.numKVHeads),
                ActivationSlot(s.qDim), ActivationSlot(s.kvDim), ActivationSlot(s.kvDim), ActivationSlot(s.qDim),
                ActivationSlot(H), stat(1), ActivationSlot(H), ActivationSlot(H), stat(1),
                ActivationSlot(I), ActivationSlot(I), ActivationSlot(I), ActivationSlot(H), stat(1)]
    }

    /// transformers 4 reads Gemma's thetas from the top level, the scaling applying to global layers.
    public func transformers4Keys(_ raw: JSONObject) -> JSONObject {
        var o = raw
        guard let rp = o["rope_parameters"]?.objectValue else { return o }
        o["rope_parameters"] = nil
        let full = rp["full_attention"]?.objectValue ?? JSONObject(), local = rp["sliding_attention"]?.objectValue ?? JSONObject()
        if let theta = full["rope_theta"] { o["rope_theta"] = theta }
        if let theta = local["rope_theta"] { o["rope_local_base_freq"] = theta }
        var scaling = full
        scaling["rope_theta"] = nil
        o["rope_scaling"] = (scaling["rope_type"]?.stringValue ?? "default") == "default" ? .null : .object(scaling)
        return o
    }

    public func bind(_ c: TransformerConfig, layout: ParameterLayout) -> BoundArchitecture {
        Gemma3Binding(c, architecture: self, layout: layout)
    }
}

struct Gemma3BlockWeights {
    var inputNorm, postAttentionNorm, preFeedforwardNorm, postFeedforwardNorm: Norm
    var qNorm, kNorm: Norm
    var q, k, v, o, gate, up, down: Linear
    var attention: SelfAttention
    var rope: Int
}

final class Gemma3Binding: BoundArchitecture {
    enum Slot: Int, CaseIterable {
        case ln1, rstd1, qRaw, kRaw, qRstd, kRstd, q, k, v, att, attnOut, rstdPostAttn, mid, ln2, rstd2, gate, up, act, mlpOut, rstdPostFF
    }

    let config: TransformerConfig
    let blocks: [Gemma3BlockWeights]
    let embedding: Int
    let finalNorm: Norm
    let headWeight: Int
    let logitSoftcap: Float?
    /// √hidden as transformers computes it: an f32 tensor.
    let embeddingScale: Float
    /// [global, sliding] tables; each block names its index.
    var ropes: [RotaryEmbedding]

    init(_ c: TransformerConfig, architecture a: Gemma3Architecture, layout: ParameterLayout) {
        config = c
        let off = { (name: String) in layout[name]!.offset }
        let opt = { (name: String) in layout[name]?.offset }
        let (H, I, shape) = (c.hiddenSize, c.intermediateSize, c.attentionShape)
        let scale = Float(1 / a.queryPreAttentionScalar.squareRoot())
        func norm(_ name: String, channels: Int = H, rows: Int = 1) -> Norm {
            Norm(kind: .rmsUnitOffset, weight: off(name), channels: channels, eps: c.normEps, rowsPerToken: rows)
        }
        blocks = (0..<c.numLayers).map { l in
            let p = "model.layers.\(l)."
            func linear(_ name: String, _ inFeatures: Int, _ outFeatures: Int) -> Linear {
                Linear(module: p + name, weight: off(p + name + ".weight"), bias: opt(p + name + ".bias"), inFeatures: inFeatures,
                       outFeatures: outFeatures)
            }
            let sliding = a.slidingLayers[l]
            return Gemma3BlockWeights(
                inputNorm: norm(p + "input_layernorm.weight"), postAttentionNorm: norm(p + "post_attention_layernorm.weight"),
                preFeedforwardNorm: norm(p + "pre_feedforward_layernorm.weight"),
                postFeedforwardNorm: norm(p + "post_feedforward_layernorm.weight"),
                qNorm: norm(p + "self_attn.q_norm.weight", channels: c.headDim, rows: c.numHeads),
                kNorm: norm(p + "self_attn.k_norm.weight", channels: c.headDim, rows: c.numKVHeads),
                q: linear("self_attn.q_proj", H, shape.qDim), k: linear("self_attn.k_proj", H, shape.kvDim),
                v: linear("self_attn.v_proj", H, shape.kvDim), o: linear("self_attn.o_proj", shape.qDim, H),
                gate: linear("mlp.gate_proj", H, I), up: linear("mlp.up_proj", H, I), down: linear("mlp.down_proj", I, H),
                attention: SelfAttention(shape: shape, scale: scale, window: sliding ? a.slidingWindow : nil),
                rope: sliding ? 1 : 0)
        }
        embedding = off("model.embed_tokens.weight")
        finalNorm = norm("model.norm.weight")
        headWeight = c.tieWordEmbeddings ? embedding : off("lm_head.weight")
        logitSoftcap = a.finalLogitSoftcap
        embeddingScale = Float(H).squareRoot()
        guard case .rotary(let theta, let scaling) = c.positions else { preconditionFailure("Gemma 3 uses rotary positions") }
        ropes = [RotaryEmbedding(headDim: c.headDim, theta: theta, scaling: scaling),
                 RotaryEmbedding(headDim: c.headDim, theta: a.localRopeTheta, scaling: .none)]
    }

    var projections: [(group: Int, piece: Linear)] {
        blocks.enumerated().flatMap { l, b in [b.q, b.k, b.v, b.o, b.gate, b.up, b.down].map { (l + 1, $0) } }
    }

    func reserveRotary(positions n: Int) {
        for i in ropes.indices { ropes[i].reserve(positions: n) }
    }

    func embedForward(_ ctx: BlockContext, out: UnsafeMutablePointer<Float>) {
        Embedding.forward(out: out, tokens: ctx.tokens, table: ctx.w(embedding), C: config.hiddenSize)
        VectorMath.scale(out, ctx.N * config.hiddenSize, by: embeddingScale)
    }

    /// Scales `dout` in place (the embedding is the last piece to read it).
    func embedBackward(_ ctx: BlockContext, dout: UnsafeMutablePointer<Float>) {
        guard let table = ctx.g(embedding) else { return }
        VectorMath.scale(dout, ctx.N * config.hiddenSize, by: embeddingScale)
        Embedding.backward(dtable: table, dout: dout, indices: ctx.tokens, C: config.hiddenSize,
                           skipping: config.paddingIndex.map(Int32.init))
    }

    func blockForward(_ l: Int, _ ctx: BlockContext, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                      a: BlockActivations, s: BlockScratch) {
        let b = blocks[l], n = ctx.N * config.hiddenSize
        b.inputNorm.forward(ctx, out: a[Slot.ln1], inp: x, mean: nil, rstd: a[Slot.rstd1])
        ctx.timer?.begin(.attention(l), backward: false)
        let (k, v) = b.attention.keyValueDestinations(ctx, layer: l, k: a[Slot.k], v: a[Slot.v])
        b.q.forward(ctx, out: a[Slot.qRaw], inp: a[Slot.ln1])
        b.k.forward(ctx, out: a[Slot.kRaw], inp: a[Slot.ln1])
        b.v.forward(ctx, out: v, inp: a[Slot.ln1])
        b.qNorm.forward(ctx, out: a[Slot.q], inp: a[Slot.qRaw], mean: nil, rstd: a[Slot.qRstd])
        b.kNorm.forward(ctx, out: k, inp: a[Slot.kRaw], mean: nil, rstd: a[Slot.kRstd])
        ctx.withPositions { pos in
            ropes[b.rope].apply(a[Slot.q], N: ctx.N, heads: config.numHeads, positions: pos)
            ropes[b.rope].apply(k, N: ctx.N, heads: config.numKVHeads, positions: pos)
        }
        b.attention.forward(ctx, layer: l, out: a[Slot.att], probs: a.probsPointer(count: b.attention.shape.probsCount(ctx.spans)),
                            q: a[Slot.q], k: k, v: v)
        b.o.forward(ctx, out: a[Slot.attnOut], inp: a[Slot.att])
        b.postAttentionNorm.forward(ctx, out: s.proj, inp: a[Slot.attnOut], mean: nil, rstd: a[Slot.rstdPostAttn])
        a[Slot.mid].update(from: x, count: n)
        Residual.add(a[Slot.mid], s.proj, count: n)
        ctx.timer?.end(.attention(l), backward: false)
        b.preFeedforwardNorm.forward(ctx, out: a[Slot.ln2], inp: a[Slot.mid], mean: nil, rstd: a[Slot.rstd2])
        ctx.timer?.begin(.mlp(l), backward: false)
        b.gate.forward(ctx, out: a[Slot.gate], inp: a[Slot.ln2])
        b.up.forward(ctx, out: a[Slot.up], inp: a[Slot.ln2])
        GeGLU.forward(out: a[Slot.act], gate: a[Slot.gate], up: a[Slot.up], count: ctx.N * config.intermediateSize)
        b.down.forward(ctx, out: a[Slot.mlpOut], inp: a[Slot.act])
        b.postFeedforwardNorm.forward(ctx, out: s.proj, inp: a[Slot.mlpOut], mean: nil, rstd: a[Slot.rstdPostFF])
        out.update(from: a[Slot.mid], count: n)
        Residual.add(out, s.proj, count: n)
        ctx.timer?.end(.mlp(l), backward: false)
    }

    func blockBackward(_ l: Int, _ ctx: BlockContext, x: UnsafePointer<Float>, a: BlockActivations, s: BlockScratch) {
        let b = blocks[l], N = ctx.N, n = N * config.hiddenSize, shape = config.attentionShape
        // MLP branch: dres reaches the MLP output through the post-feedforward norm.
        ctx.timer?.begin(.mlp(l), backward: true)
        s.dtmp.update(repeating: 0, count: n)
        b.postFeedforwardNorm.backward(ctx, dinp: s.dtmp, dout: s.dres, inp: a[Slot.mlpOut], mean: nil, rstd: a[Slot.rstdPostFF])
        b.down.backward(ctx, dinp: s.dact, dout: s.dtmp, inp: a[Slot.act])
        GeGLU.backward(dgate: s.dgate, dup: s.dup, dout: s.dact, gate: a[Slot.gate], up: a[Slot.up], count: N * config.intermediateSize)
        b.gate.backward(ctx, dinp: s.dln, dout: s.dgate, inp: a[Slot.ln2])
        b.up.backward(ctx, dinp: s.dln, dout: s.dup, inp: a[Slot.ln2], accumulate: true)
        ctx.timer?.end(.mlp(l), backward: true)
        b.preFeedforwardNorm.backward(ctx, dinp: s.dres, dout: s.dln, inp: a[Slot.mid], mean: nil, rstd: a[Slot.rstd2])
        // Attention branch, through the post-attention norm.
        ctx.timer?.begin(.attention(l), backward: true)
        s.dtmp.update(repeating: 0, count: n)
        b.postAttentionNorm.backward(ctx, dinp: s.dtmp, dout: s.dres, inp: a[Slot.attnOut], mean: nil, rstd: a[Slot.rstdPostAttn])
        b.o.backward(ctx, dinp: s.datt, dout: s.dtmp, inp: a[Slot.att])
        b.attention.backward(ctx, dq: s.dq, dk: s.dk, dv: s.dv, dout: s.datt, probs: a.probs!.pointer(count: shape.probsCount(ctx.spans)),
                             q: a[Slot.q], k: a[Slot.k], v: a[Slot.v])
        ctx.withPositions { pos in
            ropes[b.rope].applyBackward(s.dq, N: N, heads: config.numHeads, positions: pos)
            ropes[b.rope].applyBackward(s.dk, N: N, heads: config.numKVHeads, positions: pos)
        }
        s.dqRaw.update(repeating: 0, count: N * shape.qDim)
        s.dkRaw.update(repeating: 0, count: N * shape.kvDim)
        b.qNorm.backward(ctx, dinp: s.dqRaw, dout: s.dq, inp: a[Slot.qRaw], mean: nil, rstd: a[Slot.qRstd])
        b.kNorm.backward(ctx, dinp: s.dkRaw, dout: s.dk, inp: a[Slot.kRaw], mean: nil, rstd: a[Slot.kRstd])
        b.q.backward(ctx, dinp: s.dln, dout: s.dqRaw, inp: a[Slot.ln1])
        b.k.backward(ctx, dinp: s.dln, dout: s.dkRaw, inp: a[Slot.ln1], accumulate: true)
        b.v.backward(ctx, dinp: s.dln, dout: s.dv, inp: a[Slot.ln1], accumulate: true)
        ctx.timer?.end(.attention(l), backward: true)
        b.inputNorm.backward(ctx, dinp: s.dres, dout: s.dln, inp: x, mean: nil, rstd: a[Slot.rstd1])
    }

    func finalNormForward(_ ctx: BlockContext, inp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, stats: NormStatistics) {
        finalNorm.forward(ctx, out: out, inp: inp, mean: nil, rstd: stats.rstd)
    }

    func finalNormBackward(_ ctx: BlockContext, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                           inp: UnsafePointer<Float>, stats: NormStatistics) {
        finalNorm.backward(ctx, dinp: dinp, dout: dout, inp: inp, mean: nil, rstd: stats.rstd)
    }
}

// MARK: GGUF names

/// Gemma 3 text as llama.cpp writes it (`gemma3`; transformers calls the model gemma3_text): every norm
/// weight stored as w + 1 (Gemma3Model.norm_shift; transformers subtracts 1 on load), the four block norms
/// as attn_norm / post_attention_norm / ffn_norm / post_ffw_norm, head size as key_length, Q/K unpermuted.
/// The file carries no layer pattern, local rotary base, query scalar or logit soft-cap: transformers 5.23
/// rebuilds them from Gemma3TextConfig's defaults (every 6th layer global, 10000, 256, none), so export
/// refuses a model whose values differ rather than write a file that loads as another model.
extension Gemma3Architecture {
    public static let ggufFamilies = [ggufGemma3]

    static let ggufPattern = 6
    static let ggufLocalRopeTheta: Float = 10000
    static let ggufQueryPreAttentionScalar: Double = 256

    static let ggufGemma3: GGUFArchitectureMapping = {
        var m = GGUFArchitectureMapping(
            ggufArchitecture: "gemma3", modelType: "gemma3_text", hfClass: "Gemma3ForCausalLM", tokenizerClass: "GemmaTokenizer",
            tokenizerConfigExtras: [("mask_token", .string("<mask>"))],
            configKeys: GGUFArchitectureMapping.llamaKeys + [("attention.key_length", "head_dim"), ("attention.sliding_window", "sliding_window")],
            requiredKeys: GGUFArchitectureMapping.requiredKeys,
            configDefaults: [
                ("_sliding_window_pattern", .int(Int64(ggufPattern))), ("attention_bias", .bool(false)), ("attention_dropout", .double(0)),
                ("attn_logit_softcapping", .null), ("bos_token_id", .int(2)), ("eos_token_id", .int(1)),
                ("final_logit_softcapping", .null), ("head_dim", .int(256)), ("hidden_activation", .string("gelu_pytorch_tanh")),
                ("initializer_range", .double(0.02)), ("max_position_embeddings", .int(131_072)), ("pad_token_id", .int(0)),
                ("query_pre_attn_scalar", .int(Int64(ggufQueryPreAttentionScalar))), ("rms_norm_eps", .double(1e-6)),
                ("rope_theta", .double(1_000_000)), ("sliding_window", .int(4096)), ("use_bidirectional_attention", .bool(false)),
                ("use_cache", .bool(true)),
            ],
            permutesQK: false, qkvBias: false, defaultPreTokenizer: "default",
            blockTensors: [
                .init(gguf: "attn_q.weight", hf: "self_attn.q_proj.weight"), .init(gguf: "attn_k.weight", hf: "self_attn.k_proj.weight"),
                .init(gguf: "attn_v.weight", hf: "self_attn.v_proj.weight"), .init(gguf: "attn_output.weight", hf: "self_attn.o_proj.weight"),
                .init(gguf: "attn_q_norm.weight", hf: "self_attn.q_norm.weight"), .init(gguf: "attn_k_norm.weight", hf: "self_attn.k_norm.weight"),
                .init(gguf: "ffn_gate.weight", hf: "mlp.gate_proj.weight"), .init(gguf: "ffn_up.weight", hf: "mlp.up_proj.weight"),
                .init(gguf: "ffn_down.weight", hf: "mlp.down_proj.weight"), .init(gguf: "attn_norm.weight", hf: "input_layernorm.weight"),
                .init(gguf: "post_attention_norm.weight", hf: "post_attention_layernorm.weight"),
                .init(gguf: "ffn_norm.weight", hf: "pre_feedforward_layernorm.weight"),
                .init(gguf: "post_ffw_norm.weight", hf: "post_feedforward_layernorm.weight"),
            ])
        m.normShift = 1
        m.sentencePieceStyle = .gemma
        m.ropeKeys = { theta, layers in
            let rope = { (t: JSONValue) in JSONValue.object(JSONObject([("rope_theta", t), ("rope_type", .string("default"))])) }
            return [
                ("rope_parameters", .object(JSONObject([("full_attention", rope(theta)), ("sliding_attention", rope(.double(Double(ggufLocalRopeTheta))))]))),
                ("layer_types", .array(defaultSlidingLayers(layers).map { .string($0 ? "sliding_attention" : "full_attention") })),
            ]
        }
        m.exportOnlyKeys = [("attention.value_length", "head_dim")]
        m.exportRefusal = { config in
            let a: Gemma3Architecture
            do {
                let c = try decode(.object(config), source: "config.json")
                a = c.architecture as! Gemma3Architecture
            } catch { return "\(error)" }
            let why = "a gemma3 GGUF file cannot say so, and transformers reads it back"
            if a.slidingLayers != defaultSlidingLayers(a.slidingLayers.count) {
                return "layer_types [\(a.slidingLayers.map { $0 ? "sliding" : "full" }.joined(separator: ", "))]: \(why) with every \(ggufPattern)th layer global"
            }
            if a.localRopeTheta != ggufLocalRopeTheta { return "the sliding layers' rope_theta \(a.localRopeTheta): \(why) as \(ggufLocalRopeTheta)" }
            if a.queryPreAttentionScalar != ggufQueryPreAttentionScalar {
                return "query_pre_attn_scalar \(a.queryPreAttentionScalar): \(why) as \(Int(ggufQueryPreAttentionScalar))"
            }
            if let cap = a.finalLogitSoftcap { return "final_logit_softcapping \(cap): \(why) as none" }
            return nil
        }
        return m
    }()

    /// Gemma3TextConfig's layer_types without the key: every `ggufPattern`-th layer global.
    static func defaultSlidingLayers(_ layers: Int) -> [Bool] { (0..<layers).map { ($0 + 1) % ggufPattern != 0 } }
}
