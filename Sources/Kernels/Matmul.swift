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

    /// Backward of `forward` for out = inp·W + b, where W has row stride `ldw` (default: packed; a column
    /// block of GPT-2's fused c_attn passes 3H). Shapes: dout[M, N], inp[M, K], W and dweight per `layout`.
    ///   dinp[M, K]  = dout · Wᵀ (outIn: dout·W)   overwritten, or added when `accumulateInput`
    ///   dweight    += outIn: doutᵀ · inp [N, K];  inOut: inpᵀ · dout [K, N]
    ///   dbias[N]   += Σ_rows dout
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                M: Int, K: Int, N: Int, layout: WeightLayout, ldw: Int? = nil,
                                accumulateInput: Bool = false) {
        guard M > 0, N > 0, K > 0 else { return }
        let ld = ldw ?? (layout == .outIn ? K : N)
        if let dinp {
            gemm(transA: false, transB: layout == .inOut, M: M, N: K, K: N, A: dout, lda: N, B: weight, ldb: ld,
                 beta: accumulateInput ? 1 : 0, C: dinp, ldc: K)
        }
        if let dweight {
            if layout == .outIn {
                gemm(transA: true, transB: false, M: N, N: K, K: M, A: dout, lda: N, B: inp, ldb: K, beta: 1, C: dweight, ldc: ld)
            } else {
                gemm(transA: true, transB: false, M: K, N: N, K: M, A: inp, lda: K, B: dout, ldb: N, beta: 1, C: dweight, ldc: ld)
            }
        }
        if let dbias { columnSums(into: dbias, dout, rows: M, columns: N) }
    }

    /// acc[N] += Σ_m x[m, N], split by column blocks so threads never write the same element.
    public static func columnSums(into acc: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows M: Int, columns N: Int) {
        Parallel.forEachChunk((N + 63) / 64, minPerThread: max(1, 65536 / max(M * 64, 1))) { blocks in
            let lo = blocks.lowerBound * 64, hi = min(N, blocks.upperBound * 64)
            for m in 0..<M { Residual.add(acc + lo, x + m * N + lo, count: hi - lo) }
        }
    }

    /// Plain definition of `backward` in f64 (packed weight, dinp overwritten, dweight/dbias added).
    public static func backwardReference(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>,
                                         dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                         inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                         M: Int, K: Int, N: Int, layout: WeightLayout) {
        func wIndex(_ n: Int, _ k: Int) -> Int { layout == .outIn ? n * K + k : k * N + n }
        for m in 0..<M {
            for k in 0..<K {
                var s: Double = 0
                for n in 0..<N { s += Double(dout[m * N + n]) * Double(weight[wIndex(n, k)]) }
                dinp[m * K + k] = Float(s)
            }
        }
        for n in 0..<N {
            for k in 0..<K {
                var s: Double = 0
                for m in 0..<M { s += Double(dout[m * N + n]) * Double(inp[m * K + k]) }
                dweight[wIndex(n, k)] += Float(s)
            }
            if let dbias {
                var s: Double = 0
                for m in 0..<M { s += Double(dout[m * N + n]) }
                dbias[n] += Float(s)
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
