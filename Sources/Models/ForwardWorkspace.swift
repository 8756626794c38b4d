import Kernels
import Tensors

/// Scratch for an inference forward pass, reused across layers and calls; grows to the largest N seen.
public final class ForwardWorkspace {
    private var capacityTokens = 0
    private var storage: FlatBuffer?
    private var pointers: [UnsafeMutablePointer<Float>] = []

    // Views into the one allocation, in the order `reserve` lays them out.
    public var residual: UnsafeMutablePointer<Float> { pointers[0] }  // [N, H]
    public var normed: UnsafeMutablePointer<Float> { pointers[1] }    // [N, H]
    public var q: UnsafeMutablePointer<Float> { pointers[2] }         // [N, heads·hd]
    public var k: UnsafeMutablePointer<Float> { pointers[3] }         // [N, kvHeads·hd]
    public var v: UnsafeMutablePointer<Float> { pointers[4] }         // [N, kvHeads·hd]
    public var att: UnsafeMutablePointer<Float> { pointers[5] }       // [N, heads·hd]
    public var proj: UnsafeMutablePointer<Float> { pointers[6] }      // [N, H]
    public var gate: UnsafeMutablePointer<Float> { pointers[7] }      // [N, I]
    public var up: UnsafeMutablePointer<Float> { pointers[8] }        // [N, I]
    public var act: UnsafeMutablePointer<Float> { pointers[9] }       // [N, I]

    public init() {}

    func reserve(tokens n: Int, config c: TransformerConfig) {
        guard n > capacityTokens else { return }
        let s = c.attentionShape
        let sizes = [c.hiddenSize, c.hiddenSize, s.qDim, s.kvDim, s.kvDim, s.qDim, c.hiddenSize,
                     c.intermediateSize, c.intermediateSize, c.intermediateSize].map { $0 * n }
        let buffer = FlatBuffer(dtype: .f32, count: sizes.reduce(0, +), zeroed: false)
        var p = buffer.raw.assumingMemoryBound(to: Float.self)
        pointers = []
        for s in sizes { pointers.append(p); p += s }
        storage = buffer
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
