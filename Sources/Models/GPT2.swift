import Formats
import Kernels
import Tensors

/// GPT-2: LayerNorm, learned positions, fused q|k|v projection, gelu_new MLP, tied LM head.
/// Its Conv1D weights are stored [in, out], the transpose of nn.Linear.
enum GPT2Family {
    struct File: Decodable {
        var vocabSize: Int
        var nEmbd: Int
        var nLayer: Int
        var nHead: Int
        var nPositions: Int
        var nInner: Int?
        var activationFunction: String?
        var layerNormEpsilon: Double?
        var scaleAttnWeights: Bool?
        var scaleAttnByInverseLayerIdx: Bool?
        var reorderAndUpcastAttn: Bool?
        var tieWordEmbeddings: Bool?
        var bosTokenId: Int?
        var eosTokenId: TokenIds?
        var torchDtype: String?
        var dtype: String?

        enum CodingKeys: String, CodingKey {
            case vocabSize = "vocab_size"
            case nEmbd = "n_embd"
            case nLayer = "n_layer"
            case nHead = "n_head"
            case nPositions = "n_positions"
            case nInner = "n_inner"
            case activationFunction = "activation_function"
            case layerNormEpsilon = "layer_norm_epsilon"
            case scaleAttnWeights = "scale_attn_weights"
            case scaleAttnByInverseLayerIdx = "scale_attn_by_inverse_layer_idx"
            case reorderAndUpcastAttn = "reorder_and_upcast_attn"
            case tieWordEmbeddings = "tie_word_embeddings"
            case bosTokenId = "bos_token_id"
            case eosTokenId = "eos_token_id"
            case torchDtype = "torch_dtype"
            case dtype
        }
    }

    static func parse(_ json: JSONValue, source: String) throws -> TransformerConfig {
        let f = try JSONValueDecoder(source: source).decode(File.self, from: json)
        let act = f.activationFunction ?? "gelu_new"
        // transformers treats these names as the same tanh approximation.
        guard ["gelu_new", "gelu_pytorch_tanh", "gelu_fast"].contains(act) else {
            throw ModelConfigError.unsupported(file: source, key: "activation_function", message: "'\(act)' (only gelu_new)")
        }
        if f.scaleAttnByInverseLayerIdx == true {
            throw ModelConfigError.unsupported(file: source, key: "scale_attn_by_inverse_layer_idx", message: "true")
        }
        if f.scaleAttnWeights == false {
            throw ModelConfigError.unsupported(file: source, key: "scale_attn_weights", message: "false")
        }
        if f.tieWordEmbeddings == false {
            throw ModelConfigError.unsupported(file: source, key: "tie_word_embeddings", message: "false for gpt2")
        }
        guard f.nHead > 0, f.nEmbd % f.nHead == 0 else {
            throw ModelConfigError.invalid(file: source, key: "n_head", message: "must divide n_embd (\(f.nEmbd)), got \(f.nHead)")
        }
        return try TransformerConfig(
            modelType: "gpt2", vocabSize: f.vocabSize, hiddenSize: f.nEmbd, intermediateSize: f.nInner ?? 4 * f.nEmbd,
            numLayers: f.nLayer, numHeads: f.nHead, numKVHeads: f.nHead, headDim: f.nEmbd / f.nHead,
            maxPositions: f.nPositions, norm: .layer, normEps: Float(f.layerNormEpsilon ?? 1e-5), activation: .geluNew,
            positions: .learned(max: f.nPositions), tieWordEmbeddings: true, qkvBias: true, outputBias: true,
            mlpBias: true, bosTokenId: f.bosTokenId, eosTokenIds: f.eosTokenId?.ids ?? [],
            torchDtype: (f.dtype ?? f.torchDtype).flatMap(DType.init(torchName:)),
            raw: json.objectValue ?? JSONObject()
        ).validated(source: source)
    }

    static func layout(_ c: TransformerConfig) -> ParameterLayout {
        var l = ParameterLayout()
        let (e, i) = (c.hiddenSize, c.intermediateSize)
        l.append("transformer.wte.weight", shape: [c.vocabSize, e], group: 0)
        l.append("transformer.wpe.weight", shape: [c.maxPositions, e], group: 0)
        for layer in 0..<c.numLayers {
            let p = "transformer.h.\(layer)."
            let g = layer + 1
            l.append(p + "ln_1.weight", shape: [e], group: g)
            l.append(p + "ln_1.bias", shape: [e], group: g)
            l.append(p + "attn.c_attn.weight", shape: [e, 3 * e], group: g)
            l.append(p + "attn.c_attn.bias", shape: [3 * e], group: g)
            l.append(p + "attn.c_proj.weight", shape: [e, e], group: g)
            l.append(p + "attn.c_proj.bias", shape: [e], group: g)
            l.append(p + "ln_2.weight", shape: [e], group: g)
            l.append(p + "ln_2.bias", shape: [e], group: g)
            l.append(p + "mlp.c_fc.weight", shape: [e, i], group: g)
            l.append(p + "mlp.c_fc.bias", shape: [i], group: g)
            l.append(p + "mlp.c_proj.weight", shape: [i, e], group: g)
            l.append(p + "mlp.c_proj.bias", shape: [e], group: g)
        }
        l.append("transformer.ln_f.weight", shape: [e], group: c.numLayers + 1)
        l.append("transformer.ln_f.bias", shape: [e], group: c.numLayers + 1)
        return l
    }

    /// Names in files saved before the `transformer.` prefix existed, and buffers old files carry.
    static func canonicalName(_ name: String) -> String? {
        if name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias") { return nil }
        if name.hasPrefix("transformer.") || name == "lm_head.weight" { return name }
        return "transformer." + name
    }
}
