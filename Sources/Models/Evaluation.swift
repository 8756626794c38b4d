import Kernels
import Tensors

extension TransformerModel {
    /// Summed next-token loss and label count of a batch, without gradients: the inference forward pass
    /// and the chunked LM-head cross-entropy (so [N, V] logits never exist). `targets` are shifted as for
    /// `lossAndGradients` (-100 = no loss).
    public func loss(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32],
                     workspace: ForwardWorkspace = ForwardWorkspace()) -> (lossSum: Double, labelTokens: Int) {
        guard !tokens.isEmpty else { return (0, 0) }
        let hidden = forward(tokens: tokens, positions: positions, spans: spans, workspace: workspace)
        return CrossEntropy.lmHeadLoss(dhidden: nil, dweight: nil, hidden: hidden, weight: w(lmHead), targets: targets,
                                       normalizer: 1, H: config.hiddenSize, V: config.vocabSize)
    }
}
