import Foundation
import XCTest
@testable import Kernels
import Tensors

/// Backward kernels, two ways each:
///  - the optimised backward against the plain f64 reference beside it (tolerance 1e-5 relative to the
///    tensor's largest magnitude: f32 summation order differs);
///  - the optimised backward against central differences of an f64 forward written here
///    (`DoubleForward`), for the scalar loss L = Σ dout ⊙ forward(inputs) with a random dout
///    (tolerance 1e-4 relative: the analytic side is f32, the numeric side's error is ~1e-9).
final class KernelBackwardTests: XCTestCase {
    func random(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = CounterRNG(seed: seed)
        return (0..<n).map { _ in rng.nextNormal() * scale }
    }

    func assertClose(_ a: [Float], _ b: [Float], rel: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = max(b.map(abs).max() ?? 0, 1e-30)
        let err = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(scale, 1e-6, "\(what): reference gradient is all zero, the test would prove nothing", file: file, line: line)
        XCTAssertLessThanOrEqual(err / scale, rel, "\(what): max abs error \(err) vs scale \(scale)", file: file, line: line)
    }

    /// Central differences of f at x, in f64: (f(x + h) − f(x − h)) / 2h per element.
    func numericGradient(_ x: [Float], _ f: ([Double]) -> Double) -> [Float] {
        var xd = x.map(Double.init)
        return (0..<x.count).map { i in
            let h = 1e-6 * max(1, abs(xd[i]))
            let keep = xd[i]
            xd[i] = keep + h; let up = f(xd)
            xd[i] = keep - h; let down = f(xd)
            xd[i] = keep
            return Float((up - down) / (2 * h))
        }
    }

    func dot(_ a: [Float], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * $1.1 } }

    // MARK: Matmul

    func testMatmulBackward() {
        let (M, K, N) = (6, 11, 9)
        let x = random(M * K, seed: 1), w = random(N * K, seed: 2), b = random(N, seed: 3), dout = random(M * N, seed: 4)
        for layout in [WeightLayout.outIn, .inOut] {
            var dx = [Float](repeating: 0, count: M * K), dw = [Float](repeating: 0, count: N * K), db = [Float](repeating: 0, count: N)
            var rx = dx, rw = dw, rb = db
            Matmul.backward(dinp: &dx, dweight: &dw, dbias: &db, dout: dout, inp: x, weight: w, M: M, K: K, N: N, layout: layout)
            Matmul.backwardReference(dinp: &rx, dweight: &rw, dbias: &rb, dout: dout, inp: x, weight: w, M: M, K: K, N: N, layout: layout)
            assertClose(dx, rx, rel: 1e-5, "matmul \(layout) dinp vs reference")
            assertClose(dw, rw, rel: 1e-5, "matmul \(layout) dweight vs reference")
            assertClose(db, rb, rel: 1e-5, "matmul \(layout) dbias vs reference")
            let loss = { (x: [Double], w: [Double], b: [Double]) in
                self.dot(dout, DoubleForward.matmul(x, w, b, M: M, K: K, N: N, layout: layout))
            }
            let xd = x.map(Double.init), wd = w.map(Double.init), bd = b.map(Double.init)
            assertClose(dx, numericGradient(x) { loss($0, wd, bd) }, rel: 1e-4, "matmul \(layout) dinp vs finite differences")
            assertClose(dw, numericGradient(w) { loss(xd, $0, bd) }, rel: 1e-4, "matmul \(layout) dweight vs finite differences")
            assertClose(db, numericGradient(b) { loss(xd, wd, $0) }, rel: 1e-4, "matmul \(layout) dbias vs finite differences")
        }
    }

    func testMatmulBackwardOnAColumnBlockAccumulates() {
        // GPT-2's fused c_attn: the middle column block of a [K, 3N] weight (ldw = 3N); dinp and dweight add.
        let (M, K, N) = (5, 7, 6)
        let x = random(M * K, seed: 5), wide = random(K * 3 * N, seed: 6), dout = random(M * N, seed: 7)
        var block: [Float] = []
        for k in 0..<K { let start = k * 3 * N + N; block += wide[start..<(start + N)] }
        var dx = [Float](repeating: 1, count: M * K), dwide = [Float](repeating: 2, count: K * 3 * N)
        wide.withUnsafeBufferPointer { wp in
            dwide.withUnsafeMutableBufferPointer { dwp in
                Matmul.backward(dinp: &dx, dweight: dwp.baseAddress! + N, dbias: nil, dout: dout, inp: x, weight: wp.baseAddress! + N,
                                M: M, K: K, N: N, layout: .inOut, ldw: 3 * N, accumulateInput: true)
            }
        }
        var rx = [Float](repeating: 0, count: M * K), rw = [Float](repeating: 0, count: K * N)
        Matmul.backwardReference(dinp: &rx, dweight: &rw, dbias: nil, dout: dout, inp: x, weight: block, M: M, K: K, N: N, layout: .inOut)
        assertClose(dx.map { $0 - 1 }, rx, rel: 1e-5, "strided dinp")
        for k in 0..<K {
            for j in 0..<3 * N {
                let inBlock = j >= N && j < 2 * N
                let expected: Float = inBlock ? 2 + rw[k * N + j - N] : 2
                XCTAssertEqual(dwide[k * 3 * N + j], expected, accuracy: 1e-5)
            }
        }
    }

    // MARK: Embedding

    func testEmbeddingBackwardScatterAdds() {
        let (V, C) = (7, 10)
        let tokens: [Int32] = [3, 1, 3, 6, 3, 0]
        let table = random(V * C, seed: 8), dout = random(tokens.count * C, seed: 9)
        var dt = [Float](repeating: 0, count: V * C), rt = dt
        Embedding.backward(dtable: &dt, dout: dout, indices: tokens, C: C)
        Embedding.backwardReference(dtable: &rt, dout: dout, indices: tokens, C: C)
        assertClose(dt, rt, rel: 1e-6, "embedding vs reference")
        let numeric = numericGradient(table) { t in
            self.dot(dout, tokens.flatMap { tok in t[(Int(tok) * C)..<(Int(tok) * C + C)] })
        }
        assertClose(dt, numeric, rel: 1e-4, "embedding vs finite differences")
    }

    // MARK: Norms

    func testRMSNormBackward() {
        let (N, C, eps) = (5, 37, Float(1e-6))
        let x = random(N * C, seed: 10, scale: 2), w = random(C, seed: 11), dout = random(N * C, seed: 12)
        var out = [Float](repeating: 0, count: N * C), rstd = [Float](repeating: 0, count: N)
        RMSNorm.forward(out: &out, rstd: &rstd, inp: x, weight: w, N: N, C: C, eps: eps)
        var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C), rx = dx, rw = dw
        RMSNorm.backward(dinp: &dx, dweight: &dw, dout: dout, inp: x, weight: w, rstd: rstd, N: N, C: C)
        RMSNorm.backwardReference(dinp: &rx, dweight: &rw, dout: dout, inp: x, weight: w, N: N, C: C, eps: eps)
        assertClose(dx, rx, rel: 1e-5, "rmsnorm dinp vs reference")
        assertClose(dw, rw, rel: 1e-5, "rmsnorm dweight vs reference")
        let wd = w.map(Double.init), xd = x.map(Double.init)
        assertClose(dx, numericGradient(x) { self.dot(dout, DoubleForward.rmsNorm($0, wd, N: N, C: C, eps: Double(eps))) },
                    rel: 1e-4, "rmsnorm dinp vs finite differences")
        assertClose(dw, numericGradient(w) { self.dot(dout, DoubleForward.rmsNorm(xd, $0, N: N, C: C, eps: Double(eps))) },
                    rel: 1e-4, "rmsnorm dweight vs finite differences")
    }

    func testLayerNormBackward() {
        let (N, C, eps) = (5, 37, Float(1e-5))
        let x = random(N * C, seed: 13, scale: 2).map { $0 + 3 }, w = random(C, seed: 14), b = random(C, seed: 15)
        let dout = random(N * C, seed: 16)
        var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = mean
        LayerNorm.forward(out: &out, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, N: N, C: C, eps: eps)
        var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C), db = dw
        var rx = dx, rw = dw, rb = db
        LayerNorm.backward(dinp: &dx, dweight: &dw, dbias: &db, dout: dout, inp: x, weight: w, mean: mean, rstd: rstd, N: N, C: C)
        LayerNorm.backwardReference(dinp: &rx, dweight: &rw, dbias: &rb, dout: dout, inp: x, weight: w, N: N, C: C, eps: eps)
        assertClose(dx, rx, rel: 1e-5, "layernorm dinp vs reference")
        assertClose(dw, rw, rel: 1e-5, "layernorm dweight vs reference")
        assertClose(db, rb, rel: 1e-5, "layernorm dbias vs reference")
        let xd = x.map(Double.init), wd = w.map(Double.init), bd = b.map(Double.init)
        let f = { (x: [Double], w: [Double], b: [Double]) in self.dot(dout, DoubleForward.layerNorm(x, w, b, N: N, C: C, eps: Double(eps))) }
        assertClose(dx, numericGradient(x) { f($0, wd, bd) }, rel: 1e-4, "layernorm dinp vs finite differences")
        assertClose(dw, numericGradient(w) { f(xd, $0, bd) }, rel: 1e-4, "layernorm dweight vs finite differences")
        assertClose(db, numericGradient(b) { f(xd, wd, $0) }, rel: 1e-4, "layernorm dbias vs finite differences")
    }

    // MARK: RoPE

    func testRoPEBackward() {
        let (N, heads, hd) = (7, 3, 20)
        let positions: [Int32] = [0, 1, 2, 0, 1, 9, 33]
        var rope = RotaryEmbedding(headDim: hd, theta: 10000, scaling: .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16))
        rope.reserve(positions: 34)
        let x = random(N * heads * hd, seed: 17), dout = random(N * heads * hd, seed: 18)
        var fast = dout, ref = dout
        rope.applyBackward(&fast, N: N, heads: heads, positions: positions)
        rope.applyBackwardReference(&ref, N: N, heads: heads, positions: positions)
        assertClose(fast, ref, rel: 1e-5, "rope backward vs reference")
        let numeric = numericGradient(x) { self.dot(dout, DoubleForward.rope($0, invFreq: rope.invFreq, N: N, heads: heads, headDim: hd, positions: positions)) }
        assertClose(fast, numeric, rel: 1e-4, "rope backward vs finite differences")
    }

    // MARK: Attention

    func testAttentionBackwardGQASpans() {
        let shape = AttentionShape(heads: 4, kvHeads: 2, headDim: 8)
        let N = 12
        // Two packed examples, and a span whose queries see 3 earlier keys (past), starting at key row 6.
        let spans = [AttentionSpan(qStart: 0, qLen: 5), AttentionSpan(qStart: 5, qLen: 4),
                     AttentionSpan(qStart: 9, qLen: 3, kvStart: 6, past: 3)]
        let q = random(N * shape.qDim, seed: 19), k = random(N * shape.kvDim, seed: 20), v = random(N * shape.kvDim, seed: 21)
        let dout = random(N * shape.qDim, seed: 22)
        var out = [Float](repeating: 0, count: N * shape.qDim), probs = [Float](repeating: 0, count: shape.probsCount(spans))
        Attention.forward(out: &out, probs: &probs, q: q, k: k, v: v, spans: spans, shape: shape)
        var dq = [Float](repeating: 0, count: N * shape.qDim), dk = [Float](repeating: 0, count: N * shape.kvDim), dv = dk
        var rq = dq, rk = dk, rv = dv
        Attention.backward(dq: &dq, dk: &dk, dv: &dv, dout: dout, probs: probs, q: q, k: k, v: v, spans: spans, shape: shape)
        Attention.backwardReference(dq: &rq, dk: &rk, dv: &rv, dout: dout, q: q, k: k, v: v, spans: spans, shape: shape)
        assertClose(dq, rq, rel: 1e-5, "attention dq vs reference")
        assertClose(dk, rk, rel: 1e-5, "attention dk vs reference")
        assertClose(dv, rv, rel: 1e-5, "attention dv vs reference")
        let qd = q.map(Double.init), kd = k.map(Double.init), vd = v.map(Double.init)
        let f = { (q: [Double], k: [Double], v: [Double]) in
            self.dot(dout, DoubleForward.attention(q, k, v, N: N, spans: spans, shape: shape))
        }
        assertClose(dq, numericGradient(q) { f($0, kd, vd) }, rel: 1e-4, "attention dq vs finite differences")
        assertClose(dk, numericGradient(k) { f(qd, $0, vd) }, rel: 1e-4, "attention dk vs finite differences")
        assertClose(dv, numericGradient(v) { f(qd, kd, $0) }, rel: 1e-4, "attention dv vs finite differences")
    }

    // MARK: Activations

    func testSwiGLUBackward() {
        let n = 203  // SIMD body and a scalar tail
        let g = random(n, seed: 23, scale: 3), u = random(n, seed: 24), dout = random(n, seed: 25)
        var dg = [Float](repeating: 0, count: n), du = dg, rg = dg, ru = dg
        SwiGLU.backward(dgate: &dg, dup: &du, dout: dout, gate: g, up: u, count: n)
        SwiGLU.backwardReference(dgate: &rg, dup: &ru, dout: dout, gate: g, up: u, count: n)
        assertClose(dg, rg, rel: 1e-5, "swiglu dgate vs reference")
        assertClose(du, ru, rel: 1e-5, "swiglu dup vs reference")
        let silu = { (g: Double) in g / (1 + Foundation.exp(-g)) }
        let gd = g.map(Double.init), ud = u.map(Double.init)
        assertClose(dg, numericGradient(g) { gs in self.dot(dout, zip(gs, ud).map { silu($0) * $1 }) }, rel: 1e-4, "swiglu dgate vs finite differences")
        assertClose(du, numericGradient(u) { us in self.dot(dout, zip(gd, us).map { silu($0) * $1 }) }, rel: 1e-4, "swiglu dup vs finite differences")
    }

    func testGELUBackward() {
        let n = 203
        let x = random(n, seed: 26, scale: 3), dout = random(n, seed: 27)
        var dx = [Float](repeating: 0, count: n), rx = dx
        GELU.backward(dinp: &dx, dout: dout, inp: x, count: n)
        GELU.backwardReference(dinp: &rx, dout: dout, inp: x, count: n)
        assertClose(dx, rx, rel: 1e-5, "gelu_new vs reference")
        let (a, b) = (Double(GELU.k0), Double(GELU.k1))
        let numeric = numericGradient(x) { xs in self.dot(dout, xs.map { 0.5 * $0 * (1 + tanh(a * ($0 + b * $0 * $0 * $0))) }) }
        assertClose(dx, numeric, rel: 1e-4, "gelu_new vs finite differences")
    }

    // MARK: Cross-entropy with the LM head

    func testChunkedLMHeadCrossEntropy() {
        let (N, H, V) = (9, 12, 19)
        let hidden = random(N * H, seed: 28), weight = random(V * H, seed: 29)
        let targets: [Int32] = [4, -100, 18, 0, 7, -100, -100, 11, 4]
        let normalizer: Float = 10  // as if the step had 10 label tokens in all (this micro-batch has 6)
        var dh = [Float](repeating: 0, count: N * H), dw = [Float](repeating: 0, count: V * H), rh = dh, rw = dw
        // Chunks of 4 labelled rows: two chunks, the second partial.
        let fast = CrossEntropy.lmHeadLoss(dhidden: &dh, dweight: &dw, hidden: hidden, weight: weight, targets: targets,
                                           normalizer: normalizer, H: H, V: V, chunkRows: 4)
        let ref = CrossEntropy.lmHeadLossReference(dhidden: &rh, dweight: &rw, hidden: hidden, weight: weight, targets: targets,
                                                   normalizer: normalizer, H: H, V: V)
        XCTAssertEqual(fast.labelTokens, 6)
        XCTAssertEqual(ref.labelTokens, 6)
        XCTAssertEqual(fast.lossSum, ref.lossSum, accuracy: 1e-5 * ref.lossSum)
        assertClose(dh, rh, rel: 1e-5, "lm head dhidden vs reference")
        assertClose(dw, rw, rel: 1e-5, "lm head dweight vs reference")
        let hd = hidden.map(Double.init), wd = weight.map(Double.init)
        let f = { (h: [Double], w: [Double]) in
            DoubleForward.lmHeadLoss(h, w, targets: targets, H: H, V: V) / Double(normalizer)
        }
        XCTAssertEqual(fast.lossSum, DoubleForward.lmHeadLoss(hd, wd, targets: targets, H: H, V: V), accuracy: 1e-5 * ref.lossSum)
        assertClose(dh, numericGradient(hidden) { f($0, wd) }, rel: 1e-4, "lm head dhidden vs finite differences")
        assertClose(dw, numericGradient(weight) { f(hd, $0) }, rel: 1e-4, "lm head dweight vs finite differences")
        // Loss only (evaluation): same sum, no gradient buffers touched.
        let lossOnly = CrossEntropy.lmHeadLoss(dhidden: nil, dweight: nil, hidden: hidden, weight: weight, targets: targets,
                                               normalizer: 1, H: H, V: V)
        XCTAssertEqual(lossOnly.lossSum, fast.lossSum, accuracy: 1e-6 * fast.lossSum)
    }
}
