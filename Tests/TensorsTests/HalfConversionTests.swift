import Foundation
import XCTest
import SafeTensors
@testable import Tensors

/// f32 ⇄ bf16/f16 against PyTorch's own conversions (Scripts/reference/gen_dtypes.py): NaN payloads,
/// ±inf, ±0, subnormals, ties at every rounding boundary, the f16 overflow edge and 6,000 other bit
/// patterns. Tolerance: none — every result must be bit-identical.
final class HalfConversionTests: XCTestCase {
    struct Cases {
        let f32: [UInt32], bf16: [UInt16], f16: [UInt16], bf16Back: [UInt32], f16Back: [UInt32]
    }

    func load() throws -> Cases {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/dtypes/conversions.safetensors").path
        let file = try SafeTensorsFile(path: path)
        func u32(_ n: String) throws -> [UInt32] { Array(try file.rawBytes(n).bindMemory(to: UInt32.self)) }
        func u16(_ n: String) throws -> [UInt16] { Array(try file.rawBytes(n).bindMemory(to: UInt16.self)) }
        return Cases(f32: try u32("f32_bits"), bf16: try u16("bf16_bits"), f16: try u16("f16_bits"),
                     bf16Back: try u32("bf16_to_f32_bits"), f16Back: try u32("f16_to_f32_bits"))
    }

    func testScalarConversionsMatchPyTorchBitForBit() throws {
        let c = try load()
        XCTAssertGreaterThan(c.f32.count, 6000)
        for (i, u) in c.f32.enumerated() {
            let x = Float(bitPattern: u)
            XCTAssertEqual(HalfConversion.bf16Bits(x), c.bf16[i], "bf16 of 0x\(String(u, radix: 16))")
            XCTAssertEqual(HalfConversion.f16Bits(x), c.f16[i], "f16 of 0x\(String(u, radix: 16))")
            XCTAssertEqual(HalfConversion.float(bf16: c.bf16[i]).bitPattern, c.bf16Back[i])
            XCTAssertEqual(HalfConversion.float(f16: c.f16[i]).bitPattern, c.f16Back[i])
        }
    }

    func testBufferConversionsMatchTheScalarReference() throws {
        let c = try load()
        let x = c.f32.map { Float(bitPattern: $0) }
        var bf = [UInt16](repeating: 0, count: x.count), hf = bf
        var back = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { src in
            bf.withUnsafeMutableBufferPointer { HalfConversion.toBF16(src, $0) }
            hf.withUnsafeMutableBufferPointer { HalfConversion.toF16(src, $0) }
        }
        assertSame(bf, c.bf16, input: c.f32, "toBF16")
        assertSame(hf, c.f16, input: c.f32, "toF16")
        bf.withUnsafeBufferPointer { src in back.withUnsafeMutableBufferPointer { HalfConversion.fromBF16(src, $0) } }
        assertSame(back.map(\.bitPattern), c.bf16Back, input: c.bf16.map(UInt32.init), "fromBF16")
        hf.withUnsafeBufferPointer { src in back.withUnsafeMutableBufferPointer { HalfConversion.fromF16(src, $0) } }
        assertSame(back.map(\.bitPattern), c.f16Back, input: c.f16.map(UInt32.init), "fromF16")
    }

    /// Reports the first differing element rather than two 6,000-element arrays.
    func assertSame<T: BinaryInteger>(_ got: [T], _ expected: [T], input: [UInt32], _ what: String,
                                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, what, file: file, line: line)
        let bad = zip(got, expected).enumerated().filter { $0.element.0 != $0.element.1 }
        if let first = bad.first {
            XCTFail("\(what): \(bad.count) of \(got.count) differ; first at \(first.offset): input 0x\(String(input[first.offset], radix: 16)) gave 0x\(String(first.element.0, radix: 16)), expected 0x\(String(first.element.1, radix: 16))", file: file, line: line)
        }
    }

    func testNamedEdgeCases() {
        XCTAssertEqual(HalfConversion.bf16Bits(.nan), 0xFFFF, "ATen's vectorised NaN, not c10's 0x7FC0")
        XCTAssertEqual(HalfConversion.f16Bits(Float(bitPattern: 0xFF81_2345)), 0xFE09, "F16C keeps sign and payload, sets the quiet bit")
        XCTAssertEqual(HalfConversion.f16Bits(65504), 0x7BFF)
        XCTAssertEqual(HalfConversion.f16Bits(65519.99), 0x7BFF)
        XCTAssertEqual(HalfConversion.f16Bits(65520), 0x7C00, "≥ 65520 rounds to inf")
        XCTAssertEqual(HalfConversion.f16Bits(-.infinity), 0xFC00)
        XCTAssertEqual(HalfConversion.f16Bits(Float(bitPattern: 0x3380_0000)), 0x0001, "2^-24, the smallest subnormal")
        XCTAssertEqual(HalfConversion.f16Bits(Float(bitPattern: 0x3300_0000)), 0x0000, "2^-25 ties to even (zero)")
        XCTAssertEqual(HalfConversion.bf16Bits(Float(bitPattern: 0x3F80_8000)), 0x3F80, "tie to even, down")
        XCTAssertEqual(HalfConversion.bf16Bits(Float(bitPattern: 0x3F81_8000)), 0x3F82, "tie to even, up")
    }

    func testFlatBufferStoresAndLoadsThroughEveryDType() {
        let values: [Float] = (0..<37).map { Float($0) * 0.37 - 5 }
        for dtype in [DType.f32, .bf16, .f16] {
            let buffer = FlatBuffer(dtype: dtype, count: 40)
            values.withUnsafeBufferPointer { buffer.store($0, at: 2) }
            var out = [Float](repeating: 0, count: 37)
            out.withUnsafeMutableBufferPointer { buffer.load(into: $0, from: 2) }
            for (a, b) in zip(out, values) {
                let expected = dtype == .f32 ? b : dtype == .bf16 ? HalfConversion.float(bf16: HalfConversion.bf16Bits(b)) : HalfConversion.float(f16: HalfConversion.f16Bits(b))
                XCTAssertEqual(a, expected, "\(dtype)")
            }
        }
    }
}

final class CounterRNGTests: XCTestCase {
    func testStreamsAreDeterministicAndIndependent() {
        var a = CounterRNG(seed: 42, purpose: .shuffle, rank: 1, step: 7)
        var b = CounterRNG(seed: 42, purpose: .shuffle, rank: 1, step: 7)
        let xa = (0..<100).map { _ in a.nextUInt32() }
        XCTAssertEqual(xa, (0..<100).map { _ in b.nextUInt32() })
        for other in [CounterRNG(seed: 43, purpose: .shuffle, rank: 1, step: 7), CounterRNG(seed: 42, purpose: .dropout, rank: 1, step: 7),
                      CounterRNG(seed: 42, purpose: .shuffle, rank: 0, step: 7), CounterRNG(seed: 42, purpose: .shuffle, rank: 1, step: 8)] {
            var o = other
            XCTAssertNotEqual(xa, (0..<100).map { _ in o.nextUInt32() })
        }
    }

    func testDistributions() {
        var rng = CounterRNG(seed: 1)
        let n = 200_000
        let normals = (0..<n).map { _ in Double(rng.nextNormal()) }
        let mean = normals.reduce(0, +) / Double(n)
        let variance = normals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(variance, 1, accuracy: 0.02)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[rng.next(below: 7)] += 1 }
        XCTAssertTrue(counts.allSatisfy { abs($0 - 10_000) < 500 }, "\(counts)")
        var perm = Array(0..<50)
        rng.shuffle(&perm)
        XCTAssertEqual(perm.sorted(), Array(0..<50))
        XCTAssertNotEqual(perm, Array(0..<50))
    }
}

final class ParameterLayoutTests: XCTestCase {
    func testGroupsAreContiguousRanges() {
        var l = ParameterLayout()
        l.append("emb", shape: [4, 3], group: 0)
        l.append("a", shape: [3], group: 1)
        l.append("b", shape: [2, 2], group: 1)
        l.append("norm", shape: [3], group: 2)
        XCTAssertEqual(l.totalCount, 22)
        XCTAssertEqual(l.range(ofGroup: 1), 12..<19)
        XCTAssertEqual(l["b"]?.range, 15..<19)
        XCTAssertEqual(l.groupCount, 3)
    }
}
