import Formats

/// How one model family is spelled in GGUF (llama.cpp's architecture name, metadata keys and tensor
/// names) and in a Hugging Face folder (model_type, config.json keys and defaults, state-dict names), as
/// transformers 5.23's GGUF loading maps one to the other. The values live in the architecture files
/// (`LlamaArchitecture.ggufFamilies`) and are found through `ModelRegistry.ggufFamilies`; the GGUF reader
/// and writer read them in both directions.
public struct GGUFArchitectureMapping: Sendable {
    /// `general.architecture` in the file.
    public let ggufArchitecture: String
    /// config.json `model_type`.
    public let modelType: String
    /// config.json `architectures[0]`.
    public let hfClass: String
    /// What transformers' AutoTokenizer saves as `tokenizer_class` for a file of this family.
    public let tokenizerClass: String
    /// Extra keys transformers' tokenizer class saves in tokenizer_config.json.
    public let tokenizerConfigExtras: [(String, JSONValue)]
    /// `{arch}.<suffix>` metadata → config.json key (transformers' GGUF_CONFIG_MAPPING).
    public let configKeys: [(gguf: String, hf: String)]
    /// Metadata a model cannot be built without.
    public let requiredKeys: [String]
    /// config.json keys with the values transformers' config class writes when the file does not say.
    public let configDefaults: [(String, JSONValue)]
    /// llama.cpp permutes Q/K rows into interleaved rotary pairs for this architecture (its LlamaModel),
    /// and transformers undoes it (`reverse_permute`); Qwen2's converter leaves them alone.
    public let permutesQK: Bool
    /// Attention projections carry biases (q, k, v).
    public let qkvBias: Bool
    /// llama.cpp's tokenizer pre-type for an exported tokenizer of this family when it cannot be told
    /// from tokenizer.json.
    public let defaultPreTokenizer: String
    /// A family llama.cpp writes under another's architecture name, told apart by `general.name` (as
    /// transformers tells Mistral from Llama); nil for the family that owns the name.
    public var generalName: String? = nil
    /// transformers' config for this family lists `layer_types` (every layer full attention).
    public var listsLayerTypes = false

    public init(ggufArchitecture: String, modelType: String, hfClass: String, tokenizerClass: String,
                tokenizerConfigExtras: [(String, JSONValue)], configKeys: [(gguf: String, hf: String)], requiredKeys: [String],
                configDefaults: [(String, JSONValue)], permutesQK: Bool, qkvBias: Bool, defaultPreTokenizer: String,
                generalName: String? = nil, listsLayerTypes: Bool = false) {
        self.ggufArchitecture = ggufArchitecture
        self.modelType = modelType
        self.hfClass = hfClass
        self.tokenizerClass = tokenizerClass
        self.tokenizerConfigExtras = tokenizerConfigExtras
        self.configKeys = configKeys
        self.requiredKeys = requiredKeys
        self.configDefaults = configDefaults
        self.permutesQK = permutesQK
        self.qkvBias = qkvBias
        self.defaultPreTokenizer = defaultPreTokenizer
        self.generalName = generalName
        self.listsLayerTypes = listsLayerTypes
    }

    // Shared by the Llama-style families: the same llama.cpp keys and transformers names.
    public static let llamaKeys: [(gguf: String, hf: String)] = [
        ("context_length", "max_position_embeddings"), ("block_count", "num_hidden_layers"),
        ("feed_forward_length", "intermediate_size"), ("embedding_length", "hidden_size"),
        ("rope.freq_base", "rope_theta"), ("attention.head_count", "num_attention_heads"),
        ("attention.head_count_kv", "num_key_value_heads"), ("attention.layer_norm_rms_epsilon", "rms_norm_eps"),
        ("vocab_size", "vocab_size"),
    ]
    public static let requiredKeys = ["block_count", "embedding_length", "feed_forward_length", "attention.head_count"]

    // MARK: tensor names

    /// One tensor of a block: llama.cpp's name after `blk.N.`, the Hugging Face name after `model.layers.N.`.
    public struct BlockTensor: Sendable {
        public let gguf: String
        public let hf: String
    }

    /// Per-block tensors in Hugging Face state-dict order (the order our layout and save_pretrained use).
    public var blockTensors: [BlockTensor] {
        var t: [BlockTensor] = []
        for (g, h) in [("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj")] {
            t.append(BlockTensor(gguf: g + ".weight", hf: h + ".weight"))
            if qkvBias { t.append(BlockTensor(gguf: g + ".bias", hf: h + ".bias")) }
        }
        t.append(BlockTensor(gguf: "attn_output.weight", hf: "self_attn.o_proj.weight"))
        t.append(BlockTensor(gguf: "ffn_gate.weight", hf: "mlp.gate_proj.weight"))
        t.append(BlockTensor(gguf: "ffn_up.weight", hf: "mlp.up_proj.weight"))
        t.append(BlockTensor(gguf: "ffn_down.weight", hf: "mlp.down_proj.weight"))
        t.append(BlockTensor(gguf: "attn_norm.weight", hf: "input_layernorm.weight"))
        t.append(BlockTensor(gguf: "ffn_norm.weight", hf: "post_attention_layernorm.weight"))
        return t
    }

    public static let embedding = (gguf: "token_embd.weight", hf: "model.embed_tokens.weight")
    public static let finalNorm = (gguf: "output_norm.weight", hf: "model.norm.weight")
    public static let head = (gguf: "output.weight", hf: "lm_head.weight")

    /// Every (GGUF name, Hugging Face name) of a model with `layers` blocks, in state-dict order.
    public func tensorNames(layers: Int, tied: Bool) -> [(gguf: String, hf: String)] {
        var names = [Self.embedding]
        for i in 0..<layers {
            for b in blockTensors { names.append(("blk.\(i).\(b.gguf)", "model.layers.\(i).\(b.hf)")) }
        }
        names.append(Self.finalNorm)
        if !tied { names.append(Self.head) }
        return names
    }

    /// The PyTorch shape of a Hugging Face tensor of this layout, from the config's sizes (q and kv are
    /// heads·head_dim and kv_heads·head_dim).
    public static func shape(of hf: String, vocab: Int, hidden: Int, q: Int, kv: Int, intermediate: Int) -> [Int] {
        if hf.hasSuffix("embed_tokens.weight") || hf == head.hf { return [vocab, hidden] }
        if hf.hasSuffix("norm.weight") { return [hidden] }
        if hf.hasSuffix("q_proj.weight") { return [q, hidden] }
        if hf.hasSuffix("q_proj.bias") { return [q] }
        if hf.hasSuffix("k_proj.weight") || hf.hasSuffix("v_proj.weight") { return [kv, hidden] }
        if hf.hasSuffix("k_proj.bias") || hf.hasSuffix("v_proj.bias") { return [kv] }
        if hf.hasSuffix("o_proj.weight") { return [hidden, q] }
        if hf.hasSuffix("down_proj.weight") { return [hidden, intermediate] }
        return [intermediate, hidden]  // gate_proj, up_proj
    }
}
