import COpenBLAS

/// Dense layers. Weights stay in the Hugging Face layout they were loaded in, so export is a copy:
/// `nn.Linear` stores [out, in] (y = x·Wᵀ + b), GPT-2's `Conv1D` stores [in, out] (y = x·W + b).
public enum WeightLayout: Sendable {
    case outIn
    case inOut
}

public enum Matmul {
    /// out[M, N] = inp[M, K] · W + bias[N] (W per `layout`); `accumulate` adds into out instead.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               M: Int, K: Int, N: Int, layout: WeightLayout, accumulate: Bool = false) {
        guard M > 0, N > 0 else { return }
        var beta: Float = accumulate ? 1 : 0
        if let bias, !accumulate {
            for m in 0..<M { (out + m * N).update(from: bias, count: N) }
            beta = 1
        } else if let bias {
            for m in 0..<M { let row = out + m * N; for n in 0..<N { row[n] += bias[n] } }
        }
        let transB = layout == .outIn ? CblasTrans : CblasNoTrans
        let ldb = layout == .outIn ? K : N
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transB, Int32(M), Int32(N), Int32(K),
                    1, inp, Int32(K), weight, Int32(ldb), beta, out, Int32(N))
    }

    /// The plain definition, kept beside the BLAS path so a test can hold them together.
    public static func forwardReference(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                                        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                        M: Int, K: Int, N: Int, layout: WeightLayout) {
        for m in 0..<M {
            for n in 0..<N {
                var s: Double = bias.map { Double($0[n]) } ?? 0
                for k in 0..<K {
                    let w = layout == .outIn ? weight[n * K + k] : weight[k * N + n]
                    s += Double(inp[m * K + k]) * Double(w)
                }
                out[m * N + n] = Float(s)
            }
        }
    }

    /// C[M, N] (+)= α · op(A) · op(B), row-major with explicit leading dimensions: the building block
    /// attention uses on strided per-head views.
    @inlinable
    public static func gemm(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float = 1,
                            A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, C: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(M), Int32(N), Int32(K), alpha, A, Int32(lda), B, Int32(ldb), beta, C, Int32(ldc))
    }
}
