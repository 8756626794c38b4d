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
    case nonFiniteLoss(step: Int, loss: Double)

    public var description: String {
        switch self {
        case .unsupported(let what): return "engine: \(what) is not supported yet"
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

/// DeepSpeed's engine in one process: owns the gradients and optimizer state of a model's flat
/// parameter buffer, runs micro-batches (forward, loss, backward, accumulating gradients) and the
/// optimizer step (clip, then AdamW or SGD per parameter group). The distributed and mixed-precision
/// engines keep this interface.
public final class TrainingEngine {
    public let model: TransformerModel
    public let options: EngineOptions
    public let optimizer: OptimizerSettings
    public let groups: ParameterGroups
    public let grads: FlatBuffer
    /// AdamW m and v, or SGD's momentum buffer in `firstMoment`.
    public let firstMoment: FlatBuffer
    public let secondMoment: FlatBuffer?
    /// Optimizer steps taken so far (PyTorch's `state["step"]`).
    public internal(set) var stepsTaken = 0
    private var state: TrainingState
    private let evalWorkspace = ForwardWorkspace()
    private let segments: [ParameterGroups.Segment]

    public init(model: TransformerModel, options: EngineOptions, optimizer: OptimizerSettings,
                frozen: Set<String> = [], maxTokens: Int) throws {
        guard options.zeroStage == 0 else { throw EngineError.unsupported("engine.zero_stage \(options.zeroStage) in one process") }
        guard options.precision == .f32 else { throw EngineError.unsupported("engine.precision \(options.precision.rawValue)") }
        guard options.pipeline.stages == 1 else { throw EngineError.unsupported("pipeline parallelism") }
        guard options.offloadOptimizer.device == .none || options.offloadOptimizer.device == .cpu else {
            throw EngineError.unsupported("optimizer offload to \(options.offloadOptimizer.device.rawValue)")
        }
        self.model = model
        self.options = options
        self.optimizer = optimizer
        let policy = model.config.modelType == "gpt2" ? DecayPolicy.gpt2(layers: model.config.numLayers) : DecayPolicy()
        groups = ParameterGroups(layout: model.layout, weightDecay: optimizer.weightDecay, policy: policy, frozen: frozen)
        segments = groups.segments(within: 0..<model.layout.totalCount)
        let n = model.layout.totalCount
        grads = FlatBuffer(dtype: .f32, count: n)
        firstMoment = FlatBuffer(dtype: .f32, count: n)
        if case .adamw = optimizer { secondMoment = FlatBuffer(dtype: .f32, count: n) } else { secondMoment = nil }
        state = TrainingState(config: model.config, maxTokens: maxTokens, checkpointActivations: options.activationCheckpointing)
    }

    /// Bytes of model state this process holds: parameters, gradients, optimizer state (what DeepSpeed's
    /// memory estimators count).
    public var modelStateBytes: Int {
        model.params.byteCount + grads.byteCount + firstMoment.byteCount + (secondMoment?.byteCount ?? 0)
    }

    public func zeroGradients() { grads.zero() }

    /// Forward, loss and backward of one micro-batch; gradients accumulate. `normalizer` is the label-token
    /// count of the whole optimizer step. Returns the summed token loss and label count of this micro-batch.
    @discardableResult
    public func microStep(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32],
                          normalizer: Float) throws -> (lossSum: Double, labelTokens: Int) {
        guard !tokens.isEmpty else { return (0, 0) }
        if tokens.count > state.maxTokens {
            state = TrainingState(config: model.config, maxTokens: tokens.count, checkpointActivations: options.activationCheckpointing)
        }
        return try model.lossAndGradients(tokens: tokens, positions: positions, spans: spans, targets: targets,
                                          normalizer: normalizer, grads: grads, state: state)
    }

    /// Clips (when `maxGradNorm` > 0) and applies one optimizer step at learning rate `lr`.
    public func step(lr: Double, maxGradNorm: Double?) -> OptimizerStepResult {
        var norm: Double?
        if let maxNorm = maxGradNorm, maxNorm > 0 {
            let r = GradientClipping.clip(grads.floats, ranges: groups.trainableRanges, maxNorm: maxNorm)
            norm = Double(r.norm)
        } else {
            let sum = GradientClipping.partialSumOfSquares(UnsafeBufferPointer(grads.floats), ranges: groups.trainableRanges)
            norm = Double(GradientClipping.finish(sumOfSquares: sum))
        }
        stepsTaken += 1
        let p = model.params.floats.baseAddress!, g = grads.floats.baseAddress!, m = firstMoment.floats.baseAddress!
        for s in segments {
            let (lo, count) = (s.range.lowerBound, s.range.count)
            switch optimizer {
            case .adamw(let b1, let b2, let eps, _):
                let c = AdamWCoefficients(lr: lr, beta1: b1, beta2: b2, eps: eps, weightDecay: s.weightDecay, step: stepsTaken)
                AdamW.step(AdamWRange(params: p + lo, grads: g + lo, expAvg: m + lo,
                                      expAvgSq: secondMoment!.floats.baseAddress! + lo, count: count), c)
            case .sgd(let momentum, let dampening, _, let nesterov):
                let c = SGDCoefficients(lr: lr, momentum: momentum, dampening: dampening, weightDecay: s.weightDecay, nesterov: nesterov)
                SGD.step(SGDRange(params: p + lo, grads: g + lo, momentumBuffer: momentum != 0 ? m + lo : nil, count: count), c,
                         isFirstStep: stepsTaken == 1)
            }
        }
        return OptimizerStepResult(gradNorm: norm, skipped: false)
    }

    /// Summed token loss and label count of a batch without gradients (evaluation).
    public func evaluate(tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32]) throws -> (lossSum: Double, labelTokens: Int) {
        try model.lossSum(tokens: tokens, positions: positions, spans: spans, targets: targets, workspace: evalWorkspace)
    }
}
