import Formats
import Kernels
import Tensors

/// The Llama family: Llama 2/3, Mistral, Qwen2 and SmolLM share one architecture (RMSNorm, RoPE,
/// GQA attention, SwiGLU MLP); they differ in config keys and in where biases sit.
enum LlamaFamily {
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

    static func parse(_ json: JSONValue, source: String) throws -> TransformerConfig {
        let f = try JSONValueDecoder(source: source).decode(File.self, from: json)
        if let act = f.hiddenAct, act != "silu" {
            throw ModelConfigError.unsupported(file: source, key: "hidden_act", message: "activation '\(act)' (only silu)")
        }
        if f.useSlidingWindow == true {
            throw ModelConfigError.unsupported(file: source, key: "use_sliding_window", message: "sliding-window attention")
        }
        let scaling = f.ropeParameters ?? f.ropeScaling
        let theta = f.ropeParameters?.ropeTheta ?? f.ropeTheta ?? 10000
        let kvHeads = f.numKeyValueHeads ?? f.numAttentionHeads
        guard f.numAttentionHeads > 0 else {
            throw ModelConfigError.invalid(file: source, key: "num_attention_heads", message: "must be positive")
        }
        let isQwen2 = f.modelType == "qwen2"
        return try TransformerConfig(
            modelType: f.modelType, vocabSize: f.vocabSize, hiddenSize: f.hiddenSize,
            intermediateSize: f.intermediateSize, numLayers: f.numHiddenLayers, numHeads: f.numAttentionHeads,
            numKVHeads: kvHeads, headDim: f.headDim ?? f.hiddenSize / f.numAttentionHeads,
            maxPositions: f.maxPositionEmbeddings ?? 2048, norm: .rms, normEps: Float(f.rmsNormEps ?? 1e-6),
            activation: .silu,
            positions: .rotary(theta: Float(theta), scaling: rotaryScaling(scaling, source: source)),
            tieWordEmbeddings: f.tieWordEmbeddings ?? false,
            qkvBias: isQwen2 || (f.attentionBias ?? false), outputBias: !isQwen2 && (f.attentionBias ?? false),
            mlpBias: f.mlpBias ?? false, bosTokenId: f.bosTokenId, eosTokenIds: f.eosTokenId?.ids ?? [],
            torchDtype: (f.dtype ?? f.torchDtype).flatMap(DType.init(torchName:)),
            raw: json.objectValue ?? JSONObject()
        ).validated(source: source)
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
    static func layout(_ c: TransformerConfig) -> ParameterLayout {
        var l = ParameterLayout()
        let (h, q, kv, i) = (c.hiddenSize, c.numHeads * c.headDim, c.numKVHeads * c.headDim, c.intermediateSize)
        l.append("model.embed_tokens.weight", shape: [c.vocabSize, h], group: 0)
        for layer in 0..<c.numLayers {
            let p = "model.layers.\(layer)."
            let g = layer + 1
            l.append(p + "self_attn.q_proj.weight", shape: [q, h], group: g)
            if c.qkvBias { l.append(p + "self_attn.q_proj.bias", shape: [q], group: g) }
            l.append(p + "self_attn.k_proj.weight", shape: [kv, h], group: g)
            if c.qkvBias { l.append(p + "self_attn.k_proj.bias", shape: [kv], group: g) }
            l.append(p + "self_attn.v_proj.weight", shape: [kv, h], group: g)
            if c.qkvBias { l.append(p + "self_attn.v_proj.bias", shape: [kv], group: g) }
            l.append(p + "self_attn.o_proj.weight", shape: [h, q], group: g)
            if c.outputBias { l.append(p + "self_attn.o_proj.bias", shape: [h], group: g) }
            l.append(p + "mlp.gate_proj.weight", shape: [i, h], group: g)
            if c.mlpBias { l.append(p + "mlp.gate_proj.bias", shape: [i], group: g) }
            l.append(p + "mlp.up_proj.weight", shape: [i, h], group: g)
            if c.mlpBias { l.append(p + "mlp.up_proj.bias", shape: [i], group: g) }
            l.append(p + "mlp.down_proj.weight", shape: [h, i], group: g)
            if c.mlpBias { l.append(p + "mlp.down_proj.bias", shape: [h], group: g) }
            l.append(p + "input_layernorm.weight", shape: [h], group: g)
            l.append(p + "post_attention_layernorm.weight", shape: [h], group: g)
        }
        l.append("model.norm.weight", shape: [h], group: c.numLayers + 1)
        if !c.tieWordEmbeddings { l.append("lm_head.weight", shape: [c.vocabSize, h], group: c.numLayers + 1) }
        return l
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
