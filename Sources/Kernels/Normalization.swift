#if canImport(Glibc)
import Glibc
#endif

/// RMSNorm (Llama family) and LayerNorm (GPT-2), over rows of C channels. Statistics are kept
/// (rstd, and mean for LayerNorm) because backward needs them.
public enum RMSNorm {
    /// out[N, C] = inp · rsqrt(mean(inp²) + eps) · weight;  rstd[N] saved.
    public static func forward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>?,
                               inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
        Parallel.forEachChunk(N, minPerThread: 16) { rows in
            for r in rows {
                let x = inp + r * C, y = out + r * C
                let ms = VectorMath.dot(x, x, C) / Float(C)
                let s = 1 / (ms + eps).squareRoot()
                rstd?[r] = s
                var i = 0
                let sv = F8(repeating: s)
                while i + 8 <= C {
                    VectorMath.store(VectorMath.load(x + i) * sv * VectorMath.load(weight + i), y + i)
                    i += 8
                }
                while i < C { y[i] = x[i] * s * weight[i]; i += 1 }
            }
        }
    }

    public static func forwardReference(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                                        weight: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
        for r in 0..<N {
            var ss: Double = 0
            for i in 0..<C { ss += Double(inp[r * C + i]) * Double(inp[r * C + i]) }
            let s = 1 / (ss / Double(C) + Double(eps)).squareRoot()
            for i in 0..<C { out[r * C + i] = Float(Double(inp[r * C + i]) * s) * weight[i] }
        }
    }
}

public enum LayerNorm {
    /// out[N, C] = (inp − mean) · rstd · weight + bias;  mean[N], rstd[N] saved.
    public static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?,
                               rstd: UnsafeMutablePointer<Float>?, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
        Parallel.forEachChunk(N, minPerThread: 16) { rows in
            for r in rows {
                let x = inp + r * C, y = out + r * C
                let m = VectorMath.sum(x, C) / Float(C)
                // Two-pass variance: the one-pass form loses digits when |mean| ≫ std.
                var acc = F8()
                var i = 0
                let mv = F8(repeating: m)
                while i + 8 <= C { let d = VectorMath.load(x + i) - mv; acc += d * d; i += 8 }
                var v = acc.sum()
                while i < C { let d = x[i] - m; v += d * d; i += 1 }
                let s = 1 / (v / Float(C) + eps).squareRoot()
                mean?[r] = m
                rstd?[r] = s
                i = 0
                let sv = F8(repeating: s)
                while i + 8 <= C {
                    let n = (VectorMath.load(x + i) - mv) * sv
                    VectorMath.store(n * VectorMath.load(weight + i) + VectorMath.load(bias + i), y + i)
                    i += 8
                }
                while i < C { y[i] = (x[i] - m) * s * weight[i] + bias[i]; i += 1 }
            }
        }
    }

    public static func forwardReference(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                                        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
        for r in 0..<N {
            var m: Double = 0
            for i in 0..<C { m += Double(inp[r * C + i]) }
            m /= Double(C)
            var v: Double = 0
            for i in 0..<C { let d = Double(inp[r * C + i]) - m; v += d * d }
            let s = 1 / (v / Double(C) + Double(eps)).squareRoot()
            for i in 0..<C { out[r * C + i] = Float((Double(inp[r * C + i]) - m) * s) * weight[i] + bias[i] }
        }
    }
}
