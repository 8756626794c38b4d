/// AdamW with `torch.optim.AdamW`'s arithmetic (the single-tensor path PyTorch takes on CPU: foreach and
/// fused are off there), stepped over one contiguous range of flat buffers so a ZeRO rank can step only
/// its shard and a parameter group can carry its own weight decay.
///
/// PyTorch 2.15's `_single_tensor_adam` with decoupled weight decay does, per tensor, in this order:
///
///     p.mul_(1 - lr·wd)                          scalar formed in f64, rounded to f32
///     m.lerp_(g, 1 - β1)                         m + w·(g − m) as ONE fused multiply-add (w < 0.5)
///     v.mul_(β2).addcmul_(g, g, value=1 − β2)    fma((1−β2)·g, g, v·β2)
///     denom = (v.sqrt() / sqrt(1 − β2^t)).add_(eps)
///     p.addcdiv_(m, denom, value=−lr/(1 − β1^t)) p + (value·m) / denom
///
/// The fused multiply-adds come from PyTorch's AVX2 kernels (measured: the unfused forms differ in
/// ~10 % of elements). Swift only emits a hardware FMA when the target CPU is named at compile time;
/// otherwise `addingProduct` becomes a libm call per lane (7× slower here), so the kernel forms
/// a·b + c in f64 instead: the product of two floats is exact in f64 and only one rounding to f32
/// follows the f64 sum, which equals the fused result except for double-rounding ties (~2⁻²⁹ of cases).
/// One difference remains and is PyTorch's: its CPU `sqrt` on f32 (MKL VML) is off by one ulp in about
/// a fifth of elements, while ours is correctly rounded. m and v therefore match PyTorch bit for bit;
/// parameters match to about one ulp of the update.
#if canImport(Glibc)
import Glibc
#endif

typealias F4D = SIMD4<Double>

/// The per-step f32 constants of one AdamW step, formed the way PyTorch forms them: Python floats
/// (f64) combined first, then each rounded to f32 where a tensor op receives it.
public struct AdamWCoefficients: Sendable, Equatable {
    /// 1 − lr·wd (applied before the moments; 1 when wd is 0).
    public var decay: Float
    /// 1 − β1, the lerp weight.
    public var lerpWeight: Float
    /// Whether PyTorch's lerp takes the `weight < 0.5` branch (it does for every usual β1 > 0.5).
    public var lerpWeightIsSmall: Bool
    public var beta2: Float
    public var oneMinusBeta2: Float
    /// sqrt(1 − β2^t)
    public var biasCorrection2Sqrt: Float
    public var eps: Float
    /// −lr / (1 − β1^t)
    public var negativeStepSize: Float

    /// - Parameter step: the optimizer step being taken, counted from 1 (PyTorch's `state["step"]` after
    ///   its increment).
    public init(lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double, step: Int) {
        let t = Double(step)
        decay = weightDecay != 0 ? Float(1 - lr * weightDecay) : 1
        let w = 1 - beta1
        lerpWeight = Float(w)
        lerpWeightIsSmall = abs(Float(w)) < 0.5
        self.beta2 = Float(beta2)
        oneMinusBeta2 = Float(1 - beta2)
        let bc1 = 1 - pow(beta1, t)
        let bc2 = 1 - pow(beta2, t)
        biasCorrection2Sqrt = Float(bc2.squareRoot())
        self.eps = Float(eps)
        negativeStepSize = Float(-(lr / bc1))
    }
}

/// The state pointers of one range: element i of each buffer belongs to the same parameter element.
/// `maxExpAvgSq` is present only for amsgrad.
public struct AdamWRange {
    public var params: UnsafeMutablePointer<Float>
    public var grads: UnsafePointer<Float>
    public var expAvg: UnsafeMutablePointer<Float>
    public var expAvgSq: UnsafeMutablePointer<Float>
    public var maxExpAvgSq: UnsafeMutablePointer<Float>?
    public var count: Int

    public init(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, expAvg: UnsafeMutablePointer<Float>,
                expAvgSq: UnsafeMutablePointer<Float>, maxExpAvgSq: UnsafeMutablePointer<Float>? = nil, count: Int) {
        self.params = params; self.grads = grads; self.expAvg = expAvg; self.expAvgSq = expAvgSq
        self.maxExpAvgSq = maxExpAvgSq; self.count = count
    }

    /// The sub-range `lo..<hi` of this range.
    @inline(__always)
    public func slice(_ lo: Int, _ hi: Int) -> AdamWRange {
        AdamWRange(params: params + lo, grads: grads + lo, expAvg: expAvg + lo, expAvgSq: expAvgSq + lo,
                   maxExpAvgSq: maxExpAvgSq.map { $0 + lo }, count: hi - lo)
    }
}

public enum AdamW {
    /// Below this many elements per thread a step runs on the calling thread.
    public static let minPerThread = 1 << 15

    /// One AdamW step over `r`, split across `Parallel.threads`.
    public static func step(_ r: AdamWRange, _ c: AdamWCoefficients) {
        Parallel.forEachChunk(r.count, minPerThread: minPerThread) { chunk in
            stepSerial(r.slice(chunk.lowerBound, chunk.upperBound), c)
        }
    }

    /// a·b + c rounded once to f32 (see the file comment for why through f64).
    @inline(__always)
    public static func fusedMultiplyAdd(_ a: F8, _ b: F8, _ c: F8) -> F8 {
        let lo = F4D(a.lowHalf) * F4D(b.lowHalf) + F4D(c.lowHalf)
        let hi = F4D(a.highHalf) * F4D(b.highHalf) + F4D(c.highHalf)
        return F8(lowHalf: SIMD4<Float>(lo), highHalf: SIMD4<Float>(hi))
    }

    /// The scalar form of `fusedMultiplyAdd`, for the tail and the reference.
    @inline(__always)
    public static func fusedMultiplyAdd(_ a: Float, _ b: Float, _ c: Float) -> Float {
        Float(Double(a) * Double(b) + Double(c))
    }

    @inline(__always)
    static func stepSerial(_ r: AdamWRange, _ c: AdamWCoefficients) {
        let n = r.count
        let decay = F8(repeating: c.decay), w = F8(repeating: c.lerpWeight), wm1 = F8(repeating: c.lerpWeight - 1)
        let b2 = F8(repeating: c.beta2), omb2 = F8(repeating: c.oneMinusBeta2)
        let bc2 = F8(repeating: c.biasCorrection2Sqrt), eps = F8(repeating: c.eps)
        let nss = F8(repeating: c.negativeStepSize)
        let small = c.lerpWeightIsSmall
        var i = 0
        while i + 8 <= n {
            let g = VectorMath.load(r.grads + i)
            var m = VectorMath.load(r.expAvg + i)
            var v = VectorMath.load(r.expAvgSq + i)
            let p = VectorMath.load(r.params + i) * decay
            m = small ? fusedMultiplyAdd(w, g - m, m) : fusedMultiplyAdd(wm1, g - m, g)
            v = fusedMultiplyAdd(omb2 * g, g, v * b2)
            VectorMath.store(m, r.expAvg + i)
            VectorMath.store(v, r.expAvgSq + i)
            var vHat = v
            if let mx = r.maxExpAvgSq {
                vHat = pointwiseMax(VectorMath.load(mx + i), v)
                VectorMath.store(vHat, mx + i)
            }
            let denom = vHat.squareRoot() / bc2 + eps
            VectorMath.store(p + (nss * m) / denom, r.params + i)
            i += 8
        }
        if i < n { referenceStep(r.slice(i, n), c) }
    }

    /// The same step one element at a time, written as PyTorch's sequence of tensor operations.
    public static func referenceStep(_ r: AdamWRange, _ c: AdamWCoefficients) {
        for i in 0..<r.count {
            let g = r.grads[i]
            r.params[i] *= c.decay
            let m = r.expAvg[i]
            r.expAvg[i] = c.lerpWeightIsSmall
                ? fusedMultiplyAdd(c.lerpWeight, g - m, m)
                : fusedMultiplyAdd(c.lerpWeight - 1, g - m, g)
            r.expAvgSq[i] = fusedMultiplyAdd(c.oneMinusBeta2 * g, g, r.expAvgSq[i] * c.beta2)
            var vHat = r.expAvgSq[i]
            if let mx = r.maxExpAvgSq {
                vHat = Swift.max(mx[i], vHat)
                mx[i] = vHat
            }
            let denom = vHat.squareRoot() / c.biasCorrection2Sqrt + c.eps
            r.params[i] = r.params[i] + (c.negativeStepSize * r.expAvg[i]) / denom
        }
    }
}
