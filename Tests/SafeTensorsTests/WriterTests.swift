import Foundation
import XCTest
import Formats
import Tensors
@testable import SafeTensors

/// The Swift writer against files written by `safetensors.torch.save_file`: byte equality.
final class WriterTests: XCTestCase {
    func testRebuiltFixturesAreByteIdenticalToPython() throws {
        let dir = try makeTemporaryDirectory(self)
        let manifest = try Fixtures.manifest()
        for entry in try XCTUnwrap(manifest["files"]?.arrayValue) {
            let name = try XCTUnwrap(entry["file"]?.stringValue)
            let meta = try XCTUnwrap(entry["metadata"]?.objectValue)
            var writer = SafeTensorsWriter(metadata: Dictionary(uniqueKeysWithValues: meta.map { ($0.key, $0.value.stringValue!) }))
            for t in try ManifestTensor.list(entry["tensors"]) { try t.add(to: &writer) }
            let out = (dir as NSString).appendingPathComponent(name)
            try writer.write(to: out)
            let ours = try Data(contentsOf: URL(fileURLWithPath: out))
            let theirs = try Fixtures.data(name)
            XCTAssertEqual(ours.count, theirs.count, name)
            XCTAssertTrue(ours == theirs, "\(name) differs from the Python-written file")
        }
    }

    func testHeaderLayoutAndPadding() throws {
        var w = SafeTensorsWriter()
        try w.add("b", shape: [1], floats: [1])
        try w.add("a", dtype: .i64, shape: [1], bytes: [7, 0, 0, 0, 0, 0, 0, 0])
        try w.add("c", dtype: .f64, shape: [], bytes: [UInt8](repeating: 0, count: 8))
        let header = try w.headerBytes()
        let text = String(decoding: header, as: UTF8.self)
        XCTAssertEqual(text.trimmingCharacters(in: .whitespaces),
                       #"{"__metadata__":{"format":"pt"},"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"c":{"dtype":"F64","shape":[],"data_offsets":[8,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#)
        XCTAssertEqual(header.count % 8, 0)
        XCTAssertEqual(w.dataSize, 20)
    }

    func testRoundTripThroughReaderWithConversions() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = (dir as NSString).appendingPathComponent("rt.safetensors")
        let values: [Float] = (0..<1000).map { Float($0) * 0.37 - 100 } + [65504, 70000, 1e-7, -0, .infinity]
        var w = SafeTensorsWriter(metadata: ["note": "round trip"])
        try w.add("f32", shape: [values.count], floats: values)
        try w.add("bf16", shape: [5, values.count / 5], floats: values, as: .bf16)
        try w.add("f16", shape: [values.count], floats: values, as: .f16)
        try w.add("mask", dtype: .bool, shape: [3], bytes: [1, 0, 1])
        try w.write(to: path)

        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.metadata, ["format": "pt", "note": "round trip"])
        // Tolerance: exact — f32 stored as is; bf16/f16 equal the PyTorch-exact rounding of each value.
        XCTAssertEqual(try f.floats("f32").map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(try f.floats("bf16").map(\.bitPattern), values.map { HalfConversion.float(bf16: HalfConversion.bf16Bits($0)).bitPattern })
        XCTAssertEqual(try f.floats("f16").map(\.bitPattern), values.map { HalfConversion.float(f16: HalfConversion.f16Bits($0)).bitPattern })
        XCTAssertEqual(try f.int64s("mask"), [1, 0, 1])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [], "temporary file renamed away")
    }

    func testStreamingProducersMatchWholeBuffers() throws {
        let dir = try makeTemporaryDirectory(self)
        // Larger than the 1 MiB write buffer and the 64K-element conversion chunk.
        let values = (0..<300_000).map { Float(sin(Double($0) * 0.001)) }
        var whole = SafeTensorsWriter()
        try whole.add("w", shape: [300_000], floats: values, as: .bf16)
        try whole.add("raw", dtype: .f32, shape: [300_000], source: .bytes(values.withUnsafeBytes { Array($0) }))
        var streamed = SafeTensorsWriter()
        try streamed.add("w", dtype: .bf16, shape: [300_000], source: .floatProducer(count: 300_000) { emit in
            try values.withUnsafeBufferPointer { all in
                for start in stride(from: 0, to: all.count, by: 70_001) {
                    try emit(UnsafeBufferPointer(rebasing: all[start..<min(start + 70_001, all.count)]))
                }
            }
        })
        try streamed.add("raw", dtype: .f32, shape: [300_000], source: .rawProducer(byteCount: 1_200_000) { emit in
            try values.withUnsafeBytes { try emit($0) }
        })
        let a = (dir as NSString).appendingPathComponent("a.safetensors")
        let b = (dir as NSString).appendingPathComponent("b.safetensors")
        try whole.write(to: a)
        try streamed.write(to: b)
        XCTAssertTrue(try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b)))
        XCTAssertEqual(try SafeTensorsFile(path: b).floats("raw"), values)
    }

    func testProducerGivingTheWrongAmountFailsAndKeepsOldFile() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = (dir as NSString).appendingPathComponent("keep.safetensors")
        var good = SafeTensorsWriter()
        try good.add("x", shape: [2], floats: [1, 2])
        try good.write(to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        var bad = SafeTensorsWriter()
        try bad.add("x", dtype: .f32, shape: [2], source: .rawProducer(byteCount: 8) { emit in
            try [UInt8](repeating: 0, count: 4).withUnsafeBytes { try emit($0) }
        })
        XCTAssertThrowsError(try bad.write(to: path)) { e in
            XCTAssertTrue("\(e)".contains("gave 4 of the declared 8 bytes"), "\(e)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["keep.safetensors"])
    }

    func testInvalidInputsAreRejected() throws {
        var w = SafeTensorsWriter()
        try w.add("x", shape: [2], floats: [1, 2])
        XCTAssertThrowsError(try w.add("x", shape: [1], floats: [1])) { XCTAssertTrue("\($0)".contains("added twice")) }
        XCTAssertThrowsError(try w.add("__metadata__", shape: [1], floats: [1])) { XCTAssertTrue("\($0)".contains("reserved")) }
        XCTAssertThrowsError(try w.add("n", shape: [-1], floats: [])) { XCTAssertTrue("\($0)".contains("negative")) }
        XCTAssertThrowsError(try w.add("y", shape: [3], floats: [1, 2])) { XCTAssertTrue("\($0)".contains("3 elements, got 2")) }
        XCTAssertThrowsError(try w.add("z", shape: [1], floats: [1], as: .i32)) { XCTAssertTrue("\($0)".contains("F32, BF16 or F16")) }
        XCTAssertThrowsError(try w.add("b", dtype: .i64, shape: [2], bytes: [0])) { XCTAssertTrue("\($0)".contains("needs 16 bytes, got 1")) }
        w.metadata["format"] = "np"
        XCTAssertThrowsError(try w.headerBytes()) { XCTAssertTrue("\($0)".contains("format must be \"pt\"")) }
    }

    func testWriteIntoMissingFolderNamesThePath() throws {
        var w = SafeTensorsWriter()
        try w.add("x", shape: [1], floats: [1])
        XCTAssertThrowsError(try w.write(to: "/nonexistent-folder-xyz/model.safetensors")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent-folder-xyz/model.safetensors"), "\(e)")
        }
    }
}
