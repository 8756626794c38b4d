import Foundation

/// A learning-rate schedule as a pure function of the optimizer step, for both families a recipe can
/// name: transformers' LambdaLR schedules and DeepSpeed's `lr_schedules.py` classes. Nothing is stepped,
/// so resuming needs only the step count.
///
/// `lr(step:)` takes `step` = the number of optimizer steps ALREADY TAKEN and returns the learning rate
/// the next optimizer step uses. The trainer calls `lr(step: globalStep)` right before each optimizer
/// step (globalStep = 0 for the first), for either family. How that maps onto each library:
///
/// - transformers: `LambdaLR` calls `step()` once in its constructor, so the first optimizer step runs
///   with `base_lr · lambda(0)`; after k optimizer steps (and k `scheduler.step()` calls) the lr is
///   `base_lr · lambda(k)`. So `lr(step: k) = base · lambda(k)`. (With warmup the first step uses lr 0.)
/// - DeepSpeed: `last_batch_iteration` starts at −1 and the engine calls `lr_scheduler.step()` only AFTER
///   each optimizer step that was not skipped for overflow. The constructor sets the lr for iteration −1:
///   `warmup_min_lr` for WarmupLR/WarmupDecayLR and 0 for WarmupCosineLR. So the first optimizer step
///   runs at that value and `lr(step: k)` is the formula at `last_batch_iteration = k − 1`. A step skipped
///   for fp16 overflow does not advance DeepSpeed's schedule, so `step` counts applied steps only.
///
/// Arithmetic follows the Python sources operation by operation in f64 (same libm `log`/`cos`), so the
/// values agree with the references to the last bit or two (tests allow 1e-12 relative).
public enum LRSchedule: Sendable, Equatable {
    /// transformers `constant` / `constant_with_warmup`.
    case constant(baseLR: Double, ConstantScheduleConfig)
    /// transformers `linear` (`get_linear_schedule_with_warmup`).
    case linear(baseLR: Double, LinearScheduleConfig)
    /// transformers `cosine` and `cosine_with_min_lr`.
    case cosine(baseLR: Double, CosineScheduleConfig)
    /// DeepSpeed `WarmupLR`, or `WarmupDecayLR` when `totalNumSteps` is set. `baseLR` is the optimizer's
    /// lr, used when `warmupMaxLR` is nil.
    case deepSpeedWarmup(baseLR: Double, DeepSpeedWarmupConfig)
    /// DeepSpeed `WarmupCosineLR`; `baseLR` is the optimizer's lr the ratios scale.
    case deepSpeedWarmupCosine(baseLR: Double, DeepSpeedWarmupCosineConfig)

    /// Checks what the Python constructors reject. The `lr` of an unvalidated schedule is still defined.
    public func validated() throws -> LRSchedule {
        switch self {
        case let .cosine(base, c):
            if c.minLR != nil && c.minLRRate != nil {
                throw LRScheduleError.invalid(schedule: "cosine_with_min_lr", key: "min_lr",
                                              value: "\(c.minLR!)", expected: "only one of min_lr or min_lr_rate")
            }
            if c.minLR != nil && base == 0 {
                throw LRScheduleError.invalid(schedule: "cosine_with_min_lr", key: "learning_rate",
                                              value: "0", expected: "a non-zero lr to divide min_lr by")
            }
        case let .deepSpeedWarmup(_, c):
            if c.warmupNumSteps <= 0 {
                throw LRScheduleError.invalid(schedule: c.totalNumSteps == nil ? "WarmupLR" : "WarmupDecayLR",
                                              key: "warmup_num_steps", value: "\(c.warmupNumSteps)",
                                              expected: "a positive integer")
            }
        case let .deepSpeedWarmupCosine(_, c):
            if c.warmupNumSteps <= 0 {
                throw LRScheduleError.invalid(schedule: "WarmupCosineLR", key: "warmup_num_steps",
                                              value: "\(c.warmupNumSteps)", expected: "a positive integer")
            }
        case .constant, .linear:
            break
        }
        return self
    }

    /// The learning rate of the optimizer step that follows `step` completed steps (see the type comment).
    public func lr(step: Int) -> Double {
        switch self {
        case let .constant(base, c):
            return base * Self.constantLambda(step, warmup: c.numWarmupSteps)
        case let .linear(base, c):
            return base * Self.linearLambda(step, warmup: c.numWarmupSteps, total: c.numTrainingSteps)
        case let .cosine(base, c):
            let rate = c.minLRRate ?? c.minLR.map { $0 / base } ?? 0
            return base * Self.cosineLambda(step, warmup: c.numWarmupSteps, total: c.numTrainingSteps,
                                            cycles: c.numCycles, minLRRate: rate)
        case let .deepSpeedWarmup(base, c):
            return Self.deepSpeedWarmupLR(iteration: step - 1, c, maxLR: c.warmupMaxLR ?? base)
        case let .deepSpeedWarmupCosine(base, c):
            return base * Self.deepSpeedCosineRatio(iteration: step - 1, c)
        }
    }

    // MARK: transformers (optimization.py), lambda of the LambdaLR step

    static func warmupLambda(_ step: Int, warmup: Int) -> Double {
        Double(step) / Double(max(1, warmup))
    }

    static func constantLambda(_ step: Int, warmup: Int) -> Double {
        // float(current_step) / float(max(1.0, num_warmup_steps))
        step < warmup ? Double(step) / max(1.0, Double(warmup)) : 1.0
    }

    static func linearLambda(_ step: Int, warmup: Int, total: Int) -> Double {
        if step < warmup { return warmupLambda(step, warmup: warmup) }
        return max(0.0, Double(total - step) / Double(max(1, total - warmup)))
    }

    /// transformers 5.23 defines `_get_cosine_schedule_with_warmup_lr_lambda` twice; the second
    /// definition (with `min_lr_rate`, default 0) is the one both cosine schedules call.
    static func cosineLambda(_ step: Int, warmup: Int, total: Int, cycles: Double, minLRRate: Double) -> Double {
        if step < warmup { return warmupLambda(step, warmup: warmup) }
        let progress = Double(step - warmup) / Double(max(1, total - warmup))
        var factor = 0.5 * (1.0 + cos(Double.pi * cycles * 2.0 * progress))
        factor = factor * (1 - minLRRate) + minLRRate
        return max(0, factor)
    }

    // MARK: DeepSpeed 0.19.8 (deepspeed/runtime/lr_schedules.py), at last_batch_iteration

    /// The warmup fraction both DeepSpeed warmups share, for 0 ≤ iteration < max(2, warmup_num_steps).
    static func deepSpeedWarmupGamma(iteration: Int, warmupSteps: Int, type: DeepSpeedWarmupType) -> Double {
        switch type {
        case .log: return (1.0 / log(Double(warmupSteps))) * log(Double(iteration + 1))
        case .linear: return Double(iteration) / Double(warmupSteps)
        }
    }

    static func deepSpeedWarmupLR(iteration: Int, _ c: DeepSpeedWarmupConfig, maxLR: Double) -> Double {
        if iteration < 0 { return c.warmupMinLR }
        let warmup = max(2, c.warmupNumSteps)
        let gamma: Double
        if iteration < warmup {
            gamma = deepSpeedWarmupGamma(iteration: iteration, warmupSteps: warmup, type: c.warmupType)
        } else if let total = c.totalNumSteps {
            gamma = max(0.0, Double(total - iteration) / max(1.0, Double(total - warmup)))
        } else {
            gamma = 1.0
        }
        return c.warmupMinLR + ((maxLR - c.warmupMinLR) * gamma)
    }

    static func deepSpeedCosineRatio(iteration: Int, _ c: DeepSpeedWarmupCosineConfig) -> Double {
        if iteration < 0 { return 0.0 }
        let warmup = max(2, c.warmupNumSteps)
        if iteration < warmup {
            let ratio = deepSpeedWarmupGamma(iteration: iteration, warmupSteps: warmup, type: c.warmupType)
            return c.warmupMinRatio + ratio * (1.0 - c.warmupMinRatio)
        }
        let realLastStep = iteration - warmup + 1
        let realTotalSteps = max(1, c.totalNumSteps - warmup)
        let progress = min(1.0, Double(realLastStep) / Double(realTotalSteps))
        let ratio = (1 + cos(Double.pi * progress)) / 2
        return max(0.0, c.cosMinRatio + (1.0 - c.cosMinRatio) * ratio)
    }
}
