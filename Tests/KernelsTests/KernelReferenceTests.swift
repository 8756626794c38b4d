import XCTest
@testable import Kernels
import Tensors
import Foundation

/// Each optimised kernel against the plain definition beside it.
/// Tolerance: 1e-5 relative to the tensor's largest magnitude (f32 summation order differs; the
/// references sum in f64).
final class KernelReferenceTests: XCTestCase {
    func random(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = CounterRNG(seed: seed)
        return (0..<n).map { _ in rng.nextNormal() * scale }
    }

    func assertClose(_ a: [Float], _ b: [Float], rel: Float = 1e-5, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = max(b.map(abs).max() ?? 0, 1e-30)
        let err = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err / scale, rel, "\(what): max abs error \(err) vs scale \(scale)", file: file, line: line)
    }

    func testMatmulBothLayoutsWithAndWithoutBias() {
        let (M, K, N) = (7, 13, 11)
        let x = random(M * K, seed: 1), w = random(N * K, seed: 2), b = random(N, seed: 3)
        for layout in [WeightLayout.outIn, .inOut] {
            for bias in [nil, b] {
                var fast = [Float](repeating: 9, count: M * N), ref = fast
                bias.withOptionalPointer { bp in
                    Matmul.forward(out: &fast, inp: x, weight: w, bias: bp, M: M, K: K, N: N, layout: layout)
                    Matmul.forwardReference(out: &ref, inp: x, weight: w, bias: bp, M: M, K: K, N: N, layout: layout)
                }
                assertClose(fast, ref, "matmul \(layout) bias=\(bias != nil)")
            }
        }
    }

    func testExpMatchesLibmAcrossRange() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let v = F8((0..<8).map { x + Float($0) * 0.0137 })
            let e = VectorMath.exp(v)
            for i in 0..<8 {
                let ref = Float(Foundation.exp(Double(v[i])))
                if ref.isFinite && ref > 1e-37 { worst = max(worst, abs(e[i] - ref) / ref) }
            }
            x += 0.1
        }
        XCTAssertLessThan(worst, 4e-7, "SIMD exp relative error (≈ 3 ulp allowed)")
        let special = VectorMath.exp(F8(-.infinity, .infinity, .nan, -200, 200, 0, -0.0, 1))
        XCTAssertEqual(special[0], 0)
        XCTAssertEqual(special[1], .infinity)
        XCTAssertTrue(special[2].isNaN)
        XCTAssertEqual(special[3], 0)
        XCTAssertEqual(special[4], .infinity)
        XCTAssertEqual(special[5], 1)
        XCTAssertEqual(special[6], 1)
        XCTAssertEqual(special[7], Float(M_E), accuracy: 1e-6)
    }

    func testRMSNormAndLayerNorm() {
        let (N, C) = (5, 37)
        let x = random(N * C, seed: 4, scale: 3), w = random(C, seed: 5), b = random(C, seed: 6)
        var fast = [Float](repeating: 0, count: N * C), ref = fast
        RMSNorm.forward(out: &fast, rstd: nil, inp: x, weight: w, N: N, C: C, eps: 1e-6)
        RMSNorm.forwardReference(out: &ref, inp: x, weight: w, N: N, C: C, eps: 1e-6)
        assertClose(fast, ref, "rmsnorm")
        LayerNorm.forward(out: &fast, mean: nil, rstd: nil, inp: x, weight: w, bias: b, N: N, C: C, eps: 1e-5)
        LayerNorm.forwardReference(out: &ref, inp: x, weight: w, bias: b, N: N, C: C, eps: 1e-5)
        assertClose(fast, ref, "layernorm")
    }

    func testActivations() {
        let n = 1003
        let g = random(n, seed: 7, scale: 4), u = random(n, seed: 8)
        var fast = [Float](repeating: 0, count: n), ref = fast
        SwiGLU.forward(out: &fast, gate: g, up: u, count: n)
        SwiGLU.forwardReference(out: &ref, gate: g, up: u, count: n)
        assertClose(fast, ref, "swiglu")
        GELU.forward(out: &fast, inp: g, count: n)
        GELU.forwardReference(out: &ref, inp: g, count: n)
        assertClose(fast, ref, "gelu_new")
    }

    func testRoPEAllScalings() {
        let (N, heads, hd) = (9, 3, 20)
        let positions: [Int32] = [0, 1, 2, 5, 8, 13, 21, 34, 55]
        for scaling in [RotaryEmbedding.Scaling.none, .linear(factor: 4),
                        .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16)] {
            var rope = RotaryEmbedding(headDim: hd, theta: 10000, scaling: scaling)
            rope.reserve(positions: 56)
            var fast = random(N * heads * hd, seed: 9), ref = fast
            rope.apply(&fast, N: N, heads: heads, positions: positions)
            rope.applyReference(&ref, N: N, heads: heads, positions: positions)
            assertClose(fast, ref, "rope \(scaling)")
        }
    }

    func testLlama3ScalingFollowsTheThreeBands() {
        let plain = RotaryEmbedding(headDim: 64, theta: 500000, scaling: .none)
        let scaled = RotaryEmbedding(headDim: 64, theta: 500000,
                                     scaling: .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192))
        for (f, g) in zip(plain.invFreq, scaled.invFreq) {
            let wavelen = 2 * Float.pi / f
            if wavelen < 8192 / 4 { XCTAssertEqual(g, f) }               // high frequencies unchanged
            else if wavelen > 8192 { XCTAssertEqual(g, f / 8, accuracy: f * 1e-6) }  // low frequencies divided
            else { XCTAssertTrue(g < f && g > f / 8) }                    // smooth blend between
        }
    }

    func testAttentionCausalRowBlocksAcrossSeveralBlocks() {
        // Spans longer than the 64-row block, one reading 70 cached keys: the blocked, head-parallel path.
        let shape = AttentionShape(heads: 6, kvHeads: 2, headDim: 16)
        let N = 150 + 80
        let q = random(N * shape.qDim, seed: 20), k = random((N + 70) * shape.kvDim, seed: 21), v = random((N + 70) * shape.kvDim, seed: 22)
        let spans = [AttentionSpan(qStart: 0, qLen: 150), AttentionSpan(qStart: 150, qLen: 80, kvStart: 150, past: 70)]
        var fast = [Float](repeating: 0, count: N * shape.qDim), ref = fast
        var probs = [Float](repeating: -1, count: shape.probsCount(spans))
        Attention.forward(out: &fast, probs: &probs, q: q, k: k, v: v, spans: spans, shape: shape)
        Attention.forwardReference(out: &ref, q: q, k: k, v: v, spans: spans, shape: shape)
        assertClose(fast, ref, "blocked attention")
        XCTAssertFalse(probs.contains(-1), "every probability entry written, masked ones as zeros")
        var withoutProbs = [Float](repeating: 0, count: N * shape.qDim)
        Attention.forward(out: &withoutProbs, probs: nil, q: q, k: k, v: v, spans: spans, shape: shape)
        XCTAssertEqual(withoutProbs, fast)
    }

    func testAttentionSpansGQAAndCache() {
        let shape = AttentionShape(heads: 4, kvHeads: 2, headDim: 8)
        let N = 12
        let q = random(N * shape.qDim, seed: 10), k = random(N * shape.kvDim, seed: 11), v = random(N * shape.kvDim, seed: 12)
        // Two packed examples plus a span that reads cached keys (past = 3, its keys start at row 5).
        let spans = [AttentionSpan(qStart: 0, qLen: 5), AttentionSpan(qStart: 5, qLen: 4),
                     AttentionSpan(qStart: 9, qLen: 3, kvStart: 6, past: 3)]
        var fast = [Float](repeating: 0, count: N * shape.qDim), ref = fast
        var probs = [Float](repeating: -1, count: shape.probsCount(spans))
        Attention.forward(out: &fast, probs: &probs, q: q, k: k, v: v, spans: spans, shape: shape)
        Attention.forwardReference(out: &ref, q: q, k: k, v: v, spans: spans, shape: shape)
        assertClose(fast, ref, "attention")
        // Every probability row sums to one and the masked part is exactly zero.
        var offset = 0
        for s in spans {
            for _ in 0..<shape.heads {
                for i in 0..<s.qLen {
                    let row = probs[(offset + i * s.kLen)..<(offset + (i + 1) * s.kLen)]
                    XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
                    XCTAssertTrue(row.dropFirst(s.past + i + 1).allSatisfy { $0 == 0 })
                }
                offset += s.qLen * s.kLen
            }
        }
    }
}

extension Optional where Wrapped == [Float] {
    func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .none: return body(nil)
        case .some(let a): return a.withUnsafeBufferPointer { body($0.baseAddress!) }
        }
    }
}
