import Formats
import Kernels
import Tensors

/// Phi-3: the Llama block with its projections fused as Hugging Face stores them. `qkv_proj` is
/// [qDim + 2·kvDim, H], rows q, then k, then v (head-major); `gate_up_proj` is [2I, H], rows gate then up
/// (`chunk(2)`). Both are row blocks of one nn.Linear weight, so each part is a plain offset into it and
/// the file is read and written in the fused layout unchanged. No biases. `sliding_window`, when set,
/// limits every layer (Phi-3-mini-4k's 2047).
public struct Phi3Architecture: Architecture {
    public var slidingWindow: Int?

    /// The keys Phi-3 has beyond the Llama file's.
    struct Extras: Decodable {
        struct RopeParameters: Decodable {
            var partialRotaryFactor: Double?
            enum CodingKeys: String, CodingKey { case partialRotaryFactor = "partial_rotary_factor" }
        }
        var partialRotaryFactor: Double?
        var ropeParameters: RopeParameters?
        enum CodingKeys: String, CodingKey {
            case partialRotaryFactor = "partial_rotary_factor"
            case ropeParameters = "rope_parameters"
        }
    }

    static func decode(_ json: JSONValue, source: String) throws -> TransformerConfig {
        let decoder = JSONValueDecoder(source: source)
        let f = try decoder.decode(LlamaArchitecture.File.self, from: json)
        let extras = try decoder.decode(Extras.self, from: json)
        try f.requireSiluAndFullAttention(source: source, slidingWindowSwitch: false)
        if let factor = extras.ropeParameters?.partialRotaryFactor ?? extras.partialRotaryFactor, factor != 1 {
            throw ModelConfigError.unsupported(file: source, key: "partial_rotary_factor", message: "\(factor) (only 1.0, full rotary)")
        }
        return try f.config(architecture: Phi3Architecture(slidingWindow: f.slidingWindow), json: json, source: source)
    }

    public func layout(_ c: TransformerConfig) -> ParameterLayout {
        var l = ParameterLayout()
        let (h, s, i) = (c.hiddenSize, c.attentionShape, c.intermediateSize)
        l.append("model.embed_tokens.weight", shape: [c.vocabSize, h], group: 0)
        for layer in 0..<c.numLayers {
            let p = "model.layers.\(layer).", g = layer + 1
            l.append(p + "self_attn.qkv_proj.weight", shape: [s.qDim + 2 * s.kvDim, h], group: g)
            l.append(p + "self_attn.o_proj.weight", shape: [h, s.qDim], group: g)
            l.append(p + "mlp.gate_up_proj.weight", shape: [2 * i, h], group: g)
            l.append(p + "mlp.down_proj.weight", shape: [h, i], group: g)
            l.append(p + "input_layernorm.weight", shape: [h], group: g)
            l.append(p + "post_attention_layernorm.weight", shape: [h], group: g)
        }
        l.append("model.norm.weight", shape: [h], group: c.numLayers + 1)
        if !c.tieWordEmbeddings { l.append("lm_head.weight", shape: [c.vocabSize, h], group: c.numLayers + 1) }
        return l
    }

    public func activationSlots(_ c: TransformerConfig) -> [ActivationSlot] {
        LlamaArchitecture(qkvBias: false, outputBias: false, mlpBias: false).activationSlots(c)
    }

    public func bind(_ c: TransformerConfig, layout: ParameterLayout) -> BoundArchitecture {
        let off = { (name: String) in layout[name]!.offset }
        let (H, I, s) = (c.hiddenSize, c.intermediateSize, c.attentionShape)
        let blocks = (0..<c.numLayers).map { l in
            let p = "model.layers.\(l)."
            let qkv = off(p + "self_attn.qkv_proj.weight"), gateUp = off(p + "mlp.gate_up_proj.weight")
            return LlamaBlockWeights(
                norm1: Norm(kind: .rms, weight: off(p + "input_layernorm.weight"), channels: H, eps: c.normEps),
                q: Linear(module: p + "self_attn.qkv_proj", weight: qkv, inFeatures: H, outFeatures: s.qDim),
                k: Linear(module: p + "self_attn.qkv_proj", outputOffset: s.qDim, weight: qkv + s.qDim * H, inFeatures: H,
                          outFeatures: s.kvDim),
                v: Linear(module: p + "self_attn.qkv_proj", outputOffset: s.qDim + s.kvDim, weight: qkv + (s.qDim + s.kvDim) * H,
                          inFeatures: H, outFeatures: s.kvDim),
                o: Linear(module: p + "self_attn.o_proj", weight: off(p + "self_attn.o_proj.weight"), inFeatures: s.qDim, outFeatures: H),
                norm2: Norm(kind: .rms, weight: off(p + "post_attention_layernorm.weight"), channels: H, eps: c.normEps),
                gate: Linear(module: p + "mlp.gate_up_proj", weight: gateUp, inFeatures: H, outFeatures: I),
                up: Linear(module: p + "mlp.gate_up_proj", outputOffset: I, weight: gateUp + I * H, inFeatures: H, outFeatures: I),
                down: Linear(module: p + "mlp.down_proj", weight: off(p + "mlp.down_proj.weight"), inFeatures: I, outFeatures: H))
        }
        return LlamaBinding(c, blocks: blocks, layout: layout, window: slidingWindow)
    }
}

// MARK: GGUF names

/// Phi-3 as llama.cpp writes it (`phi3`): the fused projections stay fused (attn_qkv; ffn_up holds gate
/// then up, 2·intermediate rows, as gate_up_proj does), Q/K unpermuted, no biases. transformers 5.23 reads
/// neither the sliding window nor the original context length back (Phi3Config's defaults: none, 4096),
/// and builds SentencePiece vocabularies with a prefix-space normalizer.
extension Phi3Architecture {
    public static let ggufFamilies = [ggufPhi3]

    static let ggufPhi3: GGUFArchitectureMapping = {
        var m = GGUFArchitectureMapping(
            ggufArchitecture: "phi3", modelType: "phi3", hfClass: "Phi3ForCausalLM", tokenizerClass: "TokenizersBackend",
            tokenizerConfigExtras: [], configKeys: GGUFArchitectureMapping.llamaKeys, requiredKeys: GGUFArchitectureMapping.requiredKeys,
            configDefaults: [
                ("attention_dropout", .double(0)), ("bos_token_id", .int(1)), ("embd_pdrop", .double(0)),
                ("eos_token_id", .int(32000)), ("hidden_act", .string("silu")), ("initializer_range", .double(0.02)),
                ("max_position_embeddings", .int(4096)), ("original_max_position_embeddings", .int(4096)),
                ("pad_token_id", .int(32000)), ("resid_pdrop", .double(0)), ("rms_norm_eps", .double(1e-5)),
                ("rope_theta", .double(10000)), ("sliding_window", .null), ("use_cache", .bool(true)),
            ],
            permutesQK: false, qkvBias: false, defaultPreTokenizer: "default",
            blockTensors: [
                .init(gguf: "attn_qkv.weight", hf: "self_attn.qkv_proj.weight"),
                .init(gguf: "attn_output.weight", hf: "self_attn.o_proj.weight"),
                .init(gguf: "ffn_up.weight", hf: "mlp.gate_up_proj.weight"),
                .init(gguf: "ffn_down.weight", hf: "mlp.down_proj.weight"),
                .init(gguf: "attn_norm.weight", hf: "input_layernorm.weight"),
                .init(gguf: "ffn_norm.weight", hf: "post_attention_layernorm.weight"),
            ])
        m.sentencePieceStyle = .prependNormalizer
        m.ropeKeys = { theta, _ in
            [("rope_parameters", .object(JSONObject([("partial_rotary_factor", .double(1)), ("rope_theta", theta),
                                                     ("rope_type", .string("default"))])))]
        }
        // Phi3MiniModel.set_gguf_parameters: rotary dims, the pre-scaling context, and a sliding window of 0 for none.
        m.exportOnlyKeys = [("rope.dimension_count", "head_dim"), ("rope.scaling.original_context_length", "original_max_position_embeddings"),
                            ("attention.sliding_window", "sliding_window")]
        m.exportDefaults = [("sliding_window", .int(0)), ("original_max_position_embeddings", .int(4096))]
        return m
    }()
}
