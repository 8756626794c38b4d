#if canImport(Glibc)
import Glibc
#endif

/// RMSNorm (Llama family) and LayerNorm (GPT-2), over rows of C channels. Statistics are kept
/// (rstd, and mean for LayerNorm) because backward needs them.
public enum RMSNorm {
    /// out[N, C] = inp · rsqrt(mean(inp²) + eps) · weight;  rstd[N] saved. With `unitOffset` the scale
    /// is (1 + weight), Gemma's RMSNorm, whose weights are stored as offsets from one.
    public static func forward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>?,
                               inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, N: Int, C: Int, eps: Float,
                               unitOffset: Bool = false) {
        if unitOffset {
            return withUnitOffset(weight, C) { forward(out: out, rstd: rstd, inp: inp, weight: $0, N: N, C: C, eps: eps) }
        }
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
                                        weight: UnsafePointer<Float>, N: Int, C: Int, eps: Float, unitOffset: Bool = false) {
        for r in 0..<N {
            var ss: Double = 0
            for i in 0..<C { ss += Double(inp[r * C + i]) * Double(inp[r * C + i]) }
            let s = 1 / (ss / Double(C) + Double(eps)).squareRoot()
            for i in 0..<C { out[r * C + i] = Float(Double(inp[r * C + i]) * s) * (weight[i] + (unitOffset ? 1 : 0)) }
        }
    }

    /// Runs `body` with (1 + weight[c]) in a temporary: the unit-offset norm is the plain one on it, in
    /// forward (the scale) and backward (dinp); dweight does not depend on the weight at all.
    static func withUnitOffset<R>(_ weight: UnsafePointer<Float>, _ C: Int, _ body: (UnsafePointer<Float>) -> R) -> R {
        let shifted = UnsafeMutablePointer<Float>.allocate(capacity: C)
        defer { shifted.deallocate() }
        for i in 0..<C { shifted[i] = 1 + weight[i] }
        return body(shifted)
    }
}

extension RMSNorm {
    /// Backward with the saved rstd s[N]: for dyw = dout·weight,
    ///   dinp[N, C]  += s·(dyw − inp·s²·mean(dyw·inp))
    ///   dweight[C]  += Σ_rows dout·inp·s
    public static func backward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                rstd: UnsafePointer<Float>, N: Int, C: Int, unitOffset: Bool = false) {
        if unitOffset {
            return withUnitOffset(weight, C) {
                backward(dinp: dinp, dweight: dweight, dout: dout, inp: inp, weight: $0, rstd: rstd, N: N, C: C)
            }
        }
        Parallel.forEachChunk(N, minPerThread: 16) { rows in
            for r in rows {
                let x = inp + r * C, dy = dout + r * C, dx = dinp + r * C
                let s = rstd[r]
                var acc = F8(), i = 0
                while i + 8 <= C { acc += VectorMath.load(dy + i) * VectorMath.load(weight + i) * VectorMath.load(x + i); i += 8 }
                var dot = acc.sum()
                while i < C { dot += dy[i] * weight[i] * x[i]; i += 1 }
                let k = s * s * dot / Float(C)
                let sv = F8(repeating: s), kv = F8(repeating: k)
                i = 0
                while i + 8 <= C {
                    let g = VectorMath.load(dy + i) * VectorMath.load(weight + i) - VectorMath.load(x + i) * kv
                    VectorMath.store(VectorMath.load(dx + i) + sv * g, dx + i)
                    i += 8
                }
                while i < C { dx[i] += s * (dy[i] * weight[i] - x[i] * k); i += 1 }
            }
        }
        // Frozen weights (adapter training) need only the input gradient.
        if let dweight { NormWeightGradient.accumulate(dweight: dweight, dbias: nil, dout: dout, inp: inp, mean: nil, rstd: rstd, N: N, C: C) }
    }

    public static func backwardReference(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>,
                                         dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                         N: Int, C: Int, eps: Float, unitOffset: Bool = false) {
        let offset: Double = unitOffset ? 1 : 0
        for r in 0..<N {
            var ss: Double = 0, dot: Double = 0
            for i in 0..<C { let x = Double(inp[r * C + i]); ss += x * x; dot += Double(dout[r * C + i]) * (Double(weight[i]) + offset) * x }
            let s = 1 / (ss / Double(C) + Double(eps)).squareRoot()
            for i in 0..<C {
                let x = Double(inp[r * C + i]), dy = Double(dout[r * C + i])
                dinp[r * C + i] += Float(s * (dy * (Double(weight[i]) + offset) - x * s * s * dot / Double(C)))
                dweight[i] += Float(dy * x * s)
            }
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

    /// Mean and 1/std of one row in f64, two-pass, for the references.
    static func referenceStatistics(_ x: UnsafePointer<Float>, C: Int, eps: Float) -> (mean: Double, rstd: Double) {
        var m: Double = 0
        for i in 0..<C { m += Double(x[i]) }
        m /= Double(C)
        var v: Double = 0
        for i in 0..<C { let d = Double(x[i]) - m; v += d * d }
        return (m, 1 / (v / Double(C) + Double(eps)).squareRoot())
    }

    public static func forwardReference(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                                        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
        for r in 0..<N {
            let (m, s) = referenceStatistics(inp + r * C, C: C, eps: eps)
            for i in 0..<C { out[r * C + i] = Float((Double(inp[r * C + i]) - m) * s) * weight[i] + bias[i] }
        }
    }
}

extension LayerNorm {
    /// Backward with the saved mean m[N] and rstd s[N]: for n = (inp − m)·s and dn = dout·weight,
    ///   dinp[N, C]  += s·(dn − mean(dn) − n·mean(dn·n))
    ///   dweight[C]  += Σ_rows dout·n,   dbias[C] += Σ_rows dout
    public static func backward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                N: Int, C: Int) {
        Parallel.forEachChunk(N, minPerThread: 16) { rows in
            for r in rows {
                let x = inp + r * C, dy = dout + r * C, dx = dinp + r * C
                let m = mean[r], s = rstd[r]
                let mv = F8(repeating: m), sv = F8(repeating: s)
                var a0 = F8(), a1 = F8(), i = 0
                while i + 8 <= C {
                    let dn = VectorMath.load(dy + i) * VectorMath.load(weight + i)
                    a0 += dn
                    a1 += dn * (VectorMath.load(x + i) - mv) * sv
                    i += 8
                }
                var sumDn = a0.sum(), sumDnN = a1.sum()
                while i < C { let dn = dy[i] * weight[i]; sumDn += dn; sumDnN += dn * (x[i] - m) * s; i += 1 }
                let meanDn = sumDn / Float(C), meanDnN = sumDnN / Float(C)
                let mdv = F8(repeating: meanDn), mdnv = F8(repeating: meanDnN)
                i = 0
                while i + 8 <= C {
                    let n = (VectorMath.load(x + i) - mv) * sv
                    let dn = VectorMath.load(dy + i) * VectorMath.load(weight + i)
                    VectorMath.store(VectorMath.load(dx + i) + sv * (dn - mdv - n * mdnv), dx + i)
                    i += 8
                }
                while i < C {
                    let n = (x[i] - m) * s
                    dx[i] += s * (dy[i] * weight[i] - meanDn - n * meanDnN)
                    i += 1
                }
            }
        }
        if let dweight { NormWeightGradient.accumulate(dweight: dweight, dbias: dbias, dout: dout, inp: inp, mean: mean, rstd: rstd, N: N, C: C) }
    }

    public static func backwardReference(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>,
                                         dbias: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                         weight: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
        for r in 0..<N {
            let (m, s) = referenceStatistics(inp + r * C, C: C, eps: eps)
            var meanDn: Double = 0, meanDnN: Double = 0
            for i in 0..<C {
                let dn = Double(dout[r * C + i]) * Double(weight[i])
                meanDn += dn / Double(C)
                meanDnN += dn * (Double(inp[r * C + i]) - m) * s / Double(C)
            }
            for i in 0..<C {
                let n = (Double(inp[r * C + i]) - m) * s, dy = Double(dout[r * C + i])
                dinp[r * C + i] += Float(s * (dy * Double(weight[i]) - meanDn - n * meanDnN))
                dweight[i] += Float(dy * n)
                dbias[i] += Float(dy)
            }
        }
    }
}

/// The weight (and bias) gradients of both norms: sums over rows, split by column blocks so threads
/// never write the same element. inp is normalised on the fly from the saved statistics (mean 0 for RMSNorm).
enum NormWeightGradient {
    static func accumulate(dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?,
                           dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, mean: UnsafePointer<Float>?,
                           rstd: UnsafePointer<Float>, N: Int, C: Int) {
        Parallel.forEachChunk((C + 31) / 32, minPerThread: max(1, 16384 / max(N * 32, 1))) { blocks in
            let lo = blocks.lowerBound * 32, hi = min(C, blocks.upperBound * 32)
            for r in 0..<N {
                let x = inp + r * C, dy = dout + r * C
                let m = mean?[r] ?? 0, s = rstd[r]
                let mv = F8(repeating: m), sv = F8(repeating: s)
                var i = lo
                while i + 8 <= hi {
                    let g = VectorMath.load(dy + i)
                    VectorMath.store(VectorMath.load(dweight + i) + g * (VectorMath.load(x + i) - mv) * sv, dweight + i)
                    if let dbias { VectorMath.store(VectorMath.load(dbias + i) + g, dbias + i) }
                    i += 8
                }
                while i < hi {
                    dweight[i] += dy[i] * (x[i] - m) * s
                    dbias?[i] += dy[i]
                    i += 1
                }
            }
        }
    }
}
