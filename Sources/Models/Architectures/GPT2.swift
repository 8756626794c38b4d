import Formats
import Kernels
import Tensors

/// GPT-2: LayerNorm, learned positions, fused q|k|v projection, gelu_new MLP, tied LM head.
/// Its Conv1D weights are stored [in, out], the transpose of nn.Linear.
public struct GPT2Architecture: Architecture {
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

    static func decode(_ json: JSONValue, source: String) throws -> TransformerConfig {
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
            modelType: "gpt2", architecture: GPT2Architecture(), vocabSize: f.vocabSize, hiddenSize: f.nEmbd,
            intermediateSize: f.nInner ?? 4 * f.nEmbd, numLayers: f.nLayer, numHeads: f.nHead, numKVHeads: f.nHead,
            headDim: f.nEmbd / f.nHead, maxPositions: f.nPositions, normEps: Float(f.layerNormEpsilon ?? 1e-5),
            positions: .learned(max: f.nPositions), tieWordEmbeddings: true,
            bosTokenId: f.bosTokenId, eosTokenIds: f.eosTokenId?.ids ?? [], paddingIndex: nil,
            torchDtype: (f.dtype ?? f.torchDtype).flatMap(DType.init(torchName:)),
            raw: json.objectValue ?? JSONObject()
        ).validated(source: source)
    }

    public func layout(_ c: TransformerConfig) -> ParameterLayout {
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
    public func canonicalName(_ name: String) -> String? {
        if name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias") { return nil }
        if name.hasPrefix("transformer.") || name == "lm_head.weight" { return name }
        return "transformer." + name
    }

    /// ln_1, ln_2 and ln_f are `nn.LayerNorm`s, which transformers excludes from weight decay by type.
    public func layerNormModules(_ c: TransformerConfig) -> Set<String> {
        var modules: Set<String> = ["transformer.ln_f"]
        for i in 0..<c.numLayers {
            modules.insert("transformer.h.\(i).ln_1")
            modules.insert("transformer.h.\(i).ln_2")
        }
        return modules
    }

    public func initialNormWeight(_ name: String) -> Float? {
        name.contains("ln_") && name.hasSuffix(".weight") ? 1 : nil
    }

    public func positionLimit(_ c: TransformerConfig) -> Int? { c.maxPositions }

    /// In the order of `GPT2Binding.Slot`.
    public func activationSlots(_ c: TransformerConfig) -> [ActivationSlot] {
        let H = c.hiddenSize, I = c.intermediateSize
        let stat = ActivationSlot(1, statistic: true)
        return [ActivationSlot(H), stat, stat, ActivationSlot(H), ActivationSlot(H), ActivationSlot(H), ActivationSlot(H),
                ActivationSlot(H), ActivationSlot(H), stat, stat, ActivationSlot(I), ActivationSlot(I)]
    }

    public func bind(_ c: TransformerConfig, layout: ParameterLayout) -> BoundArchitecture {
        let off = { (name: String) in layout[name]!.offset }
        let (E, I) = (c.hiddenSize, c.intermediateSize)
        func norm(_ name: String) -> Norm {
            Norm(kind: .layer(bias: off(name + ".bias")), weight: off(name + ".weight"), channels: E, eps: c.normEps)
        }
        func conv1D(_ name: String, _ inFeatures: Int, _ outFeatures: Int) -> Linear {
            Linear(module: name, weight: off(name + ".weight"), bias: off(name + ".bias"), inFeatures: inFeatures, outFeatures: outFeatures,
                   layout: .inOut)
        }
        let blocks = (0..<c.numLayers).map { l in
            let p = "transformer.h.\(l)."
            let qkv = off(p + "attn.c_attn.weight"), qkvBias = off(p + "attn.c_attn.bias")
            // q, k and v are column blocks j·E..<(j+1)·E of the fused [E, 3E] weight and its bias.
            let parts = (0..<3).map { j in
                Linear(module: p + "attn.c_attn", outputOffset: j * E, weight: qkv + j * E, bias: qkvBias + j * E, inFeatures: E,
                       outFeatures: E, layout: .inOut, ldw: 3 * E)
            }
            return GPT2BlockWeights(ln1: norm(p + "ln_1"), q: parts[0], k: parts[1], v: parts[2],
                                    proj: conv1D(p + "attn.c_proj", E, E), ln2: norm(p + "ln_2"),
                                    fc: conv1D(p + "mlp.c_fc", E, I), fcProj: conv1D(p + "mlp.c_proj", I, E))
        }
        return GPT2Binding(c, blocks: blocks, tokenEmbedding: off("transformer.wte.weight"),
                           positionEmbedding: off("transformer.wpe.weight"), finalNorm: norm("transformer.ln_f"))
    }
}

struct GPT2BlockWeights {
    var ln1: Norm
    var q, k, v, proj: Linear
    var ln2: Norm
    var fc, fcProj: Linear
}

/// The GPT-2 block: x + c_proj(attn(c_attn(ln_1(x)))), then + c_proj(gelu_new(c_fc(ln_2))).
final class GPT2Binding: BoundArchitecture {
    enum Slot: Int, CaseIterable { case ln1, mean1, rstd1, q, k, v, att, mid, ln2, mean2, rstd2, fc, act }

    let config: TransformerConfig
    let blocks: [GPT2BlockWeights]
    let tokenEmbedding: Int
    let positionEmbedding: Int
    let finalNorm: Norm
    let attention: SelfAttention

    init(_ c: TransformerConfig, blocks: [GPT2BlockWeights], tokenEmbedding: Int, positionEmbedding: Int, finalNorm: Norm) {
        config = c
        self.blocks = blocks
        self.tokenEmbedding = tokenEmbedding
        self.positionEmbedding = positionEmbedding
        self.finalNorm = finalNorm
        attention = SelfAttention(shape: c.attentionShape, scale: c.attentionShape.scale)
    }

    var headWeight: Int { tokenEmbedding }
    var logitSoftcap: Float? { nil }

    var projections: [(group: Int, piece: Linear)] {
        blocks.enumerated().flatMap { l, b in [b.q, b.k, b.v, b.proj, b.fc, b.fcProj].map { (l + 1, $0) } }
    }
    func reserveRotary(positions n: Int) {}

    func embedForward(_ ctx: BlockContext, out: UnsafeMutablePointer<Float>) {
        let H = config.hiddenSize
        Embedding.forward(out: out, tokens: ctx.tokens, table: ctx.w(tokenEmbedding), C: H)
        Embedding.addPositions(out: out, positions: ctx.positions, table: ctx.w(positionEmbedding), C: H)
    }

    func embedBackward(_ ctx: BlockContext, dout: UnsafeMutablePointer<Float>) {
        let H = config.hiddenSize
        guard let tokens = ctx.g(tokenEmbedding), let positions = ctx.g(positionEmbedding) else { return }
        Embedding.backward(dtable: tokens, dout: dout, indices: ctx.tokens, C: H)
        Embedding.backward(dtable: positions, dout: dout, indices: ctx.positions, C: H)
    }

    func blockForward(_ l: Int, _ ctx: BlockContext, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                      a: BlockActivations, s: BlockScratch) {
        let b = blocks[l], n = ctx.N * config.hiddenSize
        b.ln1.forward(ctx, out: a[Slot.ln1], inp: x, mean: a[Slot.mean1], rstd: a[Slot.rstd1])
        ctx.timer?.begin(.attention(l), backward: false)
        let (k, v) = attention.keyValueDestinations(ctx, layer: l, k: a[Slot.k], v: a[Slot.v])
        b.q.forward(ctx, out: a[Slot.q], inp: a[Slot.ln1])
        b.k.forward(ctx, out: k, inp: a[Slot.ln1])
        b.v.forward(ctx, out: v, inp: a[Slot.ln1])
        attention.forward(ctx, layer: l, out: a[Slot.att], probs: a.probsPointer(count: attention.shape.probsCount(ctx.spans)),
                          q: a[Slot.q], k: k, v: v)
        b.proj.forward(ctx, out: s.proj, inp: a[Slot.att])
        a[Slot.mid].update(from: x, count: n)
        Residual.add(a[Slot.mid], s.proj, count: n)
        ctx.timer?.end(.attention(l), backward: false)
        b.ln2.forward(ctx, out: a[Slot.ln2], inp: a[Slot.mid], mean: a[Slot.mean2], rstd: a[Slot.rstd2])
        ctx.timer?.begin(.mlp(l), backward: false)
        b.fc.forward(ctx, out: a[Slot.fc], inp: a[Slot.ln2])
        GELU.forward(out: a[Slot.act], inp: a[Slot.fc], count: ctx.N * config.intermediateSize)
        b.fcProj.forward(ctx, out: s.proj, inp: a[Slot.act])
        out.update(from: a[Slot.mid], count: n)
        Residual.add(out, s.proj, count: n)
        ctx.timer?.end(.mlp(l), backward: false)
    }

    func blockBackward(_ l: Int, _ ctx: BlockContext, x: UnsafePointer<Float>, a: BlockActivations, s: BlockScratch) {
        let b = blocks[l]
        ctx.timer?.begin(.mlp(l), backward: true)
        b.fcProj.backward(ctx, dinp: s.dact, dout: s.dres, inp: a[Slot.act])
        GELU.backward(dinp: s.dgate, dout: s.dact, inp: a[Slot.fc], count: ctx.N * config.intermediateSize)
        b.fc.backward(ctx, dinp: s.dln, dout: s.dgate, inp: a[Slot.ln2])
        ctx.timer?.end(.mlp(l), backward: true)
        b.ln2.backward(ctx, dinp: s.dres, dout: s.dln, inp: a[Slot.mid], mean: a[Slot.mean2], rstd: a[Slot.rstd2])
        ctx.timer?.begin(.attention(l), backward: true)
        b.proj.backward(ctx, dinp: s.datt, dout: s.dres, inp: a[Slot.att])
        attention.backward(ctx, dq: s.dq, dk: s.dk, dv: s.dv, dout: s.datt, probs: a.probs!.pointer(count: attention.shape.probsCount(ctx.spans)),
                           q: a[Slot.q], k: a[Slot.k], v: a[Slot.v])
        b.q.backward(ctx, dinp: s.dln, dout: s.dq, inp: a[Slot.ln1])
        b.k.backward(ctx, dinp: s.dln, dout: s.dk, inp: a[Slot.ln1], accumulate: true)
        b.v.backward(ctx, dinp: s.dln, dout: s.dv, inp: a[Slot.ln1], accumulate: true)
        ctx.timer?.end(.attention(l), backward: true)
        b.ln1.backward(ctx, dinp: s.dres, dout: s.dln, inp: x, mean: a[Slot.mean1], rstd: a[Slot.rstd1])
    }

    func finalNormForward(_ ctx: BlockContext, inp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, stats: NormStatistics) {
        finalNorm.forward(ctx, out: out, inp: inp, mean: stats.mean, rstd: stats.rstd)
    }

    func finalNormBackward(_ ctx: BlockContext, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                           inp: UnsafePointer<Float>, stats: NormStatistics) {
        finalNorm.backward(ctx, dinp: dinp, dout: dout, inp: inp, mean: stats.mean, rstd: stats.rstd)
    }
}
