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
}

