/// SGD with `torch.optim.SGD`'s arithmetic (single-tensor path), stepped over one contiguous range.
///
/// PyTorch 2.15's `_single_tensor_sgd` does, per tensor:
///
///     g' = g.add(p, alpha=wd)                       if wd ≠ 0   (a new tensor: grads are not modified)
///     buf = g'.clone()                              first step with momentum
///     buf.mul_(μ).add_(g', alpha=1 − dampening)     later steps
///     g'' = g'.add(buf, alpha=μ) if nesterov else buf
///     p.add_(g'', alpha=−lr)
///
/// `add` with alpha runs as one fused multiply-add in PyTorch's AVX2 kernel (measured), formed here
/// through f64 like AdamW's (see AdamW.swift).
public struct SGDCoefficients: Sendable, Equatable {
    public var lr: Double
    public var momentum: Double
    public var dampening: Double
    public var weightDecay: Double
    public var nesterov: Bool

    public init(lr: Double, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0, nesterov: Bool = false) {
        self.lr = lr; self.momentum = momentum; self.dampening = dampening
        self.weightDecay = weightDecay; self.nesterov = nesterov
    }

    var usesMomentum: Bool { momentum != 0 }
}

/// The pointers of one range. `momentumBuffer` is required when momentum ≠ 0 and ignored otherwise.
public struct SGDRange {
    public var params: UnsafeMutablePointer<Float>
    public var grads: UnsafePointer<Float>
    public var momentumBuffer: UnsafeMutablePointer<Float>?
    public var count: Int

    public init(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>,
                momentumBuffer: UnsafeMutablePointer<Float>?, count: Int) {
        self.params = params; self.grads = grads; self.momentumBuffer = momentumBuffer; self.count = count
    }

    @inline(__always)
    public func slice(_ lo: Int, _ hi: Int) -> SGDRange {
        SGDRange(params: params + lo, grads: grads + lo, momentumBuffer: momentumBuffer.map { $0 + lo }, count: hi - lo)
    }
}

public enum SGD {
    /// One SGD step over `r`. `isFirstStep` says the momentum buffer does not exist yet in PyTorch's
    /// terms (it is then set to the gradient, without dampening).
    public static func step(_ r: SGDRange, _ c: SGDCoefficients, isFirstStep: Bool) {
        Parallel.forEachChunk(r.count, minPerThread: AdamW.minPerThread) { chunk in
            stepSerial(r.slice(chunk.lowerBound, chunk.upperBound), c, isFirstStep: isFirstStep)
        }
    }

    @inline(__always)
    static func stepSerial(_ r: SGDRange, _ c: SGDCoefficients, isFirstStep: Bool) {
        let n = r.count
        let wd = F8(repeating: Float(c.weightDecay)), mu = F8(repeating: Float(c.momentum))
        let keep = F8(repeating: Float(1 - c.dampening)), negLR = F8(repeating: Float(-c.lr))
        let decays = c.weightDecay != 0, buf = c.usesMomentum ? r.momentumBuffer : nil
        var i = 0
        while i + 8 <= n {
            let p = VectorMath.load(r.params + i)
            var g = VectorMath.load(r.grads + i)
            if decays { g = AdamW.fusedMultiplyAdd(p, wd, g) }
            if let buf {
                var b = g
                if !isFirstStep { b = AdamW.fusedMultiplyAdd(g, keep, VectorMath.load(buf + i) * mu) }
                VectorMath.store(b, buf + i)
                g = c.nesterov ? AdamW.fusedMultiplyAdd(b, mu, g) : b
            }
            VectorMath.store(AdamW.fusedMultiplyAdd(g, negLR, p), r.params + i)
            i += 8
        }
        if i < n { referenceStep(r.slice(i, n), c, isFirstStep: isFirstStep) }
    }

    /// The same step one element at a time.
    public static func referenceStep(_ r: SGDRange, _ c: SGDCoefficients, isFirstStep: Bool) {
        let fma = AdamW.fusedMultiplyAdd as (Float, Float, Float) -> Float
        for i in 0..<r.count {
            var g = r.grads[i]
            if c.weightDecay != 0 { g = fma(r.params[i], Float(c.weightDecay), g) }
            if c.usesMomentum, let buf = r.momentumBuffer {
                buf[i] = isFirstStep ? g : fma(g, Float(1 - c.dampening), buf[i] * Float(c.momentum))
                g = c.nesterov ? fma(buf[i], Float(c.momentum), g) : buf[i]
            }
            r.params[i] = fma(g, Float(-c.lr), r.params[i])
        }
    }
}
