import XCTest
import Kernels
import Tensors
@testable import Trainer
@testable import Engine

/// The SIMD optimizer kernels against their plain references, range splitting (what ZeRO does), and
/// gradient clipping's split norm. The SIMD and reference forms perform the same IEEE operations, so the
/// kernels are held to bit identity; norms to 1e-7 relative between splits and 1e-6 against f64.
final class OptimizerKernelTests: XCTestCase {
    func random(_ n: Int, seed: UInt64, scale: Float = 1, positive: Bool = false) -> [Float] {
        var rng = CounterRNG(seed: seed)
        return (0..<n).map { _ in positive ? rng.nextFloat() * scale : rng.nextNormal() * scale }
    }

    struct State: Equatable {
        var p, g, m, v, mx: [Float]
    }

    func state(_ n: Int) -> State {
        State(p: random(n, seed: 1), g: random(n, seed: 2, scale: 0.01), m: random(n, seed: 3, scale: 0.01),
              v: random(n, seed: 4, scale: 1e-4, positive: true), mx: random(n, seed: 5, scale: 1e-4, positive: true))
    }

    func runAdamW(_ s: inout State, _ c: AdamWCoefficients, amsgrad: Bool, splits: [Int], reference: Bool) {
        let n = s.p.count
        let g = s.g
        s.p.withUnsafeMutableBufferPointer { p in s.m.withUnsafeMutableBufferPointer { m in
            s.v.withUnsafeMutableBufferPointer { v in s.mx.withUnsafeMutableBufferPointer { mx in
                g.withUnsafeBufferPointer { gp in
                    let whole = AdamWRange(params: p.baseAddress!, grads: gp.baseAddress!, expAvg: m.baseAddress!,
                                           expAvgSq: v.baseAddress!, maxExpAvgSq: amsgrad ? mx.baseAddress! : nil, count: n)
                    let bounds = [0] + splits + [n]
                    for (lo, hi) in zip(bounds, bounds.dropFirst()) {
                        if reference { AdamW.referenceStep(whole.slice(lo, hi), c) } else { AdamW.step(whole.slice(lo, hi), c) }
                    }
                }
            } }
        } }
    }

    func testAdamWSIMDMatchesReferenceBitForBit() {
        let coefficientSets = [
            AdamWCoefficients(lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3),
            AdamWCoefficients(lr: 3e-2, beta1: 0.3, beta2: 0.95, eps: 1e-6, weightDecay: 0, step: 1),
        ]
        var cases = 0
        for n in [0, 1, 7, 8, 9, 31, 1000, 70_001] {
            for c in coefficientSets {
                for amsgrad in [false, true] {
                    var fast = state(n), ref = fast, split = fast
                    runAdamW(&fast, c, amsgrad: amsgrad, splits: [], reference: false)
                    runAdamW(&ref, c, amsgrad: amsgrad, splits: [], reference: true)
                    runAdamW(&split, c, amsgrad: amsgrad, splits: [n / 3, n / 3 + n / 5], reference: false)
                    XCTAssertEqual(fast, ref, "n=\(n) amsgrad=\(amsgrad) \(c)")
                    XCTAssertEqual(split, ref, "split n=\(n)")
                    if n > 0 { XCTAssertNotEqual(fast.p, state(n).p, "the step changed nothing") }
                    cases += 1
                }
            }
        }
        XCTAssertEqual(cases, 32)
    }

    func testSGDSIMDMatchesReferenceBitForBit() {
        let sets = [
            SGDCoefficients(lr: 0.1),
            SGDCoefficients(lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01),
            SGDCoefficients(lr: 0.02, momentum: 0.8, weightDecay: 0.001, nesterov: true),
        ]
        for n in [0, 5, 8, 13, 1000, 70_001] {
            for c in sets {
                for first in [true, false] {
                    var a = state(n), b = a
                    let g = a.g
                    for (s, reference) in [(0, false), (1, true)] {
                        var st = s == 0 ? a : b
                        st.p.withUnsafeMutableBufferPointer { p in st.m.withUnsafeMutableBufferPointer { m in
                            g.withUnsafeBufferPointer { gp in
                                let r = SGDRange(params: p.baseAddress!, grads: gp.baseAddress!, momentumBuffer: m.baseAddress!, count: n)
                                if reference { SGD.referenceStep(r, c, isFirstStep: first) } else { SGD.step(r, c, isFirstStep: first) }
                            }
                        } }
                        if s == 0 { a = st } else { b = st }
                    }
                    XCTAssertEqual(a, b, "SGD n=\(n) \(c) first=\(first)")
                }
            }
        }
    }

    func testClippingSplitNormAndNonFinite() {
        let n = 1_000_003
        var g = random(n, seed: 9, scale: 0.003)
        let exact = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let whole = g.withUnsafeBufferPointer { GradientClipping.partialSumOfSquares($0, ranges: [0..<n]) }
        // What two ZeRO ranks holding uneven slices would all-reduce.
        let rank0 = g.withUnsafeBufferPointer { GradientClipping.partialSumOfSquares($0, ranges: [0..<12_345, 12_345..<400_000]) }
        let rank1 = g.withUnsafeBufferPointer { GradientClipping.partialSumOfSquares($0.baseAddress! + 400_000, count: n - 400_000) }
        // Blocks are summed in f32 (≈1e-7 relative each, uncorrelated), so different splits agree to ~1e-8.
        XCTAssertEqual(rank0 + rank1, whole, accuracy: 1e-7 * whole)
        let norm = GradientClipping.finish(sumOfSquares: whole)
        XCTAssertEqual(Double(norm), exact, accuracy: 1e-6 * exact)

        let before = g
        let result = g.withUnsafeMutableBufferPointer { GradientClipping.clip($0, ranges: [0..<n], maxNorm: 1.0) }
        XCTAssertEqual(result.norm, norm)
        XCTAssertGreaterThan(result.norm, 1)
        XCTAssertEqual(result.coefficient, (1 / (norm + Float(1e-6))) * 1)
        XCTAssertEqual(g[12], before[12] * result.coefficient)
        // Under max_norm the coefficient clamps to exactly 1 and the gradients are unchanged.
        var small: [Float] = [0.1, -0.2, 0.3]
        let r2 = small.withUnsafeMutableBufferPointer { GradientClipping.clip($0, ranges: [0..<3], maxNorm: 1.0) }
        XCTAssertEqual(r2.coefficient, 1)
        XCTAssertEqual(small, [0.1, -0.2, 0.3])
        // Non-finite norms are reported, and (as in PyTorch) still applied.
        var bad: [Float] = [1, .nan, 2]
        let r3 = bad.withUnsafeMutableBufferPointer { GradientClipping.clip($0, ranges: [0..<3], maxNorm: 1.0) }
        XCTAssertFalse(r3.isFinite)
        XCTAssertTrue(r3.coefficient.isNaN)
        XCTAssertTrue(bad[0].isNaN)
        var inf: [Float] = [1, .infinity]
        let r4 = inf.withUnsafeMutableBufferPointer { GradientClipping.clip($0, ranges: [0..<2], maxNorm: 1.0) }
        XCTAssertEqual(r4.norm, .infinity)
        XCTAssertEqual(r4.coefficient, 0)
        XCTAssertFalse(r4.isFinite)
    }
}
