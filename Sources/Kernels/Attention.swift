#if canImport(Glibc)
import Glibc
#endif

/// One independent attention span: query rows `qStart..<qStart+qLen` attend causally to key/value
/// rows `kvStart..<kvStart+past+qLen`, query i seeing keys up to past+i. A packed training row is
/// several spans (attention never crosses an example), a padded batch is one span per row, and
/// incremental decoding is one span whose keys come from the KV cache (`past` cached tokens).
public struct AttentionSpan: Sendable, Equatable {
    public var qStart: Int
    public var qLen: Int
    public var kvStart: Int
    public var past: Int

    public init(qStart: Int, qLen: Int, kvStart: Int? = nil, past: Int = 0) {
        self.qStart = qStart
        self.qLen = qLen
        self.kvStart = kvStart ?? qStart
        self.past = past
    }

    public var kLen: Int { past + qLen }
}

public struct AttentionShape: Sendable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    public init(heads: Int, kvHeads: Int, headDim: Int) {
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
    }
    public var qDim: Int { heads * headDim }
    public var kvDim: Int { kvHeads * headDim }
    /// GQA: each KV head serves a contiguous group of query heads.
    public func kvHead(of h: Int) -> Int { h / (heads / kvHeads) }
    public var scale: Float { 1 / Float(headDim).squareRoot() }

    /// Floats of attention probabilities the spans produce (what backward keeps).
    public func probsCount(_ spans: [AttentionSpan]) -> Int { spans.reduce(0) { $0 + heads * $1.qLen * $1.kLen } }
}

public enum Attention {
    /// out[N, heads·hd] = softmax(q·kᵀ·scale, causal per span)·v for q[N, heads·hd], k/v[rows, kvHeads·hd].
    /// `probs`, when given, receives each (span, head)'s [qLen, kLen] probability block in order
    /// (span-major, then head): backward needs them. `scale` defaults to head_dim^-0.5. With a `window`,
    /// query i sees only keys j with i − j < window (transformers' sliding-window layers); the keys it
    /// no longer sees get probability exactly 0.
    public static func forward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                               q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               spans: [AttentionSpan], shape: AttentionShape, scale: Float? = nil, window: Int? = nil) {
        let scale = scale ?? shape.scale
        var units: [(span: AttentionSpan, h: Int, offset: Int)] = []
        var offset = 0
        for span in spans {
            for h in 0..<shape.heads {
                units.append((span, h, offset))
                offset += span.qLen * span.kLen
            }
        }
        let maxBlock = max(1, spans.map { $0.qLen * $0.kLen }.max() ?? 0)
        // Heads are many small matrix products: one head per thread with single-threaded BLAS beats
        // BLAS splitting each small product across threads (measured 1.7x on the 135M model's heads).
        let parallelHeads = parallelHeadsEnabled && Parallel.threads > 1 && units.count >= Parallel.threads
        func run(_ chunk: Range<Int>, parallelRows: Bool) {
            let scratch = probs == nil ? UnsafeMutablePointer<Float>.allocate(capacity: maxBlock) : nil
            defer { scratch?.deallocate() }
            for u in chunk {
                head(out: out, p: probs.map { $0 + units[u].offset } ?? scratch!, q: q, k: k, v: v,
                     span: units[u].span, h: units[u].h, shape: shape, scale: scale, window: window, parallelRows: parallelRows)
            }
        }
        if parallelHeads {
            Parallel.withSingleThreadedBLAS {
                Parallel.forEachChunk(units.count) { run($0, parallelRows: false) }
            }
        } else {
            run(0..<units.count, parallelRows: true)
        }
    }

    /// Query rows go in blocks, and each block's products stop at the last key its last row can see, so
    /// the fully masked part of the causal square is never computed (about a third of the work at T=256).
    static let rowBlock = 64
    /// Off only to measure the alternative (the benchmark's attention section).
    nonisolated(unsafe) public static var parallelHeadsEnabled = true

    private static func head(out: UnsafeMutablePointer<Float>, p: UnsafeMutablePointer<Float>,
                             q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             span: AttentionSpan, h: Int, shape: AttentionShape, scale: Float, window: Int?,
                             parallelRows: Bool) {
        let hd = shape.headDim, g = shape.kvHead(of: h)
        let qh = q + span.qStart * shape.qDim + h * hd
        let kh = k + span.kvStart * shape.kvDim + g * hd
        let vh = v + span.kvStart * shape.kvDim + g * hd
        let oh = out + span.qStart * shape.qDim + h * hd
        let (qLen, kLen, past) = (span.qLen, span.kLen, span.past)
        var i0 = 0
        while i0 < qLen {
            let rows = min(rowBlock, qLen - i0)
            let keys = min(kLen, past + i0 + rows)
            let pb = p + i0 * kLen
            // scores[rows, keys] = scale · Q·Kᵀ; entries past each row's own limit are overwritten below.
            Matmul.gemm(transA: false, transB: true, M: rows, N: keys, K: hd, alpha: scale,
                        A: qh + i0 * shape.qDim, lda: shape.qDim, B: kh, ldb: shape.kvDim, C: pb, ldc: kLen)
            let softmaxRows = { (range: Range<Int>) in
                for i in range {
                    let row = pb + i * kLen
                    let visible = past + i0 + i + 1
                    // Keys before `first` are outside the window: zero, and left out of the softmax.
                    let first = window.map { Swift.max(0, visible - $0) } ?? 0
                    if first > 0 { row.update(repeating: 0, count: first) }
                    let m = VectorMath.max(row + first, visible - first)
                    let s = VectorMath.expShiftSum(row + first, visible - first, shift: m)
                    VectorMath.scale(row + first, visible - first, by: 1 / s)
                    // Backward reads the whole [qLen, kLen] square: the masked part must be exact zeros.
                    if visible < kLen { (row + visible).update(repeating: 0, count: kLen - visible) }
                }
            }
            if parallelRows { Parallel.forEachChunk(rows, minPerThread: 32, softmaxRows) } else { softmaxRows(0..<rows) }
            Matmul.gemm(transA: false, transB: false, M: rows, N: hd, K: keys,
                        A: pb, lda: kLen, B: vh, ldb: shape.kvDim, C: oh + i0 * shape.qDim, ldc: shape.qDim)
            i0 += rows
        }
    }

    /// The plain definition in f64, one score at a time.
    public static func forwardReference(out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
                                        k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                        spans: [AttentionSpan], shape: AttentionShape, scale: Float? = nil, window: Int? = nil) {
        let hd = shape.headDim, scale = Double(scale ?? shape.scale)
        for span in spans {
            for h in 0..<shape.heads {
                let g = shape.kvHead(of: h)
                for i in 0..<span.qLen {
                    let qi = q + (span.qStart + i) * shape.qDim + h * hd
                    let visible = span.past + i + 1
                    let first = window.map { max(0, visible - $0) } ?? 0
                    var scores = [Double](repeating: -.infinity, count: visible)
                    for j in first..<visible {
                        let kj = k + (span.kvStart + j) * shape.kvDim + g * hd
                        var s: Double = 0
                        for d in 0..<hd { s += Double(qi[d]) * Double(kj[d]) }
                        scores[j] = s * scale
                    }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let z = e.reduce(0, +)
                    let o = out + (span.qStart + i) * shape.qDim + h * hd
                    for d in 0..<hd {
                        var acc: Double = 0
                        for j in 0..<visible { acc += e[j] / z * Double(v[(span.kvStart + j) * shape.kvDim + g * hd + d]) }
                        o[d] = Float(acc)
                    }
                }
            }
        }
    }
}

extension Attention {
    /// Backward of `forward` from the probabilities it saved (same span-major, head order), per (span, head)
    /// with P[qLen, kLen], dO[qLen, hd]:
    ///   dP = dO·Vᵀ,  dS = scale · P ⊙ (dP − rowsum(P ⊙ dP)),  dQ = dS·K,  dK += dSᵀ·Q,  dV += Pᵀ·dO.
    /// dq[N, heads·hd] is overwritten; dk, dv[rows, kvHeads·hd] are added to (zero them first): the query
    /// heads of a GQA group all add into their KV head. Masked probabilities are 0, so their dS is 0.
    public static func backward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                                dv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                spans: [AttentionSpan], shape: AttentionShape, scale: Float? = nil) {
        let scale = scale ?? shape.scale
        let maxBlock = spans.map { $0.qLen * $0.kLen }.max() ?? 0
        let dS = UnsafeMutablePointer<Float>.allocate(capacity: max(maxBlock, 1))
        defer { dS.deallocate() }
        let (hd, qDim, kvDim) = (shape.headDim, shape.qDim, shape.kvDim)
        var offset = 0
        for span in spans {
            let (qLen, kLen) = (span.qLen, span.kLen)
            for h in 0..<shape.heads {
                let p = probs + offset
                offset += qLen * kLen
                let g = shape.kvHead(of: h)
                let qh = q + span.qStart * qDim + h * hd, dqh = dq + span.qStart * qDim + h * hd
                let doh = dout + span.qStart * qDim + h * hd
                let kh = k + span.kvStart * kvDim + g * hd, dkh = dk + span.kvStart * kvDim + g * hd
                let vh = v + span.kvStart * kvDim + g * hd, dvh = dv + span.kvStart * kvDim + g * hd
                Matmul.gemm(transA: false, transB: true, M: qLen, N: kLen, K: hd, A: doh, lda: qDim, B: vh, ldb: kvDim,
                            C: dS, ldc: kLen)
                Matmul.gemm(transA: true, transB: false, M: kLen, N: hd, K: qLen, A: p, lda: kLen, B: doh, ldb: qDim,
                            beta: 1, C: dvh, ldc: kvDim)
                let past = span.past
                Parallel.forEachChunk(qLen, minPerThread: 64) { rows in
                    for i in rows {
                        let pr = p + i * kLen, dr = dS + i * kLen
                        let visible = past + i + 1
                        let rowDot = VectorMath.dot(pr, dr, visible)
                        let pv = F8(repeating: rowDot), sv = F8(repeating: scale)
                        var j = 0
                        while j + 8 <= visible {
                            VectorMath.store(sv * VectorMath.load(pr + j) * (VectorMath.load(dr + j) - pv), dr + j)
                            j += 8
                        }
                        while j < visible { dr[j] = scale * pr[j] * (dr[j] - rowDot); j += 1 }
                        if visible < kLen { (dr + visible).update(repeating: 0, count: kLen - visible) }
                    }
                }
                Matmul.gemm(transA: false, transB: false, M: qLen, N: hd, K: kLen, A: dS, lda: kLen, B: kh, ldb: kvDim,
                            C: dqh, ldc: qDim)
                Matmul.gemm(transA: true, transB: false, M: kLen, N: hd, K: qLen, A: dS, lda: kLen, B: qh, ldb: qDim,
                            beta: 1, C: dkh, ldc: kvDim)
            }
        }
    }

    /// Plain backward in f64 that recomputes the probabilities itself; same contract as `backward`.
    public static func backwardReference(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                                         dv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                         q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                         spans: [AttentionSpan], shape: AttentionShape, scale: Float? = nil, window: Int? = nil) {
        let hd = shape.headDim, scale = Double(scale ?? shape.scale)
        for span in spans {
            for h in 0..<shape.heads {
                let g = shape.kvHead(of: h)
                func qi(_ i: Int, _ d: Int) -> Int { (span.qStart + i) * shape.qDim + h * hd + d }
                func kj(_ j: Int, _ d: Int) -> Int { (span.kvStart + j) * shape.kvDim + g * hd + d }
                for i in 0..<span.qLen {
                    let visible = span.past + i + 1
                    let first = window.map { max(0, visible - $0) } ?? 0
                    var s = (0..<visible).map { j in
                        j < first ? -Double.infinity : (0..<hd).reduce(0.0) { $0 + Double(q[qi(i, $1)]) * Double(k[kj(j, $1)]) } * scale
                    }
                    let m = s.max()!
                    s = s.map { exp($0 - m) }
                    let z = s.reduce(0, +)
                    let p = s.map { $0 / z }
                    let dp = (0..<visible).map { j in (0..<hd).reduce(0.0) { $0 + Double(dout[qi(i, $1)]) * Double(v[kj(j, $1)]) } }
                    let rowDot = zip(p, dp).reduce(0.0) { $0 + $1.0 * $1.1 }
                    let ds = (0..<visible).map { scale * p[$0] * (dp[$0] - rowDot) }
                    for d in 0..<hd {
                        var acc: Double = 0
                        for j in 0..<visible {
                            acc += ds[j] * Double(k[kj(j, d)])
                            dk[kj(j, d)] += Float(ds[j] * Double(q[qi(i, d)]))
                            dv[kj(j, d)] += Float(p[j] * Double(dout[qi(i, d)]))
                        }
                        dq[qi(i, d)] = Float(acc)
                    }
                }
            }
        }
    }
}
