#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Rotary position embedding as transformers does it: rotate_half on split halves (not interleaved),
/// inverse frequencies computed in f32 exactly as `_compute_default_rope_parameters` does, with the
/// linear and llama3 frequency scalings.
public struct RotaryEmbedding: Sendable {
    public enum Scaling: Sendable, Equatable {
        case none
        case linear(factor: Float)
        case llama3(factor: Float, lowFreqFactor: Float, highFreqFactor: Float, originalMaxPositions: Int)
    }

    public let headDim: Int
    public let invFreq: [Float]
    /// cos/sin tables [positions, headDim/2], grown on demand.
    public private(set) var cosTable: [Float] = []
    public private(set) var sinTable: [Float] = []
    public private(set) var positions = 0

    public init(headDim: Int, theta: Float, scaling: Scaling) {
        self.headDim = headDim
        let half = headDim / 2
        var inv = (0..<half).map { i -> Float in
            1 / powf(theta, Float(2 * i) / Float(headDim))
        }
        switch scaling {
        case .none: break
        case .linear(let factor): inv = inv.map { $0 / factor }
        case .llama3(let factor, let low, let high, let orig):
            let lowWavelen = Float(orig) / low
            let highWavelen = Float(orig) / high
            inv = inv.map { f in
                let wavelen = 2 * Float.pi / f
                if wavelen > lowWavelen { return f / factor }
                if wavelen < highWavelen { return f }
                let s = (Float(orig) / wavelen - low) / (high - low)
                return (1 - s) * f / factor + s * f
            }
        }
        invFreq = inv
    }

    /// Makes sure the tables cover positions 0..<n.
    public mutating func reserve(positions n: Int) {
        guard n > positions else { return }
        let half = headDim / 2
        let target = Swift.max(n, positions * 2)
        cosTable.reserveCapacity(target * half)
        sinTable.reserveCapacity(target * half)
        for p in positions..<target {
            for i in 0..<half {
                // f32 product as transformers' f32 matmul of inv_freq by position ids gives it.
                let angle = Float(p) * invFreq[i]
                cosTable.append(cosf(angle))
                sinTable.append(sinf(angle))
            }
        }
        positions = target
    }

    /// Rotates x[N, heads·headDim] in place; token t at position pos[t]. Call `reserve` first.
    public func apply(_ x: UnsafeMutablePointer<Float>, N: Int, heads: Int, positions pos: UnsafePointer<Int32>) {
        rotate(x, N: N, heads: heads, positions: pos, sinSign: 1)
    }

    /// Backward of `apply`, in place on the gradient dx[N, heads·headDim]: the rotation is orthogonal, so
    /// its transpose is the rotation by −angle (sin negated).
    public func applyBackward(_ dx: UnsafeMutablePointer<Float>, N: Int, heads: Int, positions pos: UnsafePointer<Int32>) {
        rotate(dx, N: N, heads: heads, positions: pos, sinSign: -1)
    }

    /// Plain backward: da = dx1·cos + dx2·sin, db = dx2·cos − dx1·sin per rotated pair, in f64.
    public func applyBackwardReference(_ dx: UnsafeMutablePointer<Float>, N: Int, heads: Int, positions pos: UnsafePointer<Int32>) {
        let half = headDim / 2
        for t in 0..<N {
            for h in 0..<heads {
                let v = dx + (t * heads + h) * headDim
                for i in 0..<half {
                    let angle = Double(Float(pos[t]) * invFreq[i])
                    let (c, s) = (Foundation.cos(angle), Foundation.sin(angle))
                    let (g1, g2) = (Double(v[i]), Double(v[i + half]))
                    v[i] = Float(g1 * c + g2 * s)
                    v[i + half] = Float(g2 * c - g1 * s)
                }
            }
        }
    }

    private func rotate(_ x: UnsafeMutablePointer<Float>, N: Int, heads: Int, positions pos: UnsafePointer<Int32>, sinSign: Float) {
        let half = headDim / 2
        let sign = F8(repeating: sinSign)
        cosTable.withUnsafeBufferPointer { cosT in
            sinTable.withUnsafeBufferPointer { sinT in
                Parallel.forEachChunk(N, minPerThread: 32) { rows in
                    for t in rows {
                        let c = cosT.baseAddress! + Int(pos[t]) * half
                        let s = sinT.baseAddress! + Int(pos[t]) * half
                        for h in 0..<heads {
                            let x1 = x + (t * heads + h) * headDim
                            let x2 = x1 + half
                            var i = 0
                            while i + 8 <= half {
                                let a = VectorMath.load(x1 + i), b = VectorMath.load(x2 + i)
                                let cv = VectorMath.load(c + i), sv = VectorMath.load(s + i) * sign
                                VectorMath.store(a * cv - b * sv, x1 + i)
                                VectorMath.store(b * cv + a * sv, x2 + i)
                                i += 8
                            }
                            while i < half {
                                let a = x1[i], b = x2[i], si = s[i] * sinSign
                                x1[i] = a * c[i] - b * si
                                x2[i] = b * c[i] + a * si
                                i += 1
                            }
                        }
                    }
                }
            }
        }
    }

    /// Plain definition: q' = q·cos + rotate_half(q)·sin with emb = cat(freqs, freqs).
    public func applyReference(_ x: UnsafeMutablePointer<Float>, N: Int, heads: Int, positions pos: UnsafePointer<Int32>) {
        let half = headDim / 2
        var tmp = [Float](repeating: 0, count: headDim)
        for t in 0..<N {
            for h in 0..<heads {
                let v = x + (t * heads + h) * headDim
                for d in 0..<headDim {
                    let angle = Float(pos[t]) * invFreq[d % half]
                    let rotated = d < half ? -v[d + half] : v[d - half]
                    tmp[d] = v[d] * cosf(angle) + rotated * sinf(angle)
                }
                for d in 0..<headDim { v[d] = tmp[d] }
            }
        }
    }
}
