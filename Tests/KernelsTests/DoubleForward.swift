import Foundation
@testable import Kernels

/// The forward definitions in f64, written independently of the kernels, for finite-difference checks.
enum DoubleForward {
    /// out[M, N] = x[M, K]·W + b, W per layout ([N, K] outIn, [K, N] inOut).
    static func matmul(_ x: [Double], _ w: [Double], _ b: [Double], M: Int, K: Int, N: Int, layout: WeightLayout) -> [Double] {
        var out = [Double](repeating: 0, count: M * N)
        for m in 0..<M {
            for n in 0..<N {
                var s = b[n]
                for k in 0..<K { s += x[m * K + k] * (layout == .outIn ? w[n * K + k] : w[k * N + n]) }
                out[m * N + n] = s
            }
        }
        return out
    }

    static func rmsNorm(_ x: [Double], _ w: [Double], N: Int, C: Int, eps: Double) -> [Double] {
        var out = x
        for r in 0..<N {
            let row = x[(r * C)..<(r * C + C)]
            let s = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(C) + eps).squareRoot()
            for i in 0..<C { out[r * C + i] = x[r * C + i] * s * w[i] }
        }
        return out
    }

    static func layerNorm(_ x: [Double], _ w: [Double], _ b: [Double], N: Int, C: Int, eps: Double) -> [Double] {
        var out = x
        for r in 0..<N {
            let row = x[(r * C)..<(r * C + C)]
            let m = row.reduce(0, +) / Double(C)
            let v = row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(C)
            let s = 1 / (v + eps).squareRoot()
            for i in 0..<C { out[r * C + i] = (x[r * C + i] - m) * s * w[i] + b[i] }
        }
        return out
    }

    /// rotate_half RoPE with the kernel's f32 angles (the angle is a constant of the rotation).
    static func rope(_ x: [Double], invFreq: [Float], N: Int, heads: Int, headDim: Int, positions: [Int32]) -> [Double] {
        var out = x
        let half = headDim / 2
        for t in 0..<N {
            for h in 0..<heads {
                let base = (t * heads + h) * headDim
                for i in 0..<half {
                    let angle = Double(Float(positions[t]) * invFreq[i])
                    let (a, b) = (x[base + i], x[base + i + half])
                    out[base + i] = a * cos(angle) - b * sin(angle)
                    out[base + i + half] = b * cos(angle) + a * sin(angle)
                }
            }
        }
        return out
    }

    static func attention(_ q: [Double], _ k: [Double], _ v: [Double], N: Int, spans: [AttentionSpan], shape: AttentionShape) -> [Double] {
        var out = [Double](repeating: 0, count: N * shape.qDim)
        let hd = shape.headDim
        for span in spans {
            for h in 0..<shape.heads {
                let g = h / (shape.heads / shape.kvHeads)
                for i in 0..<span.qLen {
                    let qi = (span.qStart + i) * shape.qDim + h * hd
                    let visible = span.past + i + 1
                    let scores = (0..<visible).map { j -> Double in
                        let kj = (span.kvStart + j) * shape.kvDim + g * hd
                        return (0..<hd).reduce(0) { $0 + q[qi + $1] * k[kj + $1] } / Double(hd).squareRoot()
                    }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let z = e.reduce(0, +)
                    for d in 0..<hd {
                        out[qi + d] = (0..<visible).reduce(0) { $0 + e[$1] / z * v[(span.kvStart + $1) * shape.kvDim + g * hd + d] }
                    }
                }
            }
        }
        return out
    }

    /// Σ over labelled rows of −log softmax(h·Wᵀ)[target].
    static func lmHeadLoss(_ h: [Double], _ w: [Double], targets: [Int32], H: Int, V: Int) -> Double {
        var total: Double = 0
        for (n, t) in targets.enumerated() where t >= 0 {
            let z = (0..<V).map { v in (0..<H).reduce(0.0) { $0 + h[n * H + $1] * w[v * H + $1] } }
            let m = z.max()!
            total += log(z.reduce(0) { $0 + exp($1 - m) }) + m - z[Int(t)]
        }
        return total
    }
}
