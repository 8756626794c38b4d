import Foundation
import XCTest
import SafeTensors
@testable import GGUF

/// Dequantization is checked bit for bit: against `gguf.quants.dequantize` on the fixture file (random raw
/// blocks of every type, real quantizations, special floats), and the fast path against the plain
/// reference on fresh random blocks. Tolerance: none (every f32 must have the same bits).
final class DequantizeTests: XCTestCase {
    func testEveryTypeMatchesTheGGUFPackageBitForBit() throws {
        let file = try GGUFFile(path: Fixtures.path("quants.gguf"))
        let expected = try SafeTensorsFile(path: Fixtures.path("quants_expected.safetensors"))
        XCTAssertEqual(file.tensors.count, expected.names.count)
        var typesSeen = Set<GGMLType>()
        for t in file.tensors {
            let info = try XCTUnwrap(expected.info(t.name), t.name)
            XCTAssertEqual(t.shape, info.shape, t.name)
            let ours = try file.floats(t.name)
            let theirs = try expected.floats(t.name)
            let different = zip(ours, theirs).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
            XCTAssertNil(different, "\(t.name) (\(t.type.name)): element \(different?.offset ?? -1): \(different?.element.0 ?? 0) vs \(different?.element.1 ?? 0)")
            typesSeen.insert(t.type)
        }
        XCTAssertEqual(typesSeen, Set(GGMLType.allCases), "the fixture covers every supported type")
        XCTAssertEqual(file.info("q8_0.3d")?.dims, [64, 3, 2])
        XCTAssertEqual(file.info("q8_0.3d")?.shape, [2, 3, 64])
    }

    func testFastPathEqualsReferenceOnRandomBlocks() {
        var rng = SystemRandomNumberGenerator()
        for type in GGMLType.allCases {
            for blocks in [1, 3, 300] {  // 300 blocks of 256 crosses the fast path's chunk size
                let elements = blocks * type.blockSize
                var bytes = (0..<type.byteCount(elements: elements)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                // Keep f16 scales finite so a NaN never hides a difference (NaN payloads are covered above).
                if type != .f32 && type != .f16 && type != .bf16 {
                    let scaleOffsets = type == .q6_K ? [208] : type == .q4_1 || type == .q5_1 || type == .q4_K || type == .q5_K ? [0, 2] : [0]
                    for b in 0..<blocks { for o in scaleOffsets { bytes[b * type.blockBytes + o + 1] &= 0x3B } }
                }
                var fast = [Float](repeating: .nan, count: elements), reference = fast
                bytes.withUnsafeBytes { raw in
                    fast.withUnsafeMutableBufferPointer { Dequantize.dequantize(type, raw, into: $0) }
                    reference.withUnsafeMutableBufferPointer { DequantizeReference.dequantize(type, raw, into: $0) }
                }
                XCTAssertEqual(fast.map(\.bitPattern), reference.map(\.bitPattern), "\(type.name), \(blocks) blocks")
            }
        }
    }

    func testBlockSizesAreGGMLs() {
        // (block size, bytes) from gguf's GGML_QUANT_SIZES.
        let expected: [GGMLType: (Int, Int)] = [.f32: (1, 4), .f16: (1, 2), .bf16: (1, 2), .q8_0: (32, 34), .q4_0: (32, 18),
                                                .q4_1: (32, 20), .q5_0: (32, 22), .q5_1: (32, 24), .q4_K: (256, 144),
                                                .q5_K: (256, 176), .q6_K: (256, 210)]
        for (t, (n, b)) in expected {
            XCTAssertEqual(t.blockSize, n, t.name)
            XCTAssertEqual(t.blockBytes, b, t.name)
        }
    }
}
