import Distributed
import Tensors

/// Mixed precision (`engine.precision: bf16 | fp16`, ARCHITECTURE.md "Precision"). This CPU has no half
/// arithmetic, so kernels compute in f32 and the half formats are what is stored and sent:
///
/// - master weights and optimizer state are f32 (`MasterWeights.copy`, or ZeRO-3's shards);
/// - compute weights are half (`ComputeWeights`): a 16-bit copy for stages 1 and 2 (updated by a 16-bit
///   all-gather after each step), the master rounded per use at stage 0, the shards rounded before a
///   16-bit gather at stage 3. Either way `model.params` only ever holds the f32 widening of the group
///   being used, filled in `willUse` and released in `didUse`, as PyTorch's autocast casts a weight per use;
/// - saved activations are half (`TrainingState.activationDType`);
/// - gradients are computed in f32 per group, then rounded (`GradientStorage`): accumulated in 16 bits
///   (stages 0-1, all-reduced in 16 bits before the step) or rounded into the 16-bit reduce-scatter
///   (stages 2-3). bf16 accumulation rounds once per micro-batch; DeepSpeed's BF16_Optimizer keeps an f32
///   accumulator instead (4 bytes per parameter more).
/// - fp16 scales the loss by the `LossScaler`'s scale (the normalizer is divided by it), checks the
///   gradients for inf/NaN, agrees on the flag across ranks (MAX), and either skips the step (no optimizer
///   or scheduler step) or unscales and clips in one multiplication as DeepSpeed's FP16_Optimizer does.
extension TrainingEngine {
    /// The mixed-precision step's decision from the global sum of squares of the (loss-scaled)
    /// gradients: the overflow flag agreed across ranks and fed to fp16's scaler, nil when the step is
    /// skipped; else the true norm and DeepSpeed's FP16_Optimizer.unscale_and_clip_grads factor, which
    /// unscales and clips at once (nil when it is 1: nothing to multiply).
    func mixedUnscaleAndClip(sumOfSquares sum: Double, maxGradNorm: Double?) throws -> (factor: Float?, norm: Double)? {
        var overflow = !sum.isFinite
        if communicator.worldSize > 1 { overflow = try communicator.any(overflow) }
        let scale = lossScale
        if var scaler = lossScaler {
            // A throwing update leaves the scaler as it was, as DeepSpeed's does.
            let skip = try scaler.update(overflow: overflow)
            lossScaler = scaler
            if skip { return nil }
        }
        let norm = sum.squareRoot() / scale
        var combined = scale
        if let maxNorm = maxGradNorm, maxNorm > 0 {
            let clip = (norm + 1e-6) / maxNorm
            if clip > 1 { combined = clip * scale }
        }
        let factor = Float(1 / combined)
        return (factor != 1 ? factor : nil, norm)
    }
}

extension EngineOptions.Precision {
    /// The dtype compute weights and saved activations are stored in.
    public var computeDType: DType {
        switch self {
        case .f32: return .f32
        case .bf16: return .bf16
        case .fp16: return .f16
        }
    }
}
