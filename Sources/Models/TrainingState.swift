import Kernels
import Tensors

/// What one block's backward needs from its forward (llm.c style), over N tokens. Views into one
/// allocation, except the attention probabilities, whose size depends on the spans.
struct LayerActivations {
    var ln1: UnsafeMutablePointer<Float>    // [N, H]      norm1 output (input of q/k/v)
    var mean1: UnsafeMutablePointer<Float>  // [N]         LayerNorm mean (unused by RMSNorm)
    var rstd1: UnsafeMutablePointer<Float>  // [N]
    var q: UnsafeMutablePointer<Float>      // [N, qDim]   after RoPE
    var k: UnsafeMutablePointer<Float>      // [N, kvDim]  after RoPE
    var v: UnsafeMutablePointer<Float>      // [N, kvDim]
    var att: UnsafeMutablePointer<Float>    // [N, qDim]   attention output (input of o_proj / c_proj)
    var mid: UnsafeMutablePointer<Float>    // [N, H]      residual after attention (input of norm2)
    var ln2: UnsafeMutablePointer<Float>    // [N, H]      norm2 output (input of the MLP)
    var mean2: UnsafeMutablePointer<Float>  // [N]
    var rstd2: UnsafeMutablePointer<Float>  // [N]
    var gate: UnsafeMutablePointer<Float>   // [N, I]      gate_proj output, or c_fc output for GPT-2
    var up: UnsafeMutablePointer<Float>     // [N, I]      up_proj output (Llama family only)
    var act: UnsafeMutablePointer<Float>    // [N, I]      MLP activation (input of down_proj / c_proj)
    let probs: GrowingBuffer                // [heads · Σ_spans qLen·kLen] softmax probabilities
    /// The views above in `sizes` order.
    let pieces: [UnsafeMutablePointer<Float>]

    static func sizes(_ c: TransformerConfig, tokens n: Int) -> [Int] {
        let s = c.attentionShape, H = c.hiddenSize, I = c.intermediateSize
        return [H, 1, 1, s.qDim, s.kvDim, s.kvDim, s.qDim, H, H, 1, 1, I, I, I].map { $0 * n }
    }

    init(_ p: [UnsafeMutablePointer<Float>]) {
        (ln1, mean1, rstd1, q, k, v, att) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6])
        (mid, ln2, mean2, rstd2, gate, up, act) = (p[7], p[8], p[9], p[10], p[11], p[12], p[13])
        pieces = p
        probs = GrowingBuffer()
    }
}

/// An f32 buffer that grows to the largest size asked for (attention probabilities depend on the spans).
final class GrowingBuffer {
    private var storage = FlatBuffer(dtype: .f32, count: 0)
    func pointer(count: Int) -> UnsafeMutablePointer<Float> {
        if storage.count < count { storage = FlatBuffer(dtype: .f32, count: count, zeroed: false) }
        return storage.raw.assumingMemoryBound(to: Float.self)
    }
}

/// Carves consecutive f32 views of the given sizes out of one allocation.
func carve(_ sizes: [Int]) -> (FlatBuffer, [UnsafeMutablePointer<Float>]) {
    let buffer = FlatBuffer(dtype: .f32, count: sizes.reduce(0, +), zeroed: false)
    var p = buffer.raw.assumingMemoryBound(to: Float.self)
    var views: [UnsafeMutablePointer<Float>] = []
    for s in sizes { views.append(p); p += s }
    return (buffer, views)
}

/// Called by `lossAndGradients` around the use of each parameter layer group (the layout's groups:
/// 0 embeddings, 1...L blocks, L+1 final norm and untied LM head). ZeRO-3 gathers a group's weights in
/// `willUse` and releases them in `didUse`; ZeRO-2 reduce-scatters a group's gradients in
/// `gradientsReady`. Order of one micro-batch: forward 0, 1...L; the head phase (L+1, plus 0 when the LM
/// head is tied to the embedding), which runs the loss and the head's backward; then backward L...1, each
/// followed by `gradientsReady`; `gradientsReady(L+1)` right after the head phase and `gradientsReady(0)`
/// last. Calls happen on the thread running `lossAndGradients`.
public protocol TrainingHooks: AnyObject {
    /// The weights of `group` are about to be read (`backward` false in forward and the head phase).
    func willUse(group: Int, backward: Bool) throws
    /// The weights of `group` are not needed until the next `willUse` of it.
    func didUse(group: Int, backward: Bool) throws
    /// The gradients of `group` for this micro-batch are complete.
    func gradientsReady(group: Int) throws
}

/// Activations and scratch for `TransformerModel.lossAndGradients` over up to `maxTokens` tokens.
/// Reuse one across steps: it allocates once.
///
/// With `checkpointActivations`, only each block's input (the residual stream) is kept for all layers;
/// one set of block activations is shared, and backward re-runs each block's forward before its
/// backward (one extra forward per step, activation memory of one block instead of all). Gradients are
/// bit-identical either way: the recomputation is the same arithmetic on the same inputs.
///
/// With a half `activationDType` (mixed precision) and no checkpointing, each block's activations are
/// saved in that dtype after its forward and restored into one shared f32 working set before its
/// backward (`ActivationStash`); block inputs stay f32. With checkpointing nothing but block inputs is
/// kept, so the dtype changes nothing.
public final class TrainingState {
    public let maxTokens: Int
    public let checkpointActivations: Bool
    public let activationDType: DType
    /// Per-group callbacks (ZeRO); weak because the engine that owns this state is usually the hooks.
    public weak var hooks: TrainingHooks?
    let config: TransformerConfig
    private let storage: [FlatBuffer]
    /// Block inputs: residual[l] is block l's input [N, H]; residual[L] the final residual.
    let residual: [UnsafeMutablePointer<Float>]
    /// One per block, or a single shared one when checkpointing or stashing.
    let layers: [LayerActivations]
    /// Mixed precision without checkpointing: each block's saved activations in half precision.
    let stashes: [ActivationStash]
    /// Per-token widths of the `LayerActivations` pieces.
    let pieceWidths: [Int]
    // The final norm: lnF [N, H] (input of the LM head), meanF, rstdF [N].
    let lnF, meanF, rstdF: UnsafeMutablePointer<Float>
    // Gradient scratch, reused by every block.
    let dres: UnsafeMutablePointer<Float>   // [N, H]    gradient of the residual stream
    let dln: UnsafeMutablePointer<Float>    // [N, H]    gradient of a norm output
    let proj: UnsafeMutablePointer<Float>   // [N, H]    forward: o_proj / MLP output before the residual add
    let datt: UnsafeMutablePointer<Float>   // [N, qDim]
    let dq: UnsafeMutablePointer<Float>     // [N, qDim]
    let dk: UnsafeMutablePointer<Float>     // [N, kvDim]
    let dv: UnsafeMutablePointer<Float>     // [N, kvDim]
    let dact: UnsafeMutablePointer<Float>   // [N, I]
    let dgate: UnsafeMutablePointer<Float>  // [N, I]
    let dup: UnsafeMutablePointer<Float>    // [N, I]

    public init(config c: TransformerConfig, maxTokens n: Int, checkpointActivations: Bool = false,
                activationDType: DType = .f32) {
        precondition([.f32, .bf16, .f16].contains(activationDType), "activations are f32, bf16 or f16")
        maxTokens = n
        self.checkpointActivations = checkpointActivations
        self.activationDType = activationDType
        config = c
        pieceWidths = LayerActivations.sizes(c, tokens: 1)
        let stashing = activationDType != .f32 && !checkpointActivations
        let s = c.attentionShape, H = c.hiddenSize, I = c.intermediateSize, L = c.numLayers
        var buffers: [FlatBuffer] = []
        let (resBuffer, res) = carve(Array(repeating: H * n, count: L + 1))
        buffers.append(resBuffer)
        residual = res
        var layers: [LayerActivations] = []
        for _ in 0..<(checkpointActivations || stashing ? 1 : L) {
            let (b, views) = carve(LayerActivations.sizes(c, tokens: n))
            buffers.append(b)
            layers.append(LayerActivations(views))
        }
        self.layers = layers
        stashes = stashing ? (0..<L).map { _ in ActivationStash(dtype: activationDType, widths: LayerActivations.sizes(c, tokens: 1), maxTokens: n) } : []
        let (scratch, v) = carve([H, 1, 1, H, H, H, s.qDim, s.qDim, s.kvDim, s.kvDim, I, I, I].map { $0 * n })
        buffers.append(scratch)
        (lnF, meanF, rstdF, dres, dln, proj, datt) = (v[0], v[1], v[2], v[3], v[4], v[5], v[6])
        (dq, dk, dv, dact, dgate, dup) = (v[7], v[8], v[9], v[10], v[11], v[12])
        storage = buffers
    }

    /// Logits of one chunk of the fused LM-head loss and its row copies.
    let lossScratch = GrowingBuffer()

    func activations(layer l: Int) -> LayerActivations { layers.count == 1 ? layers[0] : layers[l] }

    /// Mixed precision: after block l's forward, its activations into the half stash.
    func saveActivations(layer l: Int, tokens: Int, probsCount: Int) {
        guard !stashes.isEmpty else { return }
        stashes[l].save(layers[0], widths: pieceWidths, tokens: tokens, probsCount: probsCount)
    }

    /// Mixed precision: before block l's backward, its stashed activations into the working set.
    func restoreActivations(layer l: Int, tokens: Int, probsCount: Int) {
        guard !stashes.isEmpty else { return }
        stashes[l].restore(into: layers[0], widths: pieceWidths, tokens: tokens, probsCount: probsCount)
    }
}
