import CMPI
import Tensors
import XCTest
@testable import Distributed

/// The half-precision sums: the C code inside the MPI ops against `Tensors.HalfConversion` and
/// `HalfSum` (bit for bit, tolerance 0, NaNs compared by bits), the one-process communicator, and the
/// gather-based default that wrapper communicators inherit (against `ThreadCommunicator`, bit for bit).
/// MPI itself is exercised under mpirun by `MPILaunchTests` through `_collective-selftest`.
final class HalfCollectivesTests: XCTestCase {
    /// Every 16-bit pattern decodes to the same f32 bits in C and Swift.
    func testCDecodingMatchesHalfConversionForAllPatterns() {
        for h in 0...UInt16.max {
            XCTAssertEqual(cmpi_float_from_bf16(h).bitPattern, HalfConversion.float(bf16: h).bitPattern, "bf16 \(h)")
            XCTAssertEqual(cmpi_float_from_f16(h).bitPattern, HalfConversion.float(f16: h).bitPattern, "f16 \(h)")
        }
    }

    /// f32 → bf16/f16 in C equals HalfConversion on ~1.05 M f32 patterns spread over the whole range, every
    /// pattern near the f16 overflow, subnormal and tie boundaries, and every NaN-payload kind.
    func testCRoundingMatchesHalfConversion() {
        var patterns = Array(stride(from: UInt32(0), to: UInt32.max - 4096, by: 4093))
        for edge: UInt32 in [0x477F_E000, 0x3880_0000, 0x3300_0000, 0x3F80_1000, 0x3F80_8000, 0x7F7F_8000, 0x7F80_0000] {
            for d in 0..<UInt32(64) { patterns += [edge &- d, edge &+ d, (edge &- d) | 0x8000_0000, (edge &+ d) | 0x8000_0000] }
        }
        patterns += [0x7F80_0001, 0x7FC0_0000, 0xFFC0_0000, 0x7FBF_FFFF, 0xFF80_2000, 0x7FFF_FFFF, 0x0000_0001, 0x8000_0001]
        var bf16Mismatches = 0, f16Mismatches = 0
        for u in patterns {
            let x = Float(bitPattern: u)
            if cmpi_bf16_from_float(x) != HalfConversion.bf16Bits(x) { bf16Mismatches += 1 }
            if cmpi_f16_from_float(x) != HalfConversion.f16Bits(x) { f16Mismatches += 1 }
        }
        XCTAssertGreaterThan(patterns.count, 1_000_000)
        XCTAssertEqual(bf16Mismatches, 0)
        XCTAssertEqual(f16Mismatches, 0)
    }

    /// The MPI ops' element step (C) equals `HalfSum.pair` for every first operand against 64 second
    /// operands (specials and pseudo-random patterns): 4.2 M sums per format, both operand orders.
    func testCPairwiseSumMatchesHalfSumBothOrders() {
        var seconds: [UInt16] = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x007F, 0x3C00, 0x3F80, 0x7BFF, 0xFBFF,
                                 0x7F7F, 0x7C00, 0xFC00, 0x7F80, 0xFF80, 0x7E00, 0x7C01, 0xFE05, 0x7FC0, 0x7F81, 0xFFFF]
        var x: UInt32 = 12345
        while seconds.count < 64 { x = x &* 1_103_515_245 &+ 12345; seconds.append(UInt16(truncatingIfNeeded: x >> 8)) }
        let all = (0...UInt16.max).map { $0 }
        for format in [HalfFormat.bf16, .f16] {
            var mismatches = 0
            for b in seconds {
                var viaC = all, viaCSwapped = [UInt16](repeating: b, count: all.count)
                let bs = [UInt16](repeating: b, count: all.count)
                if format == .bf16 { cmpi_bf16_sum(bs, &viaC, Int32(all.count)); cmpi_bf16_sum(all, &viaCSwapped, Int32(all.count)) }
                else { cmpi_f16_sum(bs, &viaC, Int32(all.count)); cmpi_f16_sum(all, &viaCSwapped, Int32(all.count)) }
                for a in all {
                    let want = HalfSum.pair(a, b, format: format)
                    if viaC[Int(a)] != want || viaCSwapped[Int(a)] != want || HalfSum.pair(b, a, format: format) != want {
                        mismatches += 1
                    }
                }
            }
            XCTAssertEqual(mismatches, 0, "\(format)")
        }
    }

    /// The NaN rule makes the f32 step commutative bit for bit, and inf + -inf is x86's default NaN.
    func testNaNRuleIsSymmetric() {
        let values: [UInt32] = [0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFF81_2000, 0x7FC0_A000, 0x3F80_0000, 0x7F80_0000, 0xFF80_0000]
        for a in values {
            for b in values {
                let fa = Float(bitPattern: a), fb = Float(bitPattern: b)
                XCTAssertEqual(HalfSum.add(fa, fb).bitPattern, HalfSum.add(fb, fa).bitPattern)
                XCTAssertEqual(HalfSum.add(fa, fb).bitPattern, cmpi_half_add(fa, fb).bitPattern)
            }
        }
        XCTAssertEqual(HalfSum.add(.infinity, -.infinity).bitPattern, 0xFFC0_0000)
        XCTAssertEqual(HalfSum.add(Float(bitPattern: 0x7F80_0001), 1).bitPattern, 0x7FC0_0001)
        XCTAssertEqual(HalfSum.add(Float(bitPattern: 0x7FC0_0001), Float(bitPattern: 0xFFC0_0000)).bitPattern, 0xFFC0_0000)
    }

    func testFormatFromDType() throws {
        XCTAssertEqual(try HalfFormat(.bf16), .bf16)
        XCTAssertEqual(try HalfFormat(.f16), .f16)
        XCTAssertThrowsError(try HalfFormat(.f32)) { XCTAssertTrue("\($0)".contains("BF16 or F16, not F32"), "\($0)") }
    }

    /// One rank: the sum is the value itself, NaN payloads included (as MPI, which does not call its op).
    func testLocalCommunicatorLeavesHalvesAsTheyAre() throws {
        let c = LocalCommunicator()
        let original: [UInt16] = [0x7F81, 0x3F80, 0x0001, 0xFC00, 0x7C01]
        var halves = original
        try c.allReduce(halves: &halves, count: halves.count, format: .bf16)
        XCTAssertEqual(halves, original)
        var out = [UInt16](repeating: 0, count: original.count)
        try c.reduceScatter(halves: original, output: &out, blockCount: original.count, format: .f16)
        XCTAssertEqual(out, original)
        XCTAssertThrowsError(try c.allReduce(halves: &halves, count: -1, format: .f16))
    }

    /// A wrapper that does not implement the half collectives gets the gather-based default; on 3 ranks
    /// (rank-order f32 sum, rounded once) it must equal ThreadCommunicator's own implementation bit for
    /// bit, over 2 pieces of the default's gather (count 1 M + 123).
    func testGatherBasedDefaultEqualsThreadCommunicator() throws {
        let count = (1 << 20) + 123, block = 1001
        for format in [HalfFormat.bf16, .f16] {
            let results = try ThreadCommunicator.run(worldSize: 3) { comm -> ([UInt16], [UInt16], [UInt16], [UInt16]) in
                let values = (0..<count).map { i -> UInt16 in
                    let x = UInt32(truncatingIfNeeded: (i &* 2_654_435_761) ^ (comm.rank &* 40503)) >> 7
                    return UInt16(truncatingIfNeeded: x) & 0xBBFF  // finite, mixed signs and scales
                }
                var direct = values, viaDefault = values
                try comm.allReduce(halves: &direct, count: count, format: format)
                let wrapper = ForwardingCommunicator(comm)
                try wrapper.allReduce(halves: &viaDefault, count: count, format: format)
                var scatterDirect = [UInt16](repeating: 0, count: block), scatterDefault = scatterDirect
                try comm.reduceScatter(halves: values, output: &scatterDirect, blockCount: block, format: format)
                try wrapper.reduceScatter(halves: values, output: &scatterDefault, blockCount: block, format: format)
                return (direct, viaDefault, scatterDirect, scatterDefault)
            }
            for (r, (direct, viaDefault, scatterDirect, scatterDefault)) in results.enumerated() {
                XCTAssertTrue(direct == viaDefault, "\(format) rank \(r): default all-reduce differs")
                XCTAssertTrue(scatterDirect == scatterDefault, "\(format) rank \(r): default reduce-scatter differs")
                XCTAssertTrue(direct == results[0].0, "\(format) rank \(r) differs from rank 0")
            }
        }
    }
}

/// Forwards every requirement except the half collectives, which it leaves to the protocol's default.
final class ForwardingCommunicator: Communicator {
    let base: Communicator
    var rank: Int { base.rank }
    var worldSize: Int { base.worldSize }
    init(_ base: Communicator) { self.base = base }

    func allReduce(_ b: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) throws { try base.allReduce(b, count: count, op: op) }
    func allReduce(_ b: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) throws { try base.allReduce(b, count: count, op: op) }
    func reduceScatter(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        try base.reduceScatter(input: input, output: output, blockCount: blockCount)
    }
    func allGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        try base.allGather(input: input, output: output, blockCount: blockCount)
    }
    func allGatherBytes(input: UnsafeRawPointer, output: UnsafeMutableRawPointer, blockBytes: Int) throws {
        try base.allGatherBytes(input: input, output: output, blockBytes: blockBytes)
    }
    func broadcast(_ b: UnsafeMutableRawPointer, bytes: Int, root: Int) throws { try base.broadcast(b, bytes: bytes, root: root) }
    func send(_ b: UnsafeRawPointer, bytes: Int, to r: Int, tag: Int) throws { try base.send(b, bytes: bytes, to: r, tag: tag) }
    func receive(_ b: UnsafeMutableRawPointer, bytes: Int, from r: Int, tag: Int) throws { try base.receive(b, bytes: bytes, from: r, tag: tag) }
    func barrier() throws { try base.barrier() }
    func abort(message: String, code: Int32) -> Never { base.abort(message: message, code: code) }
}
