import Kernels
import Tensors

public enum TrainingError: Error, CustomStringConvertible {
    case lengthMismatch(tokens: Int, positions: Int, targets: Int)
    case tooManyTokens(tokens: Int, maxTokens: Int)
    case tokenOutOfRange(index: Int, token: Int32, vocabSize: Int)
    case targetOutOfRange(index: Int, target: Int32, vocabSize: Int)
    case positionOutOfRange(index: Int, position: Int32, maxPositions: Int)
    case badSpans(String)
    case badNormalizer(Float)
    case gradientBufferMismatch(expected: Int, found: Int, dtype: DType)
    case stateMismatch(String)

    public var description: String {
        switch self {
        case .lengthMismatch(let t, let p, let g): return "tokens (\(t)), positions (\(p)) and targets (\(g)) must have the same length"
        case .tooManyTokens(let t, let m): return "\(t) tokens exceed the training state's maxTokens \(m)"
        case .tokenOutOfRange(let i, let t, let v): return "token \(t) at index \(i) is outside the vocabulary 0..<\(v)"
        case .targetOutOfRange(let i, let t, let v): return "target \(t) at index \(i) is neither -100 nor in 0..<\(v)"
        case .positionOutOfRange(let i, let p, let m): return "position \(p) at index \(i) is outside 0..<\(m)"
        case .badSpans(let m): return "attention spans: \(m)"
        case .badNormalizer(let n): return "normalizer must be positive and finite, got \(n)"
        case .gradientBufferMismatch(let e, let f, let d): return "gradient buffer must be f32 with \(e) elements (the parameter layout), got \(d) with \(f)"
        case .stateMismatch(let m): return "training state: \(m)"
        }
    }
}

/// One micro-batch of causal-LM training, checked against the model once (`TransformerModel.batch`).
///
/// - targets are ALREADY SHIFTED: targets[n] is the token row n must predict, -100 for no loss (the
///   last token of every example has -100). transformers' `labels` convert as targets[t] = labels[t+1].
/// - normalizer is the number of label tokens in the whole optimizer step (all accumulation
///   micro-batches and ranks): gradients are of Σ loss / normalizer, so accumulation equals the
///   full-batch gradient.
public struct MicroBatch {
    public let tokens: [Int32]
    public let positions: [Int32]
    public let spans: [AttentionSpan]
    public let targets: [Int32]
    public let normalizer: Float
    /// Training with adapter dropout: the micro-step's key (a resumed run passes the same one).
    public var dropoutKey: UInt64? = nil
}

/// The step split at block boundaries: embed → blocks i..<j → head and loss, then the same pieces
/// backward. Every piece calls the hooks for the layer groups it reads, so full-model training,
/// activation checkpointing, ZeRO-3's gathers and releases, and the empty micro-step of a rank without
/// tokens (`batch == nil`: hooks only, the collectives in the same order as the others') all run this
/// one schedule, and a pipeline stage can run `blocksForward`/`blocksBackward` over its own range alone,
/// taking activations in through `state.blockInput(i)` and gradients through `state.residualGradient`.
///
/// Gradients are ADDED into `grads` (f32, laid out like `params`; zero it at the start of an optimizer
/// step). A tied LM head's gradient lands in the embedding's.
extension TransformerModel {
    /// Checks lengths, token/target/position ranges and spans, and makes the micro-batch.
    public func batch(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32],
                      normalizer: Float, dropoutKey: UInt64? = nil) throws -> MicroBatch {
        try validateBatch(tokens: tokens, positions: positions, spans: spans, targets: targets)
        guard normalizer > 0, normalizer.isFinite else { throw TrainingError.badNormalizer(normalizer) }
        return MicroBatch(tokens: tokens, positions: positions, spans: spans, targets: targets, normalizer: normalizer,
                          dropoutKey: dropoutKey)
    }

    /// Forward, loss and backward of the whole model: every piece in order. Returns the SUM of the token
    /// losses of this micro-batch (f64) and its label-token count; the step's mean loss is Σ lossSum / Σ
    /// labelTokens. `batch` nil runs the hooks alone (a ZeRO-2/3 rank with no tokens this micro-step).
    @discardableResult
    public func runSchedule(_ batch: MicroBatch?, grads: FlatBuffer, state: TrainingState) throws -> (lossSum: Double, labelTokens: Int) {
        try checkState(state, grads: grads, tokens: batch?.tokens.count ?? 0)
        let L = config.numLayers
        try embedForward(batch, state: state)
        try blocksForward(0..<L, batch, state: state)
        let result = try headForwardBackward(batch, grads: grads, state: state)
        try blocksBackward(0..<L, batch, grads: grads, state: state)
        try embedBackward(batch, grads: grads, state: state)
        return result
    }

    /// The old one-call entry point: `runSchedule` of a checked batch.
    @discardableResult
    public func lossAndGradients(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32],
                                 normalizer: Float, grads: FlatBuffer,
                                 state: TrainingState, dropoutKey: UInt64? = nil) throws -> (lossSum: Double, labelTokens: Int) {
        let b = try batch(tokens: tokens, positions: positions, spans: spans, targets: targets, normalizer: normalizer,
                          dropoutKey: dropoutKey)
        return try runSchedule(b, grads: grads, state: state)
    }

    /// Group 0 forward: the embedding into state.blockInput(0).
    public func embedForward(_ batch: MicroBatch?, state: TrainingState) throws {
        let hooks = state.hooks
        try hooks?.willUse(group: 0, backward: false)
        if let batch {
            state.timer?.begin(.embedding, backward: false)
            binding.embedForward(context(batch), out: state.residual[0])
            state.timer?.end(.embedding, backward: false)
        }
        try hooks?.didUse(group: 0, backward: false)
    }

    /// Blocks `range` forward: blockInput(i) → blockInput(j), keeping (or stashing) activations.
    public func blocksForward(_ range: Range<Int>, _ batch: MicroBatch?, state: TrainingState) throws {
        let hooks = state.hooks
        if let batch { binding.reserveRotary(positions: Int(batch.positions.max() ?? 0) + 1) }
        for l in range {
            try hooks?.willUse(group: l + 1, backward: false)
            if let batch {
                state.timer?.begin(.block(l), backward: false)
                binding.blockForward(l, context(batch, timer: state.timer), x: state.residual[l], out: state.residual[l + 1],
                                     a: state.activations(layer: l), s: state.scratch)
                state.saveActivations(layer: l, tokens: batch.tokens.count, probsCount: config.attentionShape.probsCount(batch.spans))
                state.timer?.end(.block(l), backward: false)
            }
            try hooks?.didUse(group: l + 1, backward: false)
        }
    }

    /// The head phase: final norm, LM head and loss, and their backward, from blockInput(L); leaves the
    /// gradient of blockInput(L) in state.residualGradient. Reads groups L+1 and, when the head is tied,
    /// 0; `gradientsReady(L+1)` follows.
    public func headForwardBackward(_ batch: MicroBatch?, grads: FlatBuffer, state: TrainingState) throws -> (lossSum: Double, labelTokens: Int) {
        let hooks = state.hooks, L = config.numLayers
        let headGroups = isHeadTied ? [L + 1, 0] : [L + 1]
        for group in headGroups { try hooks?.willUse(group: group, backward: false) }
        var result: (lossSum: Double, labelTokens: Int) = (0, 0)
        if let batch {
            state.timer?.begin(.headAndLoss, backward: false)
            defer { state.timer?.end(.headAndLoss, backward: false) }
            let ctx = context(batch, grads: grads), N = batch.tokens.count, H = config.hiddenSize, V = config.vocabSize
            binding.finalNormForward(ctx, inp: state.residual[L], out: state.lnF, stats: state.finalStats)
            let s = state.scratch
            s.dln.update(repeating: 0, count: N * H)
            result = CrossEntropy.lmHeadLoss(dhidden: s.dln, dweight: ctx.g(binding.headWeight), hidden: state.lnF,
                                             weight: ctx.w(binding.headWeight), targets: batch.targets, normalizer: batch.normalizer,
                                             H: H, V: V, softcap: binding.logitSoftcap,
                                             scratch: state.lossScratch.pointer(count: CrossEntropy.scratchCount(
                                                chunkRows: CrossEntropy.defaultChunkRows, H: H, V: V)))
            s.dres.update(repeating: 0, count: N * H)
            binding.finalNormBackward(ctx, dinp: s.dres, dout: s.dln, inp: state.residual[L], stats: state.finalStats)
        }
        for group in headGroups { try hooks?.didUse(group: group, backward: false) }
        try hooks?.gradientsReady(group: L + 1)
        return result
    }

    /// Blocks `range` backward, last first: state.residualGradient goes from the gradient of
    /// blockInput(j) to that of blockInput(i). With checkpointing each block's forward is re-run first.
    public func blocksBackward(_ range: Range<Int>, _ batch: MicroBatch?, grads: FlatBuffer, state: TrainingState) throws {
        let hooks = state.hooks
        for l in range.reversed() {
            try hooks?.willUse(group: l + 1, backward: true)
            if let batch {
                state.timer?.begin(.block(l), backward: true)
                defer { state.timer?.end(.block(l), backward: true) }
                let ctx = context(batch, grads: grads, timer: state.timer), a = state.activations(layer: l)
                if state.checkpointActivations {
                    // Re-run the block from its kept input; its output (identical) overwrites a no-longer-needed input.
                    binding.blockForward(l, ctx, x: state.residual[l], out: state.residual[l + 1], a: a, s: state.scratch)
                } else {
                    state.restoreActivations(layer: l, tokens: batch.tokens.count, probsCount: config.attentionShape.probsCount(batch.spans))
                }
                binding.blockBackward(l, ctx, x: state.residual[l], a: a, s: state.scratch)
            }
            try hooks?.didUse(group: l + 1, backward: true)
            try hooks?.gradientsReady(group: l + 1)
        }
    }

    /// Group 0 backward: the embedding's gradient from state.residualGradient. It reads only gradients
    /// and indices, not the weights, so it needs no `willUse`.
    public func embedBackward(_ batch: MicroBatch?, grads: FlatBuffer, state: TrainingState) throws {
        if let batch {
            state.timer?.begin(.embedding, backward: true)
            binding.embedBackward(context(batch, grads: grads), dout: state.scratch.dres)
            state.timer?.end(.embedding, backward: true)
        }
        try state.hooks?.gradientsReady(group: 0)
    }

    /// With an adapter attached the gradients are the adapter's and the base gets none.
    func context(_ b: MicroBatch, grads: FlatBuffer? = nil, timer: ScheduleTimer? = nil) -> BlockContext {
        let g = grads.map { $0.raw.assumingMemoryBound(to: Float.self) }
        return BlockContext(weights: weightBase, grads: adapter == nil ? g : nil, tokens: b.tokens, positions: b.positions,
                            spans: b.spans, cache: nil, adapter: adapter?.context(grads: grads, dropoutKey: b.dropoutKey), timer: timer)
    }

    func checkState(_ state: TrainingState, grads: FlatBuffer, tokens n: Int) throws {
        guard n <= state.maxTokens else { throw TrainingError.tooManyTokens(tokens: n, maxTokens: state.maxTokens) }
        guard state.config.hiddenSize == config.hiddenSize, state.config.numLayers == config.numLayers,
              state.config.intermediateSize == config.intermediateSize,
              state.config.attentionShape.qDim == config.attentionShape.qDim,
              state.config.attentionShape.kvDim == config.attentionShape.kvDim,
              state.slots == config.architecture.activationSlots(config) else {
            throw TrainingError.stateMismatch("made for a different model shape")
        }
        guard grads.dtype == .f32, grads.count == trainableLayout.totalCount else {
            throw TrainingError.gradientBufferMismatch(expected: trainableLayout.totalCount, found: grads.count, dtype: grads.dtype)
        }
    }

    /// Evaluation: the same loss as training (sum over labelled tokens and their count) from the
    /// inference forward, without keeping activations or computing gradients.
    public func lossSum(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32],
                        workspace: ForwardWorkspace) throws -> (lossSum: Double, labelTokens: Int) {
        try validateBatch(tokens: tokens, positions: positions, spans: spans, targets: targets)
        let hidden = forward(tokens: tokens, positions: positions, spans: spans, workspace: workspace)
        let group = headGroup
        inferenceResidency?.willUse(group: group)
        defer { inferenceResidency?.didUse(group: group) }
        return CrossEntropy.lmHeadLoss(dhidden: nil, dweight: nil, hidden: hidden, weight: headWeight,
                                       targets: targets, normalizer: 1, H: config.hiddenSize, V: config.vocabSize,
                                       softcap: binding.logitSoftcap)
    }

    /// Lengths, token/target/position ranges, and spans that tile the tokens in order without a cache.
    func validateBatch(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32]) throws {
        let N = tokens.count, V = Int32(config.vocabSize)
        guard positions.count == N, targets.count == N else {
            throw TrainingError.lengthMismatch(tokens: N, positions: positions.count, targets: targets.count)
        }
        if let i = tokens.firstIndex(where: { $0 < 0 || $0 >= V }) {
            throw TrainingError.tokenOutOfRange(index: i, token: tokens[i], vocabSize: config.vocabSize)
        }
        if let i = targets.firstIndex(where: { $0 != CrossEntropy.ignoreIndex && ($0 < 0 || $0 >= V) }) {
            throw TrainingError.targetOutOfRange(index: i, target: targets[i], vocabSize: config.vocabSize)
        }
        let maxPositions = config.architecture.positionLimit(config) ?? Int(Int32.max)
        if let i = positions.firstIndex(where: { $0 < 0 || Int($0) >= maxPositions }) {
            throw TrainingError.positionOutOfRange(index: i, position: positions[i], maxPositions: maxPositions)
        }
        var covered = 0
        for (i, s) in spans.enumerated() {
            guard s.past == 0, s.kvStart == s.qStart, s.qLen > 0, s.qStart == covered else {
                throw TrainingError.badSpans("span \(i) \(s): training spans must tile 0..<\(N) in order, with no past and kvStart == qStart")
            }
            covered += s.qLen
        }
        guard covered == N else { throw TrainingError.badSpans("spans cover \(covered) of \(N) tokens") }
    }
}
