/// What the fp16 loss scaler refuses to do, with the recipe key that controls it.
public enum LossScalerError: Error, CustomStringConvertible, Equatable {
    /// Gradients overflowed with hysteresis used up while the scale was already at `min_loss_scale`:
    /// DeepSpeed raises "Current loss scale already at minimum - cannot decrease scale anymore. Exiting
    /// run." here. `iteration` is the scaler's `cur_iter` at that step (0-based, counting skipped steps).
    case scaleAtMinimum(scale: Double, minLossScale: Double, iteration: Int)
    /// An option DeepSpeed's fp16 config validator rejects.
    case invalidOption(key: String, value: String, expected: String)

    public var description: String {
        switch self {
        case let .scaleAtMinimum(scale, minLossScale, iteration):
            return "fp16 gradients overflowed at loss-scaler iteration \(iteration) with the loss scale \(scale) "
                + "already at engine.loss_scaler.min_loss_scale (\(minLossScale)) and hysteresis exhausted; "
                + "the scale cannot decrease further, so the run stops as DeepSpeed's does (\"Current loss scale "
                + "already at minimum - cannot decrease scale anymore. Exiting run.\"). Lower "
                + "engine.loss_scaler.min_loss_scale, raise engine.loss_scaler.hysteresis, or train in bf16/f32."
        case let .invalidOption(key, value, expected):
            return "engine.loss_scaler.\(key) = \(value): expected \(expected)"
        }
    }
}

/// DeepSpeed 0.19.8's fp16 loss scaler (`runtime/fp16/loss_scaler.py`: `DynamicLossScaler`, or the static
/// `LossScaler` when `loss_scale` > 0), as its ZeRO optimizers drive it: every optimizer step calls
/// `update(overflow:)` once with the overflow flag already MAX-reduced across ranks, and skips the step
/// (no optimizer or scheduler step, `skipped_steps += 1`) when it returns true.
///
/// Dynamic rules, transcribed exactly (fixtures in Tests/Fixtures/loss_scaler come from DeepSpeed's class):
/// - overflow with `hysteresis == 1` or `cur_hysteresis == 1`: throw if the scale is already at
///   `min_loss_scale` (DeepSpeed's `raise_error_at_min_scale`, which its engine leaves True), otherwise
///   scale = max(scale / 2, min_loss_scale). `cur_hysteresis` is NOT refilled by a reduction, so once
///   exhausted every further overflow halves until a growth (or, with `consecutive_hysteresis`, any clean
///   step) refills it.
/// - other overflows only decrement `cur_hysteresis`. Hysteresis 0 (or negative) therefore counts down
///   forever and never lowers the scale — DeepSpeed accepts that config and behaves so; so do we.
/// - clean step: with `consecutive_hysteresis` refill `cur_hysteresis`; then if
///   s = cur_iter - last_overflow_iter - 1 is > 0 and a multiple of `loss_scale_window`, double the scale
///   (and refill hysteresis when not consecutive). The first growth is thus on the (window+1)-th clean step.
/// - `cur_iter` counts every update; `last_overflow_iter` is the `cur_iter` of the latest overflow (-1 none).
/// A throwing update changes nothing, as DeepSpeed raises before touching its state.
///
/// The static scaler keeps no counters in DeepSpeed; here they stay at their initial values.
public struct LossScaler: Sendable, Equatable, Codable {
    /// DeepSpeed's `scale_factor`, a constant there too.
    public static let scaleFactor = 2.0

    public private(set) var scale: Double
    public let isDynamic: Bool
    /// `cur_iter`: updates seen so far, skipped ones included.
    public private(set) var curIter: Int
    /// `last_overflow_iter`: `curIter` of the most recent overflow, -1 before the first.
    public private(set) var lastOverflowIter: Int
    /// `cur_hysteresis`: overflows still tolerated before the scale is halved.
    public private(set) var curHysteresis: Int
    /// `scale_window`, `min_scale`, `delayed_shift`, `consecutive_hysteresis` from the options.
    public let lossScaleWindow: Int
    public let minLossScale: Double
    public let hysteresis: Int
    public let consecutiveHysteresis: Bool

    /// Keys follow DeepSpeed's attribute names, which its ZeRO checkpoints pickle.
    enum CodingKeys: String, CodingKey, CaseIterable {
        case dynamic, cur_scale, cur_iter, last_overflow_iter, cur_hysteresis
        case scale_window, min_scale, delayed_shift, consecutive_hysteresis
    }

    /// A fresh scaler: static at `lossScale` when that is > 0, otherwise dynamic from 2^initialScalePower.
    /// Options DeepSpeed would reject make `update` throw (see `validate`).
    public init(options: EngineOptions.LossScaler) {
        isDynamic = options.lossScale == 0
        scale = isDynamic
            ? Double(sign: .plus, exponent: options.initialScalePower, significand: 1)
            : options.lossScale
        curIter = 0
        lastOverflowIter = -1
        curHysteresis = options.hysteresis
        lossScaleWindow = options.lossScaleWindow
        minLossScale = options.minLossScale
        hysteresis = options.hysteresis
        consecutiveHysteresis = options.consecutiveHysteresis
    }

    /// Throws what DeepSpeed's `DeepSpeedFP16Config` validators reject (window and minimum only matter
    /// when dynamic), plus an initial scale that is not a finite Double.
    public static func validate(_ options: EngineOptions.LossScaler) throws {
        try LossScaler(options: options).validate()
    }

    /// Records one optimizer step's overflow flag (already agreed across ranks by the caller); returns true
    /// when the step must be skipped. Throws `.scaleAtMinimum` where DeepSpeed raises, leaving the state as
    /// it was.
    public mutating func update(overflow: Bool) throws -> Bool {
        try validate()
        guard isDynamic else { return overflow }
        if overflow {
            if hysteresis == 1 || curHysteresis == 1 {
                if scale == minLossScale {
                    throw LossScalerError.scaleAtMinimum(scale: scale, minLossScale: minLossScale, iteration: curIter)
                }
                scale = max(scale / Self.scaleFactor, minLossScale)
            } else {
                curHysteresis -= 1
            }
            lastOverflowIter = curIter
        } else {
            if consecutiveHysteresis { curHysteresis = hysteresis }
            let stableInterval = (curIter - lastOverflowIter) - 1
            if stableInterval > 0 && stableInterval % lossScaleWindow == 0 {
                if !consecutiveHysteresis { curHysteresis = hysteresis }
                scale *= Self.scaleFactor
            }
        }
        curIter += 1
        return overflow
    }

    private func validate() throws {
        if isDynamic {
            if !scale.isFinite {
                throw LossScalerError.invalidOption(
                    key: "initial_scale_power", value: "a power giving 2^power = \(scale)", expected: "a power <= 1023 (2^power finite in f64)")
            }
            if lossScaleWindow <= 0 {
                throw LossScalerError.invalidOption(
                    key: "loss_scale_window", value: "\(lossScaleWindow)", expected: "> 0 when dynamic loss scaling is enabled (loss_scale=0)")
            }
            if !(minLossScale > 0) || !minLossScale.isFinite {
                throw LossScalerError.invalidOption(
                    key: "min_loss_scale", value: "\(minLossScale)", expected: "finite and > 0 when dynamic loss scaling is enabled (loss_scale=0)")
            }
        } else if !(scale > 0) || !scale.isFinite {
            throw LossScalerError.invalidOption(
                key: "loss_scale", value: "\(scale)", expected: "a finite number >= 0 (0 enables dynamic loss scaling)")
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        isDynamic = try c.decode(Bool.self, forKey: .dynamic)
        scale = try c.decode(Double.self, forKey: .cur_scale)
        curIter = try c.decode(Int.self, forKey: .cur_iter)
        lastOverflowIter = try c.decode(Int.self, forKey: .last_overflow_iter)
        curHysteresis = try c.decode(Int.self, forKey: .cur_hysteresis)
        lossScaleWindow = try c.decode(Int.self, forKey: .scale_window)
        minLossScale = try c.decode(Double.self, forKey: .min_scale)
        hysteresis = try c.decode(Int.self, forKey: .delayed_shift)
        consecutiveHysteresis = try c.decode(Bool.self, forKey: .consecutive_hysteresis)
        do {
            try validate()
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "\(error)", underlyingError: error))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(isDynamic, forKey: .dynamic)
        try c.encode(scale, forKey: .cur_scale)
        try c.encode(curIter, forKey: .cur_iter)
        try c.encode(lastOverflowIter, forKey: .last_overflow_iter)
        try c.encode(curHysteresis, forKey: .cur_hysteresis)
        try c.encode(lossScaleWindow, forKey: .scale_window)
        try c.encode(minLossScale, forKey: .min_scale)
        try c.encode(hysteresis, forKey: .delayed_shift)
        try c.encode(consecutiveHysteresis, forKey: .consecutive_hysteresis)
    }
}

extension LossScaler {
    /// Lanes per SIMD load in `hasOverflow`.
    static let overflowLanes = 16
    /// Elements scanned between early-exit checks, so a long clean buffer costs one branch per block.
    static let overflowBlock = 1024

    /// True when any value is +-inf or NaN: DeepSpeed's `has_inf_or_nan` over the local gradients, before
    /// the caller MAX-reduces the flag across ranks. Tests the exponent bits (all ones), so the answer does
    /// not depend on floating-point comparison semantics.
    public static func hasOverflow(_ values: UnsafeBufferPointer<Float>) -> Bool {
        guard let base = values.baseAddress else { return false }
        let raw = UnsafeRawPointer(base)
        let exponentMask = SIMD16<UInt32>(repeating: 0x7F80_0000)
        let count = values.count
        let vectorEnd = count - count % overflowLanes
        var start = 0
        while start < vectorEnd {
            let end = min(start + overflowBlock, vectorEnd)
            var seen = SIMDMask<SIMD16<Int32>>(repeating: false)
            var i = start
            while i < end {
                let bits = raw.loadUnaligned(fromByteOffset: i * MemoryLayout<Float>.stride, as: SIMD16<UInt32>.self)
                seen .|= (bits & exponentMask) .== exponentMask
                i += overflowLanes
            }
            if any(seen) { return true }
            start = end
        }
        return hasOverflowReference(UnsafeBufferPointer(rebasing: values[vectorEnd...]))
    }

    /// The plain definition `hasOverflow` must agree with (also its scalar tail).
    static func hasOverflowReference(_ values: UnsafeBufferPointer<Float>) -> Bool {
        values.contains { !$0.isFinite }
    }
}
