import Foundation
import XCTest
@testable import Kernels
import Tensors

/// The kernel options later families need, each against its plain reference: sliding-window attention
/// with its own scale (Gemma, Mistral, Phi-3), the (1 + w) RMSNorm (Gemma), GeGLU (Gemma), the soft-capped
/// LM head loss (Gemma) and nn.Embedding's padding_idx. Tolerance: 1e-5 relative to the tensor's largest
/// magnitude (f32 vs f64 summation order).
final class FamilyKernelTests: XCTestCase {
    func random(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = CounterRNG(seed: seed)
        return (0..<n).map { _ in rng.nextNormal() * scale }
    }

    func assertClose(_ a: [Float], _ b: [Float], rel: Float = 1e-5, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = max(b.map(abs).max() ?? 0, 1e-30)
        XCTAssertGreaterThan(scale, 1e-6, "\(what): reference is all zero, the test would prove nothing", file: file, line: line)
        let err = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err / scale, rel, "\(what): max abs error \(err) vs scale \(scale)", file: file, line: line)
    }

    func testSlidingWindowAttentionWithScaleForwardAndBackward() {
        let shape = AttentionShape(heads: 4, kvHeads: 2, headDim: 8)
        // A span longer than the 64-row block, a packed short one, and one reading cached keys.
        let spans = [AttentionSpan(qStart: 0, qLen: 70), AttentionSpan(qStart: 70, qLen: 6),
                     AttentionSpan(qStart: 76, qLen: 4, kvStart: 72, past: 4)]
        let N = 80, scale: Float = 0.31
        let q = random(N * shape.qDim, seed: 1), k = random(N * shape.kvDim, seed: 2), v = random(N * shape.kvDim, seed: 3)
        for window in [1, 5, 200] {
            var fast = [Float](repeating: 0, count: N * shape.qDim), ref = fast
            var probs = [Float](repeating: -1, count: shape.probsCount(spans))
            Attention.forward(out: &fast, probs: &probs, q: q, k: k, v: v, spans: spans, shape: shape, scale: scale, window: window)
            Attention.forwardReference(out: &ref, q: q, k: k, v: v, spans: spans, shape: shape, scale: scale, window: window)
            assertClose(fast, ref, "attention window \(window)")
            // Row i of the first span sees exactly min(i + 1, window) keys: the rest are exact zeros.
            for i in [0, 3, 40, 69] {
                let row = probs[(i * 70)..<(i * 70 + 70)]
                XCTAssertEqual(row.filter { $0 != 0 }.count, min(i + 1, window), "window \(window) row \(i)")
                XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
            }
            let dout = random(N * shape.qDim, seed: 4)
            var dq = [Float](repeating: 0, count: N * shape.qDim), dk = [Float](repeating: 0, count: N * shape.kvDim), dv = dk
            var rq = dq, rk = dk, rv = dv
            Attention.backward(dq: &dq, dk: &dk, dv: &dv, dout: dout, probs: probs, q: q, k: k, v: v, spans: spans, shape: shape, scale: scale)
            Attention.backwardReference(dq: &rq, dk: &rk, dv: &rv, dout: dout, q: q, k: k, v: v, spans: spans, shape: shape,
                                        scale: scale, window: window)
            if window == 1 {
                // Each query sees only itself: its probability is 1 whatever the scores, so q and k get no gradient.
                XCTAssertEqual(dq.map(abs).max(), 0)
                XCTAssertEqual(dk.map(abs).max(), 0)
            } else {
                assertClose(dq, rq, "attention dq window \(window)")
                assertClose(dk, rk, "attention dk window \(window)")
            }
            assertClose(dv, rv, "attention dv window \(window)")
        }
        // Without a window and at the default scale the new parameters change nothing, bit for bit.
        var plain = [Float](repeating: 0, count: N * shape.qDim), explicit = plain
        Attention.forward(out: &plain, probs: nil, q: q, k: k, v: v, spans: spans, shape: shape)
        Attention.forward(out: &explicit, probs: nil, q: q, k: k, v: v, spans: spans, shape: shape, scale: shape.scale, window: nil)
        XCTAssertEqual(plain, explicit)
    }

    func testUnitOffsetRMSNorm() {
        let (N, C, eps) = (6, 37, Float(1e-6))
        let x = random(N * C, seed: 5, scale: 2), w = random(C, seed: 6, scale: 0.3), dout = random(N * C, seed: 7)
        var out = [Float](repeating: 0, count: N * C), ref = out, rstd = [Float](repeating: 0, count: N)
        RMSNorm.forward(out: &out, rstd: &rstd, inp: x, weight: w, N: N, C: C, eps: eps, unitOffset: true)
        RMSNorm.forwardReference(out: &ref, inp: x, weight: w, N: N, C: C, eps: eps, unitOffset: true)
        assertClose(out, ref, "(1 + w) rmsnorm forward")
        // It is the plain norm with weight 1 + w.
        var shifted = [Float](repeating: 0, count: N * C)
        RMSNorm.forward(out: &shifted, rstd: nil, inp: x, weight: w.map { 1 + $0 }, N: N, C: C, eps: eps)
        XCTAssertEqual(out, shifted)
        var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C), rx = dx, rw = dw
        RMSNorm.backward(dinp: &dx, dweight: &dw, dout: dout, inp: x, weight: w, rstd: rstd, N: N, C: C, unitOffset: true)
        RMSNorm.backwardReference(dinp: &rx, dweight: &rw, dout: dout, inp: x, weight: w, N: N, C: C, eps: eps, unitOffset: true)
        assertClose(dx, rx, "(1 + w) rmsnorm dinp")
        assertClose(dw, rw, "(1 + w) rmsnorm dweight")
    }

    func testGeGLU() {
        let n = 203  // SIMD body and a scalar tail
        let g = random(n, seed: 8, scale: 3), u = random(n, seed: 9), dout = random(n, seed: 10)
        var out = [Float](repeating: 0, count: n), ref = out
        GeGLU.forward(out: &out, gate: g, up: u, count: n)
        GeGLU.forwardReference(out: &ref, gate: g, up: u, count: n)
        assertClose(out, ref, "geglu forward")
        var dg = [Float](repeating: 0, count: n), du = dg, rg = dg, ru = dg
        GeGLU.backward(dgate: &dg, dup: &du, dout: dout, gate: g, up: u, count: n)
        GeGLU.backwardReference(dgate: &rg, dup: &ru, dout: dout, gate: g, up: u, count: n)
        assertClose(dg, rg, "geglu dgate")
        assertClose(du, ru, "geglu dup")
    }

    func testSoftcappedLMHeadLoss() {
        let (N, H, V) = (9, 12, 19)
        let hidden = random(N * H, seed: 11, scale: 2), weight = random(V * H, seed: 12, scale: 2)
        let targets: [Int32] = [4, -100, 18, 0, 7, -100, -100, 11, 4]
        for cap: Float in [0.5, 5, 30] {
            var dh = [Float](repeating: 0, count: N * H), dw = [Float](repeating: 0, count: V * H), rh = dh, rw = dw
            let fast = CrossEntropy.lmHeadLoss(dhidden: &dh, dweight: &dw, hidden: hidden, weight: weight, targets: targets,
                                               normalizer: 10, H: H, V: V, softcap: cap, chunkRows: 4)
            let ref = CrossEntropy.lmHeadLossReference(dhidden: &rh, dweight: &rw, hidden: hidden, weight: weight, targets: targets,
                                                       normalizer: 10, H: H, V: V, softcap: cap)
            XCTAssertEqual(fast.lossSum, ref.lossSum, accuracy: 1e-5 * ref.lossSum, "cap \(cap)")
            assertClose(dh, rh, "softcap \(cap) dhidden")
            assertClose(dw, rw, "softcap \(cap) dweight")
            let lossOnly = CrossEntropy.lmHeadLoss(dhidden: nil, dweight: nil, hidden: hidden, weight: weight, targets: targets,
                                                   normalizer: 1, H: H, V: V, softcap: cap)
            XCTAssertEqual(lossOnly.lossSum, fast.lossSum, accuracy: 1e-6 * fast.lossSum)
        }
    }

    func testEmbeddingBackwardSkipsThePaddingRow() {
        let C = 5, tokens: [Int32] = [2, 0, 2, 1, 0]
        let dout = random(tokens.count * C, seed: 13)
        var skipped = [Float](repeating: 0, count: 3 * C), all = skipped
        Embedding.backward(dtable: &skipped, dout: dout, indices: tokens, C: C, skipping: 0)
        Embedding.backward(dtable: &all, dout: dout, indices: tokens, C: C)
        XCTAssertEqual(Array(skipped[0..<C]), [Float](repeating: 0, count: C), "padding row untouched")
        XCTAssertEqual(Array(skipped[C...]), Array(all[C...]), "other rows as without padding")
        XCTAssertNotEqual(Array(all[0..<C]), [Float](repeating: 0, count: C))
    }
}
