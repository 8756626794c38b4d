import Distributed
import Kernels
import Models
import Tensors

/// The optimizer an engine steps with; hyperparameters that do not change per step.
public enum OptimizerSettings: Sendable, Equatable {
    case adamw(beta1: Double, beta2: Double, eps: Double, weightDecay: Double)
    case sgd(momentum: Double, dampening: Double, weightDecay: Double, nesterov: Bool)

    var weightDecay: Double {
        switch self {
        case .adamw(_, _, _, let wd), .sgd(_, _, let wd, _): return wd
        }
    }
}

public enum EngineError: Error, CustomStringConvertible {
    case unsupported(String)
    case invalidOption(String)
    case nonFiniteLoss(step: Int, loss: Double)

    public var description: String {
        switch self {
        case .unsupported(let what): return "engine: \(what) is not supported yet"
        case .invalidOption(let what): return what
        case .nonFiniteLoss(let step, let loss):
            return "step \(step): the loss is \(loss); stopping (with f32 there is no loss scaler to skip the step)"
        }
    }
}

/// What one optimizer step did.
public struct OptimizerStepResult: Sendable, Equatable {
    /// Global L2 norm of the gradients before clipping (nil when clipping is off and the norm was not needed).
    public var gradNorm: Double?
    /// True when the step was skipped (a non-finite gradient under a loss scaler).
    public var skipped: Bool
}

/// DeepSpeed's engine: owns the gradients and optimizer state of a model's flat parameter buffer, runs
/// micro-batches (forward, loss, backward, accumulating gradients) and the optimizer step (clip, then
/// AdamW or SGD per parameter group), on one rank of a data-parallel job (`communicator`).
///
/// `options.zeroStage` selects what each rank holds (see ZeROEngine.swift for the collectives):
/// - 0, data parallel: everything; gradients all-reduced before the step, every rank steps everything.
/// - 1: full parameters and gradients; optimizer state only for the rank's shards (`ShardLayout`).
/// - 2: full parameters; gradients reduce-scattered group by group during backward into `gradShards`,
///   the full-size `grads` pages released after each group.
/// - 3: parameters as shards too (`paramShards`); each group gathered into `model.params` before its
///   forward and backward and released after, the next block group's gather started early (`prefetch`).
/// The loss normalizer passed to `microStep` must be the label count of the whole optimizer step across
/// ranks, so summed gradients are the full-batch gradient.
public final class TrainingEngine {
    public let model: TransformerModel
    public let options: EngineOptions
    public let optimizer: OptimizerSettings
    public let groups: ParameterGroups
    public let communicator: Communicator
    public let shards: ShardLayout
    /// Full-size gradients, where backward adds. Resident for stages 0 and 1; for stages 2 and 3 each
    /// group's pages are released once reduce-scattered.
    public let grads: FlatBuffer
    /// Stages 2 and 3: this rank's reduced gradient shards (compact, `shards.localCount`).
    public let gradShards: FlatBuffer?
    /// Stage 3: this rank's parameter shards, the fp32 master weights (compact).
    public let paramShards: FlatBuffer?
    /// AdamW m and v, or SGD's momentum buffer in `firstMoment`: full-size for stage 0, compact shards
    /// for stages 1-3.
    public let firstMoment: FlatBuffer
    public let secondMoment: FlatBuffer?
    /// Optimizer steps taken so far (PyTorch's `state["step"]`).
    public internal(set) var stepsTaken = 0
    var state: TrainingState
    private let evalWorkspace = ForwardWorkspace()
    /// What this rank steps: each piece of a parameter group it owns, with its offset in the state buffers.
    let stepRanges: [StepRange]
    let collectives: ShardCollectives
    /// Stage 3: while block group l is used, gather the block group used next (l+1 in forward, l-1 in
    /// backward) so its communication overlaps l's compute. Off, every group is gathered when used.
    /// Results are bit-identical either way. Every rank must use the same setting (it decides the
    /// order of collectives); change it only between micro-steps.
    public var prefetch = true
    /// Stage 3: receives a prefetched block group's padded shards from every rank (worldSize × the
    /// largest block group's shard size); nil for other stages or models with fewer than two blocks.
    let prefetchScratch: FlatBuffer?
    /// The one prefetch in flight: which group, and the collective to wait for.
    var inFlight: (group: Int, pending: PendingCollective)?
    /// Mixed precision (see MixedPrecision.swift): the half format of compute weights, activations and
    /// gradient traffic; nil for f32.
    public let computeFormat: HalfFormat?
    /// Mixed precision, stages 0-2: f32 master weights (full for stage 0, this rank's shards for 1-2).
    let master: FlatBuffer?
    /// Mixed precision, stages 1-2: the half compute weights, full size.
    let computeWeights: FlatBuffer?
    /// Mixed precision, stages 0-1: gradients accumulated in half, full size.
    let halfGrads: FlatBuffer?
    /// Mixed precision: f32 gradients of one chunk while the step reads `halfGrads`.
    let stepScratch: FlatBuffer?
    /// fp16's loss scaler (nil for f32 and bf16, which need none). Checkpointed with the engine state.
    public var lossScaler: LossScaler?
    /// NVMe offload: where optimizer state (and mixed precision's master weights, and ZeRO-3's weight
    /// shards with `offload_param`) live; nil when everything is in memory. See OptimizerOffload.swift.
    public let offloadStore: OffloadStore?

    public init(model: TransformerModel, options: EngineOptions, optimizer: OptimizerSettings,
                frozen: Set<String> = [], maxTokens: Int, communicator: Communicator = ThreadCommunicator.group(worldSize: 1)[0]) throws {
        try options.validate()
        let offloadParam = options.offloadParam.device == .nvme
        self.model = model
        self.options = options
        self.optimizer = optimizer
        self.communicator = communicator
        let policy = model.config.modelType == "gpt2" ? DecayPolicy.gpt2(layers: model.config.numLayers) : DecayPolicy()
        groups = ParameterGroups(layout: model.layout, weightDecay: optimizer.weightDecay, policy: policy, frozen: frozen)
        shards = ShardLayout(layout: model.layout, worldSize: communicator.worldSize, rank: communicator.rank)
        collectives = ShardCollectives(shards: shards, communicator: communicator)
        let stage = options.zeroStage
        stepRanges = Self.stepRanges(groups: groups, shards: shards, partitioned: stage > 0, total: model.layout.totalCount)
        let n = model.layout.totalCount
        let stateCount = stage == 0 ? n : shards.localCount
        let format = HalfFormat(options.precision)
        computeFormat = format
        grads = FlatBuffer(dtype: .f32, count: n)
        gradShards = stage >= 2 ? FlatBuffer(dtype: .f32, count: shards.localCount) : nil
        paramShards = stage == 3 ? FlatBuffer(dtype: .f32, count: shards.localCount) : nil
        master = format != nil && stage < 3 ? FlatBuffer(dtype: .f32, count: stateCount) : nil
        let offloading = options.offloadOptimizer.device == .nvme || offloadParam
        // Mixed stage 0 rounds master per use, unless master is on disk: then a 16-bit copy is kept.
        computeWeights = format.map { f in stage == 1 || stage == 2 || (stage == 0 && offloading) ? FlatBuffer(dtype: f.dtype, count: n) : nil } ?? nil
        halfGrads = format.map { f in stage <= 1 ? FlatBuffer(dtype: f.dtype, count: n) : nil } ?? nil
        if offloading {
            let names = Self.offloadNames(optimizer: optimizer, mixed: format != nil, stage: stage, offloadParam: offloadParam)
            let root = options.offloadOptimizer.path ?? options.offloadParam.path!
            let bufferBytes = options.offloadOptimizer.device == .nvme ? options.offloadOptimizer.bufferSize : options.offloadParam.bufferSize
            // The bounded buffer: 3 slots (computing, reading ahead, writing behind) per array.
            let chunk = Swift.max(4096, bufferBytes / (4 * 3 * names.count))
            offloadStore = try OffloadStore(directory: root + "/rank\(communicator.rank)",
                                            names: names, count: stateCount, chunkElements: chunk)
        } else {
            offloadStore = nil
        }
        let scratchCount = Swift.max(Self.mixedStepChunk, offloadStore?.chunkElements ?? 0)
        stepScratch = format != nil && stage <= 1 ? FlatBuffer(dtype: .f32, count: scratchCount) : nil
        lossScaler = options.precision == .fp16 ? LossScaler(options: options.lossScaler) : nil
        firstMoment = FlatBuffer(dtype: .f32, count: stateCount)
        if case .adamw = optimizer { secondMoment = FlatBuffer(dtype: .f32, count: stateCount) } else { secondMoment = nil }
        let blocks = model.config.numLayers
        let largestBlockShard = blocks >= 2 ? shards.groups[1...blocks].map(\.shardSize).max()! : 0
        // Mixed precision gathers 16-bit shards with blocking collectives (no prefetch).
        prefetchScratch = stage == 3 && largestBlockShard > 0 && format == nil && !offloadParam
            ? FlatBuffer(dtype: .f32, count: shards.worldSize * largestBlockShard) : nil
        state = TrainingState(config: model.config, maxTokens: maxTokens, checkpointActivations: options.activationCheckpointing,
                              activationDType: format?.dtype ?? .f32)
        try startPartitioning()
    }

    /// Bytes of model state this rank holds between steps: parameters, gradients, optimizer state (what
    /// DeepSpeed's memory estimators count; compare `MemoryEstimate.modelStateBytes`). Transient memory
    /// is not included: stage 2/3's not-yet-reduced gradient groups during backward, stage 3's gathered
    /// groups, and the collectives' and prefetch's scratch.
    public var modelStateBytes: Int {
        let params = isMixed ? (paramShards ?? master)!.byteCount + (computeWeights?.byteCount ?? 0)
                             : paramShards?.byteCount ?? model.params.byteCount
        let gradients = gradShards?.byteCount ?? halfGrads?.byteCount ?? grads.byteCount
        let offloaded = offloadedArrays.reduce(0) { $0 + $1.buffer.byteCount }
        return params + gradients + firstMoment.byteCount + (secondMoment?.byteCount ?? 0) - offloaded
    }

    /// Bytes of f32 master weights (mixed precision) and optimizer moments this rank holds: what
    /// optimizer offload moves out of memory.
    public var optimizerStateBytes: Int {
        (master?.byteCount ?? 0) + firstMoment.byteCount + (secondMoment?.byteCount ?? 0)
    }

    public func zeroGradients() {
        if let gradShards { gradShards.zero() } else if let halfGrads { halfGrads.zero() } else { grads.zero() }
    }

    /// The fp16 loss scale the next micro-steps multiply the loss by (1 without a loss scaler).
    public var lossScale: Double { lossScaler?.scale ?? 1 }

    /// Forward, loss and backward of one micro-batch; gradients accumulate. `normalizer` is the label-token
    /// count of the whole optimizer step (all micro-batches of all ranks). Returns the summed token loss
    /// and label count of this rank's micro-batch. With ZeRO-2/3 this is collective (every rank calls it
    /// the same number of times per step).
    @discardableResult
    public func microStep(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32],
                          normalizer: Float) throws -> (lossSum: Double, labelTokens: Int) {
        guard !tokens.isEmpty || options.zeroStage >= 2 else { return (0, 0) }
        if tokens.count > state.maxTokens {
            state = TrainingState(config: model.config, maxTokens: tokens.count, checkpointActivations: options.activationCheckpointing,
                                  activationDType: computeFormat?.dtype ?? .f32)
        }
        if options.zeroStage >= 2 || isMixed { state.hooks = self }
        if tokens.isEmpty { return try emptyMicroStep() }
        // fp16: gradients of (scale · loss), so small gradients survive the 16-bit rounding.
        return try model.lossAndGradients(tokens: tokens, positions: positions, spans: spans, targets: targets,
                                          normalizer: normalizer / Float(lossScale), grads: grads, state: state)
    }

    /// Clips (when `maxGradNorm` > 0) and applies one optimizer step at learning rate `lr`. Collective:
    /// every rank calls it; a failing collective aborts the job (the design's rule).
    public func step(lr: Double, maxGradNorm: Double?) -> OptimizerStepResult {
        do {
            return try distributedStep(lr: lr, maxGradNorm: maxGradNorm)
        } catch {
            communicator.abort(message: "optimizer step: \(error)", code: 1)
        }
    }

    /// Summed token loss and label count of a batch without gradients (evaluation). With ZeRO-3 this
    /// gathers every group first and is collective.
    public func evaluate(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32]) throws -> (lossSum: Double, labelTokens: Int) {
        if isMixed {
            for g in shards.groups { try materializeComputeWeights(group: g.group); releaseParamShard(group: g.group) }
        } else if options.zeroStage == 3 {
            try gatherFullParameters()
        }
        defer { if options.zeroStage == 3 || isMixed { releaseFullParameters() } }
        // A rank with nothing to evaluate still joined the gather above.
        guard !tokens.isEmpty else { return (0, 0) }
        return try model.lossSum(tokens: tokens, positions: positions, spans: spans, targets: targets, workspace: evalWorkspace)
    }
}
