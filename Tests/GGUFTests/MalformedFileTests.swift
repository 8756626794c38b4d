import Foundation
import XCTest
import Tensors
@testable import GGUF

/// One hand-built malformed file per fault; each must be refused with a `GGUFError` naming the file (and the
/// key or tensor where one is involved) and saying what was expected. Truncations and byte flips of a real
/// fixture must never crash or hang: they either open or throw.
final class MalformedFileTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory(self)
    }

    private func expectFailure(_ path: String, _ parts: String..., file: StaticString = #filePath, line: UInt = #line,
                               match: (GGUFError) -> Bool) {
        XCTAssertThrowsError(try GGUFFile(path: path), file: file, line: line) { error in
            guard let e = error as? GGUFError else { return XCTFail("not a GGUFError: \(error)", file: file, line: line) }
            XCTAssertTrue(match(e), "unexpected case: \(e)", file: file, line: line)
            let text = e.description
            XCTAssertTrue(text.contains(path), "does not name the file: \(text)", file: file, line: line)
            for p in parts { XCTAssertTrue(text.contains(p), "'\(p)' missing from: \(text)", file: file, line: line) }
        }
    }

    /// A valid one-tensor file (F32 [4]) after `metadata`, for faults further in.
    private func file(_ name: String, kvs: UInt64 = 0, metadata: (inout RawGGUF) -> Void = { _ in },
                      tensors: [(String, [UInt64], UInt32, UInt64)] = [("t", [4], 0, 0)], data: Int = 16) throws -> String {
        var g = RawGGUF()
        g.header(tensors: UInt64(tensors.count), kvs: kvs)
        metadata(&g)
        for t in tensors { g.tensor(t.0, dims: t.1, type: t.2, offset: t.3) }
        g.pad()
        g.bytes += [UInt8](repeating: 0, count: data)
        return try g.write(dir, name)
    }

    func testNotGGUF() throws {
        let empty = try RawGGUF().write(dir, "empty.gguf")
        expectFailure(empty, "not a GGUF file", "empty file") { if case .badMagic(_, []) = $0 { return true }; return false }
        var g = RawGGUF()
        g.bytes = Array("{\"__metadata__\":{}}".utf8)
        let json = try g.write(dir, "json.gguf")
        expectFailure(json, "47 47 55 46", "7b 22 5f 5f") { if case .badMagic = $0 { return true }; return false }
    }

    func testVersions() throws {
        for v: UInt32 in [1, 4, 0] {
            var g = RawGGUF()
            g.header(version: v, tensors: 0, kvs: 0)
            let path = try g.write(dir, "v\(v).gguf")
            expectFailure(path, "version \(v)", "expected 2 or 3") { $0 == .unsupportedVersion(path: path, version: v) }
        }
        var g = RawGGUF()
        g.header(version: 3 << 24, tensors: 0, kvs: 0)
        let big = try g.write(dir, "big.gguf")
        expectFailure(big, "big-endian") { $0 == .bigEndian(path: big) }
    }

    func testTruncatedHeader() throws {
        var g = RawGGUF()
        g.bytes = Array("GGUF".utf8)
        g.u32(3)
        g.u32(7)  // half a tensor count
        let path = try g.write(dir, "short.gguf")
        expectFailure(path, "truncated", "tensor count", "offset 8") { if case .truncated(_, 8, 8, _) = $0 { return true }; return false }
    }

    func testAbsurdCounts() throws {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1 << 60)
        let kv = try g.write(dir, "kv.gguf")
        expectFailure(kv, "metadata count", "1152921504606846976", "corrupt") { if case .absurdCount = $0 { return true }; return false }
        var h = RawGGUF()
        h.header(tensors: UInt64.max, kvs: 0)
        let t = try h.write(dir, "tensors.gguf")
        expectFailure(t, "tensor count", "18446744073709551615") { if case .absurdCount = $0 { return true }; return false }
    }

    func testHugeString() throws {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.u64(1 << 62)  // key length
        g.bytes += [UInt8](repeating: 0, count: 20)
        let path = try g.write(dir, "string.gguf")
        expectFailure(path, "metadata key", "4611686018427387904 bytes", "remain") { if case .stringTooLong = $0 { return true }; return false }
    }

    func testInvalidUTF8Key() throws {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.u64(2)
        g.bytes += [0xC3, 0x28]
        g.u32(4)
        g.u32(1)
        let path = try g.write(dir, "utf8.gguf")
        expectFailure(path, "not valid UTF-8", "metadata key") { if case .invalidUTF8 = $0 { return true }; return false }
    }

    func testBadValues() throws {
        let unknown = try file("type.gguf", kvs: 1) { $0.string("general.x"); $0.u32(13); $0.u32(0) }
        expectFailure(unknown, "'general.x'", "unknown value type 13") { if case .unknownValueType(_, "general.x", 13) = $0 { return true }; return false }
        let bool = try file("bool.gguf", kvs: 1) { $0.string("tokenizer.ggml.add_bos_token"); $0.u32(7); $0.u8(2) }
        expectFailure(bool, "'tokenizer.ggml.add_bos_token'", "0 or 1, found 2") { if case .invalidBool = $0 { return true }; return false }
        let array = try file("array.gguf", kvs: 1) { $0.string("tokenizer.ggml.tokens"); $0.u32(9); $0.u32(8); $0.u64(1 << 40) }
        expectFailure(array, "'tokenizer.ggml.tokens'", "1099511627776 elements") { if case .arrayTooLong = $0 { return true }; return false }
        let nested = try file("nested.gguf", kvs: 1) { g in
            g.string("deep")
            g.u32(9)
            for _ in 0..<5 { g.u32(9); g.u64(1) }
            g.u32(4); g.u64(1); g.u32(0)
        }
        expectFailure(nested, "'deep'", "nested more than 4") { if case .nestingTooDeep = $0 { return true }; return false }
        let duplicate = try file("dup.gguf", kvs: 2) { $0.kvU32("a.b", 1); $0.kvU32("a.b", 2) }
        expectFailure(duplicate, "'a.b'", "more than once") { $0 == .duplicateKey(path: duplicate, key: "a.b") }
    }

    func testAlignment() throws {
        let odd = try file("align3.gguf", kvs: 1) { $0.kvU32("general.alignment", 3) }
        expectFailure(odd, "general.alignment", "power of two, found 3") { if case .invalidAlignment = $0 { return true }; return false }
        let typed = try file("alignstr.gguf", kvs: 1) { $0.kvString("general.alignment", "32") }
        expectFailure(typed, "general.alignment", "must be a u32") { if case .invalidAlignment = $0 { return true }; return false }
    }

    func testTensorInfos() throws {
        let dims = try file("dims.gguf", tensors: [("t", [1, 1, 1, 1, 1], 0, 0)])
        expectFailure(dims, "'t'", "5 dimensions", "at most 4") { if case .tooManyDimensions(_, "t", 5) = $0 { return true }; return false }
        let unknown = try file("type.gguf", tensors: [("t", [4], 99, 0)])
        expectFailure(unknown, "'t'", "unknown ggml type 99") { if case .unknownTensorType(_, "t", 99) = $0 { return true }; return false }
        let q2k = try file("q2k.gguf", tensors: [("w", [256], 10, 0)])
        expectFailure(q2k, "'w'", "Q2_K", "cannot be dequantized", "Q4_K") { if case .unsupportedTensorType = $0 { return true }; return false }
        let overflow = try file("overflow.gguf", tensors: [("t", [1 << 32, 1 << 32, 1 << 32], 0, 0)])
        expectFailure(overflow, "'t'", "64 bits") { if case .invalidShape = $0 { return true }; return false }
        let block = try file("block.gguf", tensors: [("q", [48], 8, 0)])
        expectFailure(block, "'q'", "48", "Q8_0 block size 32") { if case .invalidShape = $0 { return true }; return false }
        let misaligned = try file("misaligned.gguf", tensors: [("t", [4], 0, 4)])
        expectFailure(misaligned, "'t'", "offset 4", "alignment 32") { if case .misalignedTensor(_, "t", 4, 32) = $0 { return true }; return false }
        let beyond = try file("beyond.gguf", tensors: [("t", [4], 0, 1 << 40)])
        expectFailure(beyond, "'t'", "extend past", "truncated") { if case .tensorOutOfRange = $0 { return true }; return false }
        let overlap = try file("overlap.gguf", tensors: [("a", [16], 0, 0), ("b", [4], 0, 32)], data: 64)
        expectFailure(overlap, "'a'", "'b'", "overlap") { $0 == .overlappingTensors(path: overlap, first: "a", second: "b") }
        let twice = try file("twice.gguf", tensors: [("a", [4], 0, 0), ("a", [4], 0, 32)], data: 48)
        expectFailure(twice, "'a'", "more than once") { $0 == .duplicateTensor(path: twice, tensor: "a") }
    }

    func testTruncatedTensorData() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("llama_bpe.gguf")))
        let path = (dir as NSString).appendingPathComponent("cut.gguf")
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: path))
        expectFailure(path, "extend past", "data section") { if case .tensorOutOfRange = $0 { return true }; return false }
    }

    func testNotAFile() throws {
        XCTAssertThrowsError(try GGUFFile(path: dir)) { XCTAssertEqual($0 as? GGUFError, .notARegularFile(path: dir)) }
        let missing = dir + "/missing.gguf"
        XCTAssertThrowsError(try GGUFFile(path: missing)) { XCTAssertTrue("\($0)".contains("\(missing): open failed")) }
    }

    /// Every prefix length (in steps) and a few hundred single-byte corruptions of a real fixture: opening
    /// and converting must either work or throw, never crash, hang or allocate without bound.
    func testTruncationsAndByteFlipsNeverCrash() throws {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("llama_bpe.gguf"))))
        let path = (dir as NSString).appendingPathComponent("fuzz.gguf")
        var opened = 0, refused = 0
        func attempt(_ bytes: [UInt8]) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                let f = try GGUFFile(path: path)
                _ = try? GGUFToHuggingFace(file: f)
                opened += 1
            } catch is GGUFError { refused += 1 }
        }
        for cut in stride(from: 0, to: data.count, by: 97) { try attempt(Array(data.prefix(cut))) }
        var rng = CounterRNG(seed: 7)
        let headerEnd = try GGUFFile(path: Fixtures.path("llama_bpe.gguf")).dataOffset
        for _ in 0..<300 {
            var b = data
            b[rng.next(below: headerEnd)] = UInt8(truncatingIfNeeded: rng.nextUInt32())
            try attempt(b)
        }
        XCTAssertGreaterThan(refused, 0)
        XCTAssertGreaterThan(opened, 0)
    }
}
