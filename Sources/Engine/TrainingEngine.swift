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
    /// An optimizer step failed on `rank` (a collective, the offload store, the fp16 loss scaler at its
    /// minimum): the step may be partly applied, and other ranks may be waiting in its collectives, so
    /// the job cannot continue from here; the Trainer stops it (`Communicator.abort`).
    case stepFailed(rank: Int, underlying: Error)

    public var description: String {
        switch self {
        case .unsupported(let what): return "engine: \(what) is not supported yet"
        case .invalidOption(let what): return what
        case .nonFiniteLoss(let step, let loss):
            return "step \(step): the loss is \(loss); stopping (with f32 there is no loss scaler to skip the step)"
        case .stepFailed(let rank, let underlying): return "rank \(rank): optimizer step: \(underlying)"
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
/// - 2: full parameters; gradients reduce-scattered group by group during backward into shards, the
///   full-size `grads` pages released after each group.
/// - 3: parameters as shards too; each group gathered into `model.params` before its forward and
///   backward and released after, the next block group's gather started early (`prefetch`).
/// Stage, precision and offload are resolved once, in `init`, into `parameters` (ParameterStorage.swift),
/// `gradients` (GradientStorage.swift) and `offload` (OptimizerOffload.swift); the hooks, the step and
/// checkpoints dispatch on those.
/// The loss normalizer passed to `microStep` must be the label count of the whole optimizer step across
/// ranks, so summed gradients are the full-batch gradient.
public final class TrainingEngine {
    public let model: TransformerModel
    /// What the engine trains, fixed at init: the model's own layout and buffer, or, when an adapter is
    /// attached, the adapter's (`TransformerModel.trainableLayout`). Every shard, gradient, moment and
    /// checkpoint is laid out like this.
    public let trainableLayout: ParameterLayout
    public let trainableParams: FlatBuffer
    /// The frozen base under an adapter: f32 in `model.params`, or a 16-bit copy widened per group
    /// (FrozenBaseStorage.swift). `.none` for full fine-tuning.
    let frozenBase: FrozenBaseStorage
    public let options: EngineOptions
    public let optimizer: OptimizerSettings
    public let groups: ParameterGroups
    public let communicator: Communicator
    public let shards: ShardLayout
    /// Full-size f32 gradients, where backward adds. What stays of them between groups and micro-steps
    /// is `gradients`' choice.
    public let grads: FlatBuffer
    /// AdamW m and v, or SGD's momentum buffer in `firstMoment`: full-size for stage 0, compact shards
    /// for stages 1-3.
    public let firstMoment: FlatBuffer
    public let secondMoment: FlatBuffer?
    /// The moments by checkpoint and offload name (`exp_avg`, and `exp_avg_sq` for AdamW).
    let moments: [(name: String, buffer: FlatBuffer)]
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
    /// The one prefetch in flight: which group, and the collective to wait for.
    var inFlight: (group: Int, pending: PendingCollective)?
    /// Mixed precision (see MixedPrecision.swift): the half format of compute weights, activations and
    /// gradient traffic; nil for f32.
    public let computeFormat: HalfFormat?
    /// Where the master and compute weights live (ParameterStorage.swift).
    let parameters: ParameterStorage
    /// Where gradients accumulate and where the step reads them (GradientStorage.swift).
    let gradients: GradientStorage
    /// Which optimizer-side arrays live in the NVMe offload store (OptimizerOffload.swift).
    let offload: OffloadTier
    /// fp16's loss scaler (nil for f32 and bf16, which need none). Checkpointed with the engine state.
    public internal(set) var lossScaler: LossScaler?
    /// Told when each schedule piece computes (the Trainer's wall-clock breakdown and FLOPs profiler).
    public weak var scheduleTimer: ScheduleTimer?
    /// This rank's pipeline stage (nil without pipeline parallelism): the engine then holds, steps and
    /// writes only the stage's layer groups, and `communicator` is the stage's data-parallel group
    /// (PipelineEngine.swift).
    public let pipeline: PipelinePlacement?
    /// The ZeRO stage the engine partitions by: the recipe's, except that a pipeline stage always keeps
    /// compact (stage-1) optimizer state, which for its own groups is what stage 0 computes.
    let partitionStage: Int
    /// A pipeline stage's training states, one per micro-batch in flight, kept across steps.
    var pipelineStates: [TrainingState] = []
    /// Where this stage's last pipeline step spent its time (compute, or waiting for neighbours).
    public internal(set) var lastPipelineTiming = PipelineTiming()
    /// A tied pipeline's end stages: the tied embedding's elements the first stage's step wrote.
    var tiedRows = TiedEmbeddingRows.none

    public init(model: TransformerModel, options: EngineOptions, optimizer: OptimizerSettings,
                frozen: Set<String> = [], frozenBaseDType: DType = .f32, frozenBaseFill: ((Range<Int>) throws -> Void)? = nil,
                maxTokens: Int, communicator: Communicator = ThreadCommunicator.group(worldSize: 1)[0],
                pipeline: PipelinePlacement? = nil) throws {
        try options.validate()
        if let pipeline {
            guard model.adapter == nil else { throw PipelineError.unsupported("pipeline parallelism with a LoRA adapter is not supported in this build") }
            guard pipeline.pipeline.worldSize > 1 else { throw PipelineError.unsupported("a placement of one stage") }
        }
        self.pipeline = pipeline
        let offloadParam = options.offloadParam.device == .nvme
        self.model = model
        trainableLayout = model.trainableLayout
        trainableParams = model.trainableParams
        self.options = options
        self.optimizer = optimizer
        self.communicator = communicator
        let policy = DecayPolicy(for: model.config)
        groups = ParameterGroups(layout: trainableLayout, weightDecay: optimizer.weightDecay, policy: policy, frozen: frozen)
        shards = ShardLayout(layout: trainableLayout, worldSize: communicator.worldSize, rank: communicator.rank,
                             ownedGroups: pipeline?.ownedGroups)
        collectives = ShardCollectives(shards: shards, communicator: communicator)
        let stage = pipeline == nil ? options.zeroStage : Swift.max(1, options.zeroStage)
        partitionStage = stage
        stepRanges = Self.stepRanges(groups: groups, shards: shards, partitioned: stage > 0, total: trainableLayout.totalCount)
        let n = trainableLayout.totalCount
        let stateCount = stage == 0 ? n : shards.localCount
        let format = HalfFormat(options.precision)
        computeFormat = format
        grads = FlatBuffer(dtype: .f32, count: n)
        firstMoment = FlatBuffer(dtype: .f32, count: stateCount)
        switch optimizer {
        case .adamw:
            let v = FlatBuffer(dtype: .f32, count: stateCount)
            secondMoment = v
            moments = [("exp_avg", firstMoment), ("exp_avg_sq", v)]
        case .sgd:
            secondMoment = nil
            moments = [("exp_avg", firstMoment)]
        }
        // The storage choice, made once: everything after dispatches on `parameters`, `gradients` and `offload`.
        let offloading = options.offloadOptimizer.device == .nvme || offloadParam
        var store: OffloadStore?
        var weightsHome = Residence.memory
        if offloading {
            let weights = ParameterStorage.offloadedWeights(stage: stage, mixed: format != nil, offloadParam: offloadParam)
            let s = try Self.openOffloadStore(options: options, rank: communicator.rank,
                                              names: moments.map(\.name) + [weights].compactMap { $0 }, count: stateCount)
            if let weights { weightsHome = .offloaded(s, name: weights) }
            store = s
        }
        let blocks = model.config.numLayers
        let largestBlockShard = blocks >= 2 ? shards.groups[1...blocks].map(\.shardSize).max()! : 0
        parameters = ParameterStorage(model: trainableParams, stage: stage, format: format, shards: shards,
                                      weightsHome: weightsHome, prefetchCount: shards.worldSize * largestBlockShard)
        gradients = GradientStorage(stage: stage, format: format, grads: grads, localCount: shards.localCount,
                                    scratchCount: Swift.max(GradientStorage.halfChunk, store?.chunkElements ?? 0))
        if let store {
            var arrays = moments
            if case .offloaded(_, let name) = weightsHome { arrays.append((name, parameters.master.buffer)) }
            offload = .nvme(store, arrays: arrays)
        } else {
            offload = .inMemory
        }
        frozenBase = try FrozenBaseStorage(model: model, dtype: frozenBaseDType, fill: frozenBaseFill)
        model.inferenceResidency = frozenBase.residency(model: model)
        lossScaler = options.precision == .fp16 ? LossScaler(options: options.lossScaler) : nil
        state = TrainingState(config: model.config, maxTokens: maxTokens, checkpointActivations: options.activationCheckpointing,
                              activationDType: options.precision.computeDType)
        try startPartitioning()
        releaseForeignParameters()
    }

    /// Bytes of model state this rank holds between steps: parameters, gradients, optimizer state (what
    /// DeepSpeed's memory estimators count; compare `MemoryEstimate.modelStateBytes`). Transient memory
    /// is not included: stage 2/3's not-yet-reduced gradient groups during backward, stage 3's gathered
    /// groups, and the collectives' and prefetch's scratch.
    public var modelStateBytes: Int {
        let offloaded = offloadedArrays.reduce(0) { $0 + $1.buffer.byteCount }
        // A pipeline stage's full-size weight and gradient buffers are touched only in its own groups.
        let full = trainableLayout.totalCount, held = heldElements
        let perElement = Double(parameters.byteCount + gradients.byteCount) / Double(Swift.max(full, 1))
        return Int((perElement * Double(held)).rounded()) + tiedReplicaBytes + momentBytes - offloaded
    }

    /// Bytes of the frozen base weights under an adapter (0 for full fine-tuning): a 16-bit copy, or f32.
    public var frozenBaseBytes: Int { frozenBase.byteCount(model: model) }


    /// Bytes of f32 master weights (mixed precision) and optimizer moments this rank holds: what
    /// optimizer offload moves out of memory.
    public var optimizerStateBytes: Int {
        guard case .copy(let master, _) = parameters.master else { return momentBytes }
        return master.byteCount + momentBytes
    }

    private var momentBytes: Int { moments.reduce(0) { $0 + $1.buffer.byteCount } }

    public func zeroGradients() {
        if pipeline != nil { zeroStageGradients() } else { gradients.zero() }
        microStepsSinceStep = 0
    }

    /// Adapter dropout's seed (the run's); each micro-step's masks are keyed by it, the optimizer steps
    /// taken, the micro-step within the step and the rank, so a resumed run draws the same masks.
    public var dropoutSeed: UInt64 = 0
    var microStepsSinceStep = 0

    func nextDropoutKey() -> UInt64? {
        defer { microStepsSinceStep += 1 }
        guard let a = model.adapter, a.dropout > 0 else { return nil }
        var h = dropoutSeed ^ 0x9E37_79B9_7F4A_7C15
        for part in [UInt64(stepsTaken), UInt64(microStepsSinceStep), UInt64(communicator.rank)] {
            h = (h ^ part) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 31
        }
        return h
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
        guard pipeline == nil else { throw PipelineError.unsupported("a pipeline stage runs its micro-batches through pipelineMicroSteps, not microStep") }
        guard !tokens.isEmpty || gradients.reducesDuringBackward else { return (0, 0) }
        if tokens.count > state.maxTokens {
            state = TrainingState(config: model.config, maxTokens: tokens.count, checkpointActivations: options.activationCheckpointing,
                                  activationDType: options.precision.computeDType)
        }
        if usesHooks { state.hooks = self }
        state.timer = scheduleTimer
        // A rank without tokens in a ZeRO-2/3 micro-step runs the block schedule's hooks alone, so it joins
        // every collective the others run, in their order, contributing zero gradients.
        let dropoutKey = nextDropoutKey()
        if tokens.isEmpty { return try model.runSchedule(nil, grads: grads, state: state) }
        // fp16: gradients of (scale · loss), so small gradients survive the 16-bit rounding.
        return try model.lossAndGradients(tokens: tokens, positions: positions, spans: spans, targets: targets,
                                          normalizer: normalizer / Float(lossScale), grads: grads, state: state,
                                          dropoutKey: dropoutKey)
    }

    /// Clips (when `maxGradNorm` > 0) and applies one optimizer step at learning rate `lr`. Collective:
    /// every rank calls it. Any failure is `EngineError.stepFailed` with this rank; the engine is then
    /// unusable and other ranks may be blocked in a collective, so the caller stops the job (the
    /// design's rule; the Trainer aborts it) or, alone, restores a checkpoint into a new engine.
    public func step(lr: Double, maxGradNorm: Double?) throws(EngineError) -> OptimizerStepResult {
        do {
            return try distributedStep(lr: lr, maxGradNorm: maxGradNorm)
        } catch {
            throw .stepFailed(rank: communicator.rank, underlying: error)
        }
    }

    /// Summed token loss and label count of a batch without gradients (evaluation). With ZeRO-3 this
    /// gathers every group first and is collective.
    public func evaluate(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32]) throws -> (lossSum: Double, labelTokens: Int) {
        let release = try materializeForEvaluation()
        defer { if release { releaseFullParameters() } }
        // A rank with nothing to evaluate still joined the gather above.
        guard !tokens.isEmpty else { return (0, 0) }
        return try model.lossSum(tokens: tokens, positions: positions, spans: spans, targets: targets, workspace: evalWorkspace)
    }
}
