import Kernels
import Tensors

/// Offsets of one block's tensors in the parameter buffer, resolved from the layout once so the hot
/// loop never looks a name up. Llama and GPT-2 fill different fields.
struct BlockOffsets {
    var norm1w = 0, norm1b: Int?, norm2w = 0, norm2b: Int?
    // Llama: separate q/k/v ([out, in]); GPT-2: fused c_attn ([in, 3·out]).
    var q = 0, qb: Int?, k = 0, kb: Int?, v = 0, vb: Int?
    var qkv = 0, qkvb: Int?
    var o = 0, ob: Int?
    var gate = 0, gateb: Int?, up = 0, upb: Int?, down = 0, downb: Int?
    var fc = 0, fcb: Int?, proj = 0, projb: Int?
}

/// A decoder-only transformer over one flat f32 parameter buffer (llm.c style). The forward pass runs
/// over N tokens at once, split into independent attention spans (rows of a batch, packed examples,
/// or the new tokens of incremental decoding).
public final class TransformerModel {
    public let config: TransformerConfig
    public let layout: ParameterLayout
    public let params: FlatBuffer
    public private(set) var rope: RotaryEmbedding?
    let blocks: [BlockOffsets]
    let embedding: Int, positionEmbedding: Int?, finalNormW: Int, finalNormB: Int?, lmHead: Int

    public init(config: TransformerConfig) {
        self.config = config
        layout = ModelRegistry.layout(for: config)
        params = FlatBuffer(dtype: .f32, count: layout.totalCount)
        let off = { [layout] (name: String) -> Int in layout[name]!.offset }
        let opt = { [layout] (name: String) -> Int? in layout[name]?.offset }
        if config.modelType == "gpt2" {
            embedding = off("transformer.wte.weight")
            positionEmbedding = off("transformer.wpe.weight")
            finalNormW = off("transformer.ln_f.weight")
            finalNormB = opt("transformer.ln_f.bias")
            lmHead = embedding
            blocks = (0..<config.numLayers).map { l in
                let p = "transformer.h.\(l)."
                var b = BlockOffsets()
                b.norm1w = off(p + "ln_1.weight"); b.norm1b = opt(p + "ln_1.bias")
                b.norm2w = off(p + "ln_2.weight"); b.norm2b = opt(p + "ln_2.bias")
                b.qkv = off(p + "attn.c_attn.weight"); b.qkvb = opt(p + "attn.c_attn.bias")
                b.o = off(p + "attn.c_proj.weight"); b.ob = opt(p + "attn.c_proj.bias")
                b.fc = off(p + "mlp.c_fc.weight"); b.fcb = opt(p + "mlp.c_fc.bias")
                b.proj = off(p + "mlp.c_proj.weight"); b.projb = opt(p + "mlp.c_proj.bias")
                return b
            }
        } else {
            embedding = off("model.embed_tokens.weight")
            positionEmbedding = nil
            finalNormW = off("model.norm.weight")
            finalNormB = nil
            lmHead = config.tieWordEmbeddings ? embedding : off("lm_head.weight")
            blocks = (0..<config.numLayers).map { l in
                let p = "model.layers.\(l)."
                var b = BlockOffsets()
                b.norm1w = off(p + "input_layernorm.weight"); b.norm2w = off(p + "post_attention_layernorm.weight")
                b.q = off(p + "self_attn.q_proj.weight"); b.qb = opt(p + "self_attn.q_proj.bias")
                b.k = off(p + "self_attn.k_proj.weight"); b.kb = opt(p + "self_attn.k_proj.bias")
                b.v = off(p + "self_attn.v_proj.weight"); b.vb = opt(p + "self_attn.v_proj.bias")
                b.o = off(p + "self_attn.o_proj.weight"); b.ob = opt(p + "self_attn.o_proj.bias")
                b.gate = off(p + "mlp.gate_proj.weight"); b.gateb = opt(p + "mlp.gate_proj.bias")
                b.up = off(p + "mlp.up_proj.weight"); b.upb = opt(p + "mlp.up_proj.bias")
                b.down = off(p + "mlp.down_proj.weight"); b.downb = opt(p + "mlp.down_proj.bias")
                return b
            }
        }
        if case .rotary(let theta, let scaling) = config.positions {
            rope = RotaryEmbedding(headDim: config.headDim, theta: theta, scaling: scaling)
        }
    }

    public var parameterCount: Int { layout.totalCount }

    /// transformers' `_init_weights`: normal(0, std) for linear and embedding weights, zeros for biases,
    /// ones for norm weights. Seeded by the counter RNG, so the same seed gives the same model.
    public func initializeRandom(seed: UInt64, std: Float = 0.02) {
        var rng = CounterRNG(seed: seed, purpose: .initialization)
        let p = params.floats
        for e in layout.entries {
            let isNorm = e.name.contains("norm") || e.name.contains("ln_")
            for i in e.range {
                if e.shape.count == 1 { p[i] = isNorm && e.name.hasSuffix(".weight") ? 1 : 0 } else { p[i] = rng.nextNormal() * std }
            }
        }
    }

    @inline(__always) func w(_ offset: Int) -> UnsafeMutablePointer<Float> { params.raw.assumingMemoryBound(to: Float.self) + offset }
    @inline(__always) func wOpt(_ offset: Int?) -> UnsafeMutablePointer<Float>? { offset.map { w($0) } }

    /// Final hidden states [N, H] (after the last norm) for `tokens` at `positions`, attention split into
    /// `spans`. With a cache, keys and values of these tokens are appended to it and attention sees the
    /// cached ones (`spans` then carry `past`).
    public func forward(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], cache: KVCache? = nil,
                        workspace ws: ForwardWorkspace) -> UnsafeMutablePointer<Float> {
        let c = config, N = tokens.count, H = c.hiddenSize, shape = c.attentionShape
        let (qDim, kvDim) = (shape.qDim, shape.kvDim)
        ws.reserve(tokens: N, config: c)
        let x = ws.residual, ln = ws.normed
        Embedding.forward(out: x, tokens: tokens, table: w(embedding), C: H)
        if let pe = positionEmbedding { Embedding.addPositions(out: x, positions: positions, table: w(pe), C: H) }
        reserveRotary(positions: Int(positions.max() ?? 0) + 1)
        for (l, b) in blocks.enumerated() {
            norm(out: ln, inp: x, weight: b.norm1w, bias: b.norm1b, N: N)
            let kOut = cache.map { $0.keys(layer: l) + $0.length * kvDim } ?? ws.k
            let vOut = cache.map { $0.values(layer: l) + $0.length * kvDim } ?? ws.v
            projectQKV(b, inp: ln, q: ws.q, k: kOut, v: vOut, positions: positions, N: N)
            if let cache {
                Attention.forward(out: ws.att, probs: nil, q: ws.q, k: cache.keys(layer: l), v: cache.values(layer: l),
                                  spans: spans, shape: shape)
            } else {
                Attention.forward(out: ws.att, probs: nil, q: ws.q, k: ws.k, v: ws.v, spans: spans, shape: shape)
            }
            Matmul.forward(out: ws.proj, inp: ws.att, weight: w(b.o), bias: wOpt(b.ob), M: N, K: qDim, N: H, layout: linearLayout)
            Residual.add(x, ws.proj, count: N * H)
            norm(out: ln, inp: x, weight: b.norm2w, bias: b.norm2b, N: N)
            mlp(b, inp: ln, gate: ws.gate, up: ws.up, act: ws.act, out: ws.proj, N: N)
            Residual.add(x, ws.proj, count: N * H)
        }
        cache?.advance(by: N)
        norm(out: ln, inp: x, weight: finalNormW, bias: finalNormB, N: N)
        return ln
    }

    /// The block's norm over rows of H; mean (LayerNorm only) and rstd [N] saved when given.
    func norm(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>? = nil, rstd: UnsafeMutablePointer<Float>? = nil,
              inp: UnsafePointer<Float>, weight: Int, bias: Int?, N: Int) {
        switch config.norm {
        case .rms:
            RMSNorm.forward(out: out, rstd: rstd, inp: inp, weight: w(weight), N: N, C: config.hiddenSize, eps: config.normEps)
        case .layer:
            LayerNorm.forward(out: out, mean: mean, rstd: rstd, inp: inp, weight: w(weight), bias: w(bias!),
                              N: N, C: config.hiddenSize, eps: config.normEps)
        }
    }

    /// Grows the RoPE tables to cover positions 0..<n (no-op for learned positions).
    func reserveRotary(positions n: Int) {
        if rope != nil { rope!.reserve(positions: n) }
    }

    /// Layout of the block's dense weights: GPT-2's Conv1D is [in, out], nn.Linear [out, in].
    var linearLayout: WeightLayout { config.modelType == "gpt2" ? .inOut : .outIn }

    /// q[N, heads·hd], k, v[N, kvHeads·hd] from the normed input, RoPE applied to q and k.
    func projectQKV(_ b: BlockOffsets, inp ln: UnsafePointer<Float>, q: UnsafeMutablePointer<Float>,
                    k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, positions: [Int32], N: Int) {
        let c = config, H = c.hiddenSize, shape = c.attentionShape
        if c.modelType == "gpt2" {
            // Fused Conv1D [H, 3H]: three column blocks of one weight, ldb = 3H.
            let wq = w(b.qkv), bq = wOpt(b.qkvb)!
            for (j, dst) in [q, k, v].enumerated() {
                for r in 0..<N { (dst + r * H).update(from: bq + j * H, count: H) }
                Matmul.gemm(transA: false, transB: false, M: N, N: H, K: H, A: ln, lda: H, B: wq + j * H, ldb: 3 * H,
                            beta: 1, C: dst, ldc: H)
            }
        } else {
            Matmul.forward(out: q, inp: ln, weight: w(b.q), bias: wOpt(b.qb), M: N, K: H, N: shape.qDim, layout: .outIn)
            Matmul.forward(out: k, inp: ln, weight: w(b.k), bias: wOpt(b.kb), M: N, K: H, N: shape.kvDim, layout: .outIn)
            Matmul.forward(out: v, inp: ln, weight: w(b.v), bias: wOpt(b.vb), M: N, K: H, N: shape.kvDim, layout: .outIn)
        }
        if let rope {
            positions.withUnsafeBufferPointer { pos in
                rope.apply(q, N: N, heads: c.numHeads, positions: pos.baseAddress!)
                rope.apply(k, N: N, heads: c.numKVHeads, positions: pos.baseAddress!)
            }
        }
    }

    /// out[N, H] = the MLP of the normed input: down(silu(gate)·up) or c_proj(gelu_new(c_fc)).
    /// gate[N, I] keeps the pre-activation (c_fc output for GPT-2), up[N, I] (Llama only), act[N, I].
    func mlp(_ b: BlockOffsets, inp ln: UnsafePointer<Float>, gate: UnsafeMutablePointer<Float>, up: UnsafeMutablePointer<Float>,
             act: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, N: Int) {
        let H = config.hiddenSize, I = config.intermediateSize
        if config.modelType == "gpt2" {
            Matmul.forward(out: gate, inp: ln, weight: w(b.fc), bias: wOpt(b.fcb), M: N, K: H, N: I, layout: .inOut)
            GELU.forward(out: act, inp: gate, count: N * I)
            Matmul.forward(out: out, inp: act, weight: w(b.proj), bias: wOpt(b.projb), M: N, K: I, N: H, layout: .inOut)
        } else {
            Matmul.forward(out: gate, inp: ln, weight: w(b.gate), bias: wOpt(b.gateb), M: N, K: H, N: I, layout: .outIn)
            Matmul.forward(out: up, inp: ln, weight: w(b.up), bias: wOpt(b.upb), M: N, K: H, N: I, layout: .outIn)
            SwiGLU.forward(out: act, gate: gate, up: up, count: N * I)
            Matmul.forward(out: out, inp: act, weight: w(b.down), bias: wOpt(b.downb), M: N, K: I, N: H, layout: .outIn)
        }
    }

    /// logits[rows, V] = hidden[rows, H] · Wᵀ of the LM head.
    public func logits(hidden: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        Matmul.forward(out: out, inp: hidden, weight: w(lmHead), bias: nil, M: rows, K: config.hiddenSize,
                       N: config.vocabSize, layout: .outIn)
    }

    /// Convenience for tests and evaluation: logits [B·T, V] of a batch of equal-length rows.
    public func logits(batch: [[Int32]]) -> [Float] {
        let tokens = batch.flatMap { $0 }
        let T = batch.first?.count ?? 0
        let positions = batch.flatMap { row in (0..<row.count).map(Int32.init) }
        let spans = (0..<batch.count).map { AttentionSpan(qStart: $0 * T, qLen: batch[$0].count) }
        let ws = ForwardWorkspace()
        let hidden = forward(tokens: tokens, positions: positions, spans: spans, workspace: ws)
        var out = [Float](repeating: 0, count: tokens.count * config.vocabSize)
        out.withUnsafeMutableBufferPointer { logits(hidden: hidden, rows: tokens.count, into: $0.baseAddress!) }
        return out
    }
}
