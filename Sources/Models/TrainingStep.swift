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

extension TransformerModel {
    /// One micro-batch of causal-LM training: forward over `tokens` (N = all rows of the micro-batch,
    /// flattened; each span one example or one row, attention never crossing spans, no cache), loss, and
    /// backward. Gradients are ADDED into `grads` (f32, laid out like `params`; zero it at the start of an
    /// optimizer step). A tied LM head's gradient lands in the embedding's.
    ///
    /// - targets: ALREADY SHIFTED, targets[n] is the token row n must predict, -100 for no loss (the last
    ///   token of every example has -100). transformers' `labels` convert as targets[t] = labels[t+1]
    ///   within an example.
    /// - normalizer: the number of label tokens in the whole optimizer step (all accumulation micro-batches
    ///   and ranks); gradients are of Σ loss / normalizer, so accumulation equals the full-batch gradient.
    /// - Returns: the SUM of the token losses of this micro-batch (f64) and its label-token count; the step's
    ///   mean loss is Σ lossSum / Σ labelTokens.
    @discardableResult
    public func lossAndGradients(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32],
                                 normalizer: Float, grads: FlatBuffer,
                                 state: TrainingState) throws -> (lossSum: Double, labelTokens: Int) {
        try validateTrainingInputs(tokens: tokens, positions: positions, spans: spans, targets: targets,
                                   normalizer: normalizer, grads: grads, state: state)
        let c = config, N = tokens.count, H = c.hiddenSize, L = blocks.count
        let g = { (offset: Int) in grads.raw.assumingMemoryBound(to: Float.self) + offset }
        let hooks = state.hooks
        // The groups the head phase reads: the final norm's, and the embedding's when the LM head is tied to it.
        let headGroups = lmHead == embedding ? [L + 1, 0] : [L + 1]
        let probsCount = c.attentionShape.probsCount(spans)
        try hooks?.willUse(group: 0, backward: false)
        Embedding.forward(out: state.residual[0], tokens: tokens, table: w(embedding), C: H)
        if let pe = positionEmbedding { Embedding.addPositions(out: state.residual[0], positions: positions, table: w(pe), C: H) }
        try hooks?.didUse(group: 0, backward: false)
        reserveRotary(positions: Int(positions.max() ?? 0) + 1)
        for l in 0..<L {
            try hooks?.willUse(group: l + 1, backward: false)
            trainingBlockForward(l, out: state.residual[l + 1], state: state, positions: positions, spans: spans, N: N)
            state.saveActivations(layer: l, tokens: N, probsCount: probsCount)
            try hooks?.didUse(group: l + 1, backward: false)
        }
        for group in headGroups { try hooks?.willUse(group: group, backward: false) }
        norm(out: state.lnF, mean: state.meanF, rstd: state.rstdF, inp: state.residual[L], weight: finalNormW, bias: finalNormB, N: N)

        state.dln.update(repeating: 0, count: N * H)
        let result = CrossEntropy.lmHeadLoss(dhidden: state.dln, dweight: g(lmHead), hidden: state.lnF, weight: w(lmHead),
                                             targets: targets, normalizer: normalizer, H: H, V: c.vocabSize,
                                             scratch: state.lossScratch.pointer(count: CrossEntropy.scratchCount(
                                                chunkRows: CrossEntropy.defaultChunkRows, H: H, V: c.vocabSize)))
        state.dres.update(repeating: 0, count: N * H)
        normBackward(dinp: state.dres, grads: grads, dout: state.dln, inp: state.residual[L], weight: finalNormW, bias: finalNormB,
                     mean: state.meanF, rstd: state.rstdF, N: N)
        for group in headGroups { try hooks?.didUse(group: group, backward: false) }
        try hooks?.gradientsReady(group: L + 1)
        for l in stride(from: L - 1, through: 0, by: -1) {
            try hooks?.willUse(group: l + 1, backward: true)
            if state.checkpointActivations {
                // Re-run the block from its kept input; its output (identical) overwrites a no-longer-needed input.
                trainingBlockForward(l, out: state.residual[l + 1], state: state, positions: positions, spans: spans, N: N)
            } else {
                state.restoreActivations(layer: l, tokens: N, probsCount: probsCount)
            }
            trainingBlockBackward(l, grads: grads, state: state, positions: positions, spans: spans, N: N)
            try hooks?.didUse(group: l + 1, backward: true)
            try hooks?.gradientsReady(group: l + 1)
        }
        // The embedding backward reads only gradients and indices, not the weights.
        Embedding.backward(dtable: g(embedding), dout: state.dres, indices: tokens, C: H)
        if let pe = positionEmbedding { Embedding.backward(dtable: g(pe), dout: state.dres, indices: positions, C: H) }
        try hooks?.gradientsReady(group: 0)
        return result
    }

    /// Block l from its input state.residual[l] into `out`, keeping what backward needs.
    func trainingBlockForward(_ l: Int, out: UnsafeMutablePointer<Float>, state: TrainingState, positions: [Int32],
                              spans: [AttentionSpan], N: Int) {
        let b = blocks[l], a = state.activations(layer: l), x = state.residual[l]
        let c = config, H = c.hiddenSize, shape = c.attentionShape
        norm(out: a.ln1, mean: a.mean1, rstd: a.rstd1, inp: x, weight: b.norm1w, bias: b.norm1b, N: N)
        projectQKV(b, inp: a.ln1, q: a.q, k: a.k, v: a.v, positions: positions, N: N)
        Attention.forward(out: a.att, probs: a.probs.pointer(count: shape.probsCount(spans)), q: a.q, k: a.k, v: a.v,
                          spans: spans, shape: shape)
        Matmul.forward(out: state.proj, inp: a.att, weight: w(b.o), bias: wOpt(b.ob), M: N, K: shape.qDim, N: H, layout: linearLayout)
        a.mid.update(from: x, count: N * H)
        Residual.add(a.mid, state.proj, count: N * H)
        norm(out: a.ln2, mean: a.mean2, rstd: a.rstd2, inp: a.mid, weight: b.norm2w, bias: b.norm2b, N: N)
        mlp(b, inp: a.ln2, gate: a.gate, up: a.up, act: a.act, out: state.proj, N: N)
        out.update(from: a.mid, count: N * H)
        Residual.add(out, state.proj, count: N * H)
    }

    /// Backward of block l: on entry state.dres is the gradient of the block's output, on exit of its input.
    func trainingBlockBackward(_ l: Int, grads: FlatBuffer, state s: TrainingState, positions: [Int32],
                               spans: [AttentionSpan], N: Int) {
        let b = blocks[l], a = s.activations(layer: l)
        let c = config, H = c.hiddenSize, I = c.intermediateSize, shape = c.attentionShape
        let g = { (offset: Int) in grads.raw.assumingMemoryBound(to: Float.self) + offset }
        let gOpt = { (offset: Int?) in offset.map { g($0) } }
        // MLP: the residual passes dres straight through; the branch adds its input gradient via norm2.
        if c.modelType == "gpt2" {
            Matmul.backward(dinp: s.dact, dweight: g(b.proj), dbias: gOpt(b.projb), dout: s.dres, inp: a.act, weight: w(b.proj),
                            M: N, K: I, N: H, layout: .inOut)
            GELU.backward(dinp: s.dgate, dout: s.dact, inp: a.gate, count: N * I)
            Matmul.backward(dinp: s.dln, dweight: g(b.fc), dbias: gOpt(b.fcb), dout: s.dgate, inp: a.ln2, weight: w(b.fc),
                            M: N, K: H, N: I, layout: .inOut)
        } else {
            Matmul.backward(dinp: s.dact, dweight: g(b.down), dbias: gOpt(b.downb), dout: s.dres, inp: a.act, weight: w(b.down),
                            M: N, K: I, N: H, layout: .outIn)
            SwiGLU.backward(dgate: s.dgate, dup: s.dup, dout: s.dact, gate: a.gate, up: a.up, count: N * I)
            Matmul.backward(dinp: s.dln, dweight: g(b.gate), dbias: gOpt(b.gateb), dout: s.dgate, inp: a.ln2, weight: w(b.gate),
                            M: N, K: H, N: I, layout: .outIn)
            Matmul.backward(dinp: s.dln, dweight: g(b.up), dbias: gOpt(b.upb), dout: s.dup, inp: a.ln2, weight: w(b.up),
                            M: N, K: H, N: I, layout: .outIn, accumulateInput: true)
        }
        normBackward(dinp: s.dres, grads: grads, dout: s.dln, inp: a.mid, weight: b.norm2w, bias: b.norm2b,
                     mean: a.mean2, rstd: a.rstd2, N: N)
        // Attention.
        Matmul.backward(dinp: s.datt, dweight: g(b.o), dbias: gOpt(b.ob), dout: s.dres, inp: a.att, weight: w(b.o),
                        M: N, K: shape.qDim, N: H, layout: linearLayout)
        s.dk.update(repeating: 0, count: N * shape.kvDim)
        s.dv.update(repeating: 0, count: N * shape.kvDim)
        Attention.backward(dq: s.dq, dk: s.dk, dv: s.dv, dout: s.datt, probs: a.probs.pointer(count: shape.probsCount(spans)),
                           q: a.q, k: a.k, v: a.v, spans: spans, shape: shape)
        if let rope {
            positions.withUnsafeBufferPointer { pos in
                rope.applyBackward(s.dq, N: N, heads: c.numHeads, positions: pos.baseAddress!)
                rope.applyBackward(s.dk, N: N, heads: c.numKVHeads, positions: pos.baseAddress!)
            }
        }
        if c.modelType == "gpt2" {
            // Fused c_attn [H, 3H]: column block j of the weight, its gradient and its bias.
            for (j, d) in [s.dq, s.dk, s.dv].enumerated() {
                Matmul.backward(dinp: s.dln, dweight: g(b.qkv) + j * H, dbias: g(b.qkvb!) + j * H, dout: d, inp: a.ln1,
                                weight: w(b.qkv) + j * H, M: N, K: H, N: H, layout: .inOut, ldw: 3 * H, accumulateInput: j > 0)
            }
        } else {
            let parts = [(s.dq, b.q, b.qb, shape.qDim), (s.dk, b.k, b.kb, shape.kvDim), (s.dv, b.v, b.vb, shape.kvDim)]
            for (j, (d, weight, bias, width)) in parts.enumerated() {
                Matmul.backward(dinp: s.dln, dweight: g(weight), dbias: gOpt(bias), dout: d, inp: a.ln1, weight: w(weight),
                                M: N, K: H, N: width, layout: .outIn, accumulateInput: j > 0)
            }
        }
        normBackward(dinp: s.dres, grads: grads, dout: s.dln, inp: s.residual[l], weight: b.norm1w, bias: b.norm1b,
                     mean: a.mean1, rstd: a.rstd1, N: N)
    }

    /// dinp += the norm's input gradient; its weight (and bias) gradients added into `grads`.
    func normBackward(dinp: UnsafeMutablePointer<Float>, grads: FlatBuffer, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                      weight: Int, bias: Int?, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, N: Int) {
        let g = grads.raw.assumingMemoryBound(to: Float.self)
        switch config.norm {
        case .rms:
            RMSNorm.backward(dinp: dinp, dweight: g + weight, dout: dout, inp: inp, weight: w(weight), rstd: rstd, N: N, C: config.hiddenSize)
        case .layer:
            LayerNorm.backward(dinp: dinp, dweight: g + weight, dbias: g + bias!, dout: dout, inp: inp, weight: w(weight),
                               mean: mean, rstd: rstd, N: N, C: config.hiddenSize)
        }
    }

    /// Evaluation: the same loss as `lossAndGradients` (sum over labelled tokens and their count) from the
    /// inference forward, without keeping activations or computing gradients.
    public func lossSum(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32],
                        workspace: ForwardWorkspace) throws -> (lossSum: Double, labelTokens: Int) {
        try validateBatch(tokens: tokens, positions: positions, spans: spans, targets: targets)
        let hidden = forward(tokens: tokens, positions: positions, spans: spans, workspace: workspace)
        return CrossEntropy.lmHeadLoss(dhidden: nil, dweight: nil, hidden: hidden, weight: w(lmHead), targets: targets,
                                       normalizer: 1, H: config.hiddenSize, V: config.vocabSize)
    }

    func validateTrainingInputs(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32],
                                normalizer: Float, grads: FlatBuffer, state: TrainingState) throws {
        try validateBatch(tokens: tokens, positions: positions, spans: spans, targets: targets)
        let N = tokens.count
        guard N <= state.maxTokens else { throw TrainingError.tooManyTokens(tokens: N, maxTokens: state.maxTokens) }
        guard state.config.hiddenSize == config.hiddenSize, state.config.numLayers == config.numLayers,
              state.config.intermediateSize == config.intermediateSize,
              state.config.attentionShape.qDim == config.attentionShape.qDim,
              state.config.attentionShape.kvDim == config.attentionShape.kvDim else {
            throw TrainingError.stateMismatch("made for a different model shape")
        }
        guard grads.dtype == .f32, grads.count == layout.totalCount else {
            throw TrainingError.gradientBufferMismatch(expected: layout.totalCount, found: grads.count, dtype: grads.dtype)
        }
        guard normalizer > 0, normalizer.isFinite else { throw TrainingError.badNormalizer(normalizer) }
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
        let maxPositions = positionEmbedding != nil ? config.maxPositions : Int(Int32.max)
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
