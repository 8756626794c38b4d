import Kernels
import Tensors

/// A decoder-only transformer over one flat f32 parameter buffer (llm.c style): the config, the layout
/// its architecture gives, and the architecture bound to that layout (`binding`), which does the math.
/// The forward pass runs over N tokens at once, split into independent attention spans (rows of a batch,
/// packed examples, or the new tokens of incremental decoding). Inference and training run the same
/// block forward (BlockSchedule.swift for training).
public final class TransformerModel {
    public let config: TransformerConfig
    public let layout: ParameterLayout
    public let params: FlatBuffer
    let binding: BoundArchitecture
    /// A LoRA adapter attached at the targeted projections (inference and adapter training); the base
    /// weights in `params` are then frozen.
    public var adapter: LoRAAdapter?
    /// Weights that are not always in `params` (a 16-bit frozen base under an adapter): the inference
    /// forward asks for each layer group right before it reads it and gives it back after, as the
    /// training schedule's hooks do, so generation and evaluation never widen the whole model at once.
    public var inferenceResidency: WeightResidency?

    public init(config: TransformerConfig) {
        self.config = config
        layout = config.architecture.layout(config)
        params = FlatBuffer(dtype: .f32, count: layout.totalCount)
        binding = config.architecture.bind(config, layout: layout)
    }

    public var parameterCount: Int { layout.totalCount }

    /// What training updates: the adapter's layout and buffer when one is attached (the base frozen), the
    /// model's own otherwise. Gradients passed to the block schedule are laid out like this.
    public var trainableLayout: ParameterLayout { adapter?.layout ?? layout }
    public var trainableParams: FlatBuffer { adapter?.params ?? params }

    /// True when the LM head reads the embedding's weight, so the head phase also uses layer group 0.
    public var isHeadTied: Bool { binding.headWeight == layout.entries.first?.offset && layout["lm_head.weight"] == nil }

    var weightBase: UnsafeMutablePointer<Float> { params.raw.assumingMemoryBound(to: Float.self) }

    /// The layer group the LM head's weight is in: the embedding's when tied, else the last.
    var headGroup: Int { isHeadTied ? 0 : config.numLayers + 1 }

    /// The LM head's weight: the base's, or an adapter's trained copy (`modules_to_save: [lm_head]`).
    var headWeight: UnsafeMutablePointer<Float> {
        if let a = adapter?.context(), let o = a.savedOffset(binding.headWeight) { return a.weights + o }
        return weightBase + binding.headWeight
    }

    /// transformers' `_init_weights`: normal(0, std) for linear and embedding weights, zeros for biases,
    /// the architecture's value for norm weights. Seeded by the counter RNG, so the same seed gives the
    /// same model.
    public func initializeRandom(seed: UInt64, std: Float = 0.02) {
        initializeRandom(seed: seed, std: std, range: 0..<layout.totalCount)
    }

    /// The tensors inside `range` of the `initializeRandom(seed:std:)` model: the one stream skipped
    /// ahead to the first of them (counter-based, so skipping costs nothing), so initialising group by
    /// group gives exactly the weights of all at once.
    public func initializeRandom(seed: UInt64, std: Float = 0.02, range: Range<Int>) {
        var rng = CounterRNG(seed: seed, purpose: .initialization)
        // Each normal draw takes two 32-bit words; norm weights take none.
        let before = layout.entries.filter { $0.offset < range.lowerBound && $0.shape.count != 1 }.reduce(0) { $0 + $1.count }
        rng.skip(words: 2 * before)
        let p = params.floats
        for e in layout.entries where range.contains(e.offset) {
            let normValue = config.architecture.initialNormWeight(e.name) ?? 0
            for i in e.range {
                if e.shape.count == 1 { p[i] = normValue } else { p[i] = rng.nextNormal() * std }
            }
        }
    }

    /// Final hidden states [N, H] (after the last norm) for `tokens` at `positions`, attention split into
    /// `spans`. With a cache, keys and values of these tokens are appended to it and attention sees the
    /// cached ones (`spans` then carry `past`).
    public func forward(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], cache: KVCache? = nil,
                        workspace ws: ForwardWorkspace) -> UnsafeMutablePointer<Float> {
        ws.reserve(tokens: tokens.count, config: config)
        let ctx = BlockContext(weights: weightBase, grads: nil, tokens: tokens, positions: positions, spans: spans, cache: cache,
                               adapter: adapter?.context())
        let x: UnsafeMutablePointer<Float> = ws.residual!, r = inferenceResidency, L = config.numLayers
        r?.willUse(group: 0)
        binding.embedForward(ctx, out: x)
        r?.didUse(group: 0)
        binding.reserveRotary(positions: Int(positions.max() ?? 0) + 1)
        for l in 0..<L {
            r?.willUse(group: l + 1)
            binding.blockForward(l, ctx, x: x, out: x, a: ws.activations!, s: ws.scratch!)
            r?.didUse(group: l + 1)
        }
        cache?.advance(by: tokens.count)
        r?.willUse(group: L + 1)
        binding.finalNormForward(ctx, inp: x, out: ws.normed!, stats: ws.finalStats!)
        r?.didUse(group: L + 1)
        return ws.normed!
    }

    /// logits[rows, V] = hidden[rows, H] · Wᵀ of the LM head (soft-capped where the family does).
    public func logits(hidden: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        let group = headGroup
        inferenceResidency?.willUse(group: group)
        defer { inferenceResidency?.didUse(group: group) }
        Matmul.forward(out: out, inp: hidden, weight: headWeight, bias: nil, M: rows,
                       K: config.hiddenSize, N: config.vocabSize, layout: .outIn)
        if let cap = binding.logitSoftcap { CrossEntropy.softcap(out, rows * config.vocabSize, cap: cap) }
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
