import Kernels
import Tensors

/// Called by the block schedule around the use of each parameter layer group (the layout's groups:
/// 0 embeddings, 1...L blocks, L+1 final norm and untied LM head). ZeRO-3 gathers a group's weights in
/// `willUse` and releases them in `didUse`; ZeRO-2 reduce-scatters a group's gradients in
/// `gradientsReady`. Order of one micro-batch (BlockSchedule.swift): forward 0, 1...L; the head phase
/// (L+1, plus 0 when the LM head is tied to the embedding), which runs the loss and the head's backward;
/// then backward L...1, each followed by `gradientsReady`; `gradientsReady(L+1)` right after the head
/// phase and `gradientsReady(0)` last. Calls happen on the thread running the schedule.
public protocol TrainingHooks: AnyObject {
    /// The weights of `group` are about to be read (`backward` false in forward and the head phase).
    func willUse(group: Int, backward: Bool) throws
    /// The weights of `group` are not needed until the next `willUse` of it.
    func didUse(group: Int, backward: Bool) throws
    /// The gradients of `group` for this micro-batch are complete.
    func gradientsReady(group: Int) throws
}

/// Where the inference forward gets layer groups whose weights are not always in `params`: local
/// (no collectives), so any caller may generate or evaluate at any time.
public protocol WeightResidency: AnyObject {
    func willUse(group: Int)
    func didUse(group: Int)
}

/// Activations and scratch for the block schedule over up to `maxTokens` tokens. Reuse one across steps:
/// it allocates once.
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
    /// Told when each schedule piece computes (wall-clock breakdown, FLOPs profiler); nil: no timing.
    public weak var timer: ScheduleTimer?
    let config: TransformerConfig
    private let storage: [FlatBuffer]
    /// Block inputs: residual[l] is block l's input [N, H]; residual[L] the final residual.
    let residual: [UnsafeMutablePointer<Float>]
    /// One per block, or a single shared one when checkpointing or stashing.
    let layers: [BlockActivations]
    /// Mixed precision without checkpointing: each block's saved activations in half precision.
    let stashes: [ActivationStash]
    let slots: [ActivationSlot]
    // The final norm: lnF [N, H] (input of the LM head), its statistics [N].
    let lnF: UnsafeMutablePointer<Float>
    let finalStats: NormStatistics
    let scratch: BlockScratch
    /// Logits of one chunk of the fused LM-head loss and its row copies.
    let lossScratch = GrowingBuffer()

    public init(config c: TransformerConfig, maxTokens n: Int, checkpointActivations: Bool = false,
                activationDType: DType = .f32) {
        precondition([.f32, .bf16, .f16].contains(activationDType), "activations are f32, bf16 or f16")
        maxTokens = n
        self.checkpointActivations = checkpointActivations
        self.activationDType = activationDType
        config = c
        let slots = c.architecture.activationSlots(c)
        self.slots = slots
        let stashing = activationDType != .f32 && !checkpointActivations
        let H = c.hiddenSize, L = c.numLayers
        var buffers: [FlatBuffer] = []
        let (resBuffer, res) = carve(Array(repeating: H * n, count: L + 1))
        buffers.append(resBuffer)
        residual = res
        var layers: [BlockActivations] = []
        for _ in 0..<(checkpointActivations || stashing ? 1 : L) {
            let (b, a) = BlockActivations.carve(slots, tokens: n, keepProbs: true)
            buffers.append(b)
            layers.append(a)
        }
        self.layers = layers
        stashes = stashing ? (0..<L).map { _ in ActivationStash(dtype: activationDType, slots: slots, maxTokens: n) } : []
        let (head, v) = carve([H * n, n, n])
        buffers.append(head)
        lnF = v[0]
        finalStats = NormStatistics(mean: v[1], rstd: v[2])
        scratch = BlockScratch(c, tokens: n)
        storage = buffers
    }

    func activations(layer l: Int) -> BlockActivations { layers.count == 1 ? layers[0] : layers[l] }

    /// Block l's input [N, H] (l = L: the final residual). A pipeline stage writes the activations it
    /// receives here before running its blocks.
    public func blockInput(_ l: Int) -> UnsafeMutablePointer<Float> { residual[l] }

    /// The gradient of the residual stream [N, H]: after the head phase and each block's backward it is
    /// the gradient of that block's input. A pipeline stage writes the gradient it receives here.
    public var residualGradient: UnsafeMutablePointer<Float> { scratch.dres }

    /// Mixed precision: after block l's forward, its activations into the half stash.
    func saveActivations(layer l: Int, tokens: Int, probsCount: Int) {
        guard !stashes.isEmpty else { return }
        stashes[l].save(layers[0], slots: slots, tokens: tokens, probsCount: probsCount)
    }

    /// Mixed precision: before block l's backward, its stashed activations into the working set.
    func restoreActivations(layer l: Int, tokens: Int, probsCount: Int) {
        guard !stashes.isEmpty else { return }
        stashes[l].restore(into: layers[0], slots: slots, tokens: tokens, probsCount: probsCount)
    }
}
