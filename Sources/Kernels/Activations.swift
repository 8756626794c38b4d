#if canImport(Glibc)
import Glibc
#endif

/// The MLP nonlinearities: SwiGLU for the Llama family (down(silu(gate)·up)), gelu_new for GPT-2.
public enum SwiGLU {
    /// out[n] = silu(gate[n]) · up[n] = gate/(1+e^−gate) · up.
    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                               up: UnsafePointer<Float>, count n: Int) {
        Parallel.forEachChunk(n / 8, minPerThread: 4096) { chunk in
            for c in chunk {
                let i = c * 8
                let g = VectorMath.load(gate + i)
                let silu = g / (1 + VectorMath.exp(-g))
                VectorMath.store(silu * VectorMath.load(up + i), out + i)
            }
        }
        for i in (n / 8) * 8..<n { out[i] = gate[i] / (1 + expf(-gate[i])) * up[i] }
    }

    public static func forwardReference(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                                        up: UnsafePointer<Float>, count n: Int) {
        for i in 0..<n {
            let g = Double(gate[i])
            out[i] = Float(g / (1 + exp(-g)) * Double(up[i]))
        }
    }

    /// dgate[n] = dout·up·σ(g)·(1 + g·(1 − σ(g))),  dup[n] = dout·silu(g); both overwritten.
    public static func backward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count n: Int) {
        Parallel.forEachChunk(n / 8, minPerThread: 4096) { chunk in
            for c in chunk {
                let i = c * 8
                let g = VectorMath.load(gate + i), d = VectorMath.load(dout + i)
                let sig = 1 / (1 + VectorMath.exp(-g))
                VectorMath.store(d * VectorMath.load(up + i) * sig * (1 + g * (1 - sig)), dgate + i)
                VectorMath.store(d * g * sig, dup + i)
            }
        }
        for i in (n / 8) * 8..<n {
            let g = gate[i], sig = 1 / (1 + expf(-g))
            dgate[i] = dout[i] * up[i] * sig * (1 + g * (1 - sig))
            dup[i] = dout[i] * g * sig
        }
    }

    public static func backwardReference(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>,
                                         dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count n: Int) {
        for i in 0..<n {
            let g = Double(gate[i]), sig = 1 / (1 + exp(-g)), d = Double(dout[i])
            dgate[i] = Float(d * Double(up[i]) * sig * (1 + g * (1 - sig)))
            dup[i] = Float(d * g * sig)
        }
    }
}

public enum GELU {
    static let k0: Float = 0.7978845608028654  // √(2/π)
    static let k1: Float = 0.044715

    /// out = 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))), GPT-2's gelu_new; tanh(u) = 1 − 2/(e^{2u}+1).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count n: Int) {
        Parallel.forEachChunk(n / 8, minPerThread: 4096) { chunk in
            for c in chunk {
                let i = c * 8
                let x = VectorMath.load(inp + i)
                let u = k0 * (x + k1 * x * x * x)
                let t = 1 - 2 / (VectorMath.exp(2 * u) + 1)
                VectorMath.store(0.5 * x * (1 + t), out + i)
            }
        }
        for i in (n / 8) * 8..<n {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + tanhf(k0 * (x + k1 * x * x * x)))
        }
    }

    public static func forwardReference(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count n: Int) {
        for i in 0..<n {
            let x = Double(inp[i])
            out[i] = Float(0.5 * x * (1 + tanh(Double(k0) * (x + Double(k1) * x * x * x))))
        }
    }

    /// dinp[n] = dout·(0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)), t = tanh(u); overwritten.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, count n: Int) {
        Parallel.forEachChunk(n / 8, minPerThread: 4096) { chunk in
            for c in chunk {
                let i = c * 8
                let x = VectorMath.load(inp + i)
                let x2 = x * x
                let u = k0 * (x + k1 * x2 * x)
                let t = 1 - 2 / (VectorMath.exp(2 * u) + 1)
                let slope: F8 = (1 - t * t) * (k0 * (1 + (3 * k1) * x2))
                let grad: F8 = 0.5 * (1 + t) + 0.5 * x * slope
                VectorMath.store(VectorMath.load(dout + i) * grad, dinp + i)
            }
        }
        for i in (n / 8) * 8..<n {
            let x = inp[i]
            let t = tanhf(k0 * (x + k1 * x * x * x))
            let slope: Float = (1 - t * t) * k0 * (1 + 3 * k1 * x * x)
            dinp[i] = dout[i] * (0.5 * (1 + t) + 0.5 * x * slope)
        }
    }

    public static func backwardReference(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, count n: Int) {
        let (a, b) = (Double(k0), Double(k1))
        for i in 0..<n {
            let x = Double(inp[i]), t = tanh(a * (x + b * x * x * x))
            dinp[i] = Float(Double(dout[i]) * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * a * (1 + 3 * b * x * x)))
        }
    }
}

/// Gemma's MLP nonlinearity: out = gelu_tanh(gate) · up (transformers' gelu_pytorch_tanh, the same
/// tanh approximation as gelu_new), composed from `GELU`.
public enum GeGLU {
    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count n: Int) {
        GELU.forward(out: out, inp: gate, count: n)
        multiply(out, by: up, count: n)
    }

    public static func forwardReference(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count n: Int) {
        GELU.forwardReference(out: out, inp: gate, count: n)
        for i in 0..<n { out[i] = Float(Double(out[i]) * Double(up[i])) }
    }

    /// dgate = dout·up·gelu'(gate), dup = dout·gelu(gate); both overwritten.
    public static func backward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count n: Int) {
        GELU.forward(out: dup, inp: gate, count: n)
        multiply(dup, by: dout, count: n)
        dgate.update(from: dout, count: n)
        multiply(dgate, by: up, count: n)
        // GELU.backward reads each dout element before writing the same element of dinp.
        GELU.backward(dinp: dgate, dout: dgate, inp: gate, count: n)
    }

    public static func backwardReference(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>,
                                         dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count n: Int) {
        let ones = [Float](repeating: 1, count: n)
        GELU.forwardReference(out: dup, inp: gate, count: n)
        ones.withUnsafeBufferPointer { GELU.backwardReference(dinp: dgate, dout: $0.baseAddress!, inp: gate, count: n) }
        for i in 0..<n {
            let d = Double(dout[i])
            dgate[i] = Float(d * Double(up[i]) * Double(dgate[i]))
            dup[i] = Float(d * Double(dup[i]))
        }
    }

    static func multiply(_ x: UnsafeMutablePointer<Float>, by y: UnsafePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n { VectorMath.store(VectorMath.load(x + i) * VectorMath.load(y + i), x + i); i += 8 }
        while i < n { x[i] *= y[i]; i += 1 }
    }
}
