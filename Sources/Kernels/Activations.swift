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
