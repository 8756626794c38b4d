import Kernels
import Tensors

/// Scratch for an inference forward pass, reused across layers and calls; grows to the largest N seen.
/// One set of block activations serves every layer (nothing is kept for a backward).
public final class ForwardWorkspace {
    private var capacityTokens = 0
    private var storage: [FlatBuffer] = []
    private(set) var residual: UnsafeMutablePointer<Float>!   // [N, H]  the residual stream, updated in place
    private(set) var normed: UnsafeMutablePointer<Float>!     // [N, H]  after the final norm
    private(set) var finalStats: NormStatistics!
    private(set) var activations: BlockActivations!
    private(set) var scratch: BlockScratch!

    public init() {}

    func reserve(tokens n: Int, config c: TransformerConfig) {
        guard n > capacityTokens else { return }
        let (head, v) = carve([c.hiddenSize * n, c.hiddenSize * n, n, n])
        let (blockBuffer, a) = BlockActivations.carve(c.architecture.activationSlots(c), tokens: n, keepProbs: false)
        (residual, normed) = (v[0], v[1])
        finalStats = NormStatistics(mean: v[2], rstd: v[3])
        activations = a
        scratch = BlockScratch(c, tokens: n)
        storage = [head, blockBuffer]
        capacityTokens = n
    }
}

/// Keys and values of every layer for incremental decoding of one sequence: [layers][maxTokens, kvDim].
public final class KVCache {
    public let maxTokens: Int
    public private(set) var length = 0
    private let kvDim: Int
    private let layerStride: Int
    private let keyStore: FlatBuffer
    private let valueStore: FlatBuffer

    public init(config: TransformerConfig, maxTokens: Int) {
        self.maxTokens = maxTokens
        kvDim = config.attentionShape.kvDim
        layerStride = maxTokens * kvDim
        keyStore = FlatBuffer(dtype: .f32, count: config.numLayers * layerStride, zeroed: false)
        valueStore = FlatBuffer(dtype: .f32, count: config.numLayers * layerStride, zeroed: false)
    }

    public var remaining: Int { maxTokens - length }

    func keys(layer: Int) -> UnsafeMutablePointer<Float> { keyStore.raw.assumingMemoryBound(to: Float.self) + layer * layerStride }
    func values(layer: Int) -> UnsafeMutablePointer<Float> { valueStore.raw.assumingMemoryBound(to: Float.self) + layer * layerStride }
    func advance(by n: Int) { length += n }
    public func reset() { length = 0 }
}
