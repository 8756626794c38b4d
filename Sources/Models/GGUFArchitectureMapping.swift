import Formats

/// How one model family is spelled in GGUF (llama.cpp's architecture name, metadata keys and tensor
/// names) and in a Hugging Face folder (model_type, config.json keys and defaults, state-dict names), as
/// transformers 5.23's GGUF loading maps one to the other. The values live in the architecture files
/// (`LlamaArchitecture.ggufFamilies`, `Qwen3Architecture.ggufFamilies`, …) and are found through
/// `ModelRegistry.ggufFamilies`; the GGUF reader
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
    /// Per-block tensors in Hugging Face state-dict order (the order our layout and save_pretrained use).
    public let blockTensors: [BlockTensor]
    /// What llama.cpp adds to every norm weight (Gemma's (1 + w) norms: 1) and transformers subtracts on
    /// load (its Gemma2TensorProcessor: every tensor whose GGUF name contains `norm.weight`), in f32.
    public var normShift: Float = 0

    /// What llama.cpp added to the tensor stored under `ggufName` (`normShift` for a norm weight, else 0).
    public func shift(ofGGUFTensor ggufName: String) -> Float { ggufName.contains("norm.weight") ? normShift : 0 }
    /// Keys llama.cpp's converter writes that transformers does not read back (`{arch}.<suffix>` ← config
    /// key), written on export only.
    public var exportOnlyKeys: [(gguf: String, hf: String)] = []
    /// Values llama.cpp writes for a config key that is absent or null (Phi-3's sliding window 0).
    public var exportDefaults: [(String, JSONValue)] = []
    /// How transformers builds a SentencePiece (`llama`) vocabulary for this architecture.
    public var sentencePieceStyle: SentencePieceStyle = .metaspace
    /// The config keys transformers derives from rope_theta and the layer count, replacing the plain
    /// `rope_parameters` (and `layer_types` when `listsLayerTypes`); nil for the Llama-style default.
    public var ropeKeys: (@Sendable (_ ropeTheta: JSONValue, _ layers: Int) -> [(String, JSONValue)])? = nil
    /// Why a config cannot be exported: something the GGUF file cannot carry, so transformers' loading of
    /// the file would build another model (names the key); nil when it can.
    public var exportRefusal: (@Sendable (_ config: JSONObject) -> String?)? = nil

    /// transformers' SentencePiece builders (`GGUF_SENTENCEPIECE_BUILDERS`).
    public enum SentencePieceStyle: Sendable {
        /// LlamaTokenizer: a Metaspace pre-tokenizer adds the prefix space.
        case metaspace
        /// Phi-3: a Prepend(▁) + Replace(" " → ▁) normalizer, no pre-tokenizer.
        case prependNormalizer
        /// GemmaTokenizer: Replace(" " → ▁), a split on spaces, no prefix space; all-space tokens respelled with ▁,
        /// merges recovered by file position; `<unk> <bos> <eos> <pad> <mask>` added by name.
        case gemma
    }

    public init(ggufArchitecture: String, modelType: String, hfClass: String, tokenizerClass: String,
                tokenizerConfigExtras: [(String, JSONValue)], configKeys: [(gguf: String, hf: String)], requiredKeys: [String],
                configDefaults: [(String, JSONValue)], permutesQK: Bool, qkvBias: Bool, defaultPreTokenizer: String,
                generalName: String? = nil, listsLayerTypes: Bool = false, blockTensors: [BlockTensor]? = nil) {
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
        self.blockTensors = blockTensors ?? Self.llamaBlock(qkvBias: qkvBias)
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
        public init(gguf: String, hf: String) {
            self.gguf = gguf
            self.hf = hf
        }
    }

    /// The Llama block's tensors; `extras` (Qwen3's q/k norms) follow o_proj, as in transformers' state dict.
    public static func llamaBlock(qkvBias: Bool, extras: [BlockTensor] = []) -> [BlockTensor] {
        var t: [BlockTensor] = []
        for (g, h) in [("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj")] {
            t.append(BlockTensor(gguf: g + ".weight", hf: h + ".weight"))
            if qkvBias { t.append(BlockTensor(gguf: g + ".bias", hf: h + ".bias")) }
        }
        t.append(BlockTensor(gguf: "attn_output.weight", hf: "self_attn.o_proj.weight"))
        t += extras
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
    /// heads·head_dim and kv_heads·head_dim). Fused tensors (Phi-3) stack their parts' rows.
    public static func shape(of hf: String, vocab: Int, hidden: Int, q: Int, kv: Int, intermediate: Int, headDim: Int) -> [Int] {
        if hf.hasSuffix("embed_tokens.weight") || hf == head.hf { return [vocab, hidden] }
        if hf.hasSuffix("q_norm.weight") || hf.hasSuffix("k_norm.weight") { return [headDim] }
        if hf.hasSuffix("qkv_proj.weight") { return [q + 2 * kv, hidden] }
        if hf.hasSuffix("gate_up_proj.weight") { return [2 * intermediate, hidden] }
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
