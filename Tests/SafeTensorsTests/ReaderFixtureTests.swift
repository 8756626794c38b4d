import Foundation
import XCTest
import Formats
import Tensors
@testable import SafeTensors

/// Reads the files Python's safetensors wrote and checks every tensor against the manifest.
/// Tolerance: none — values are compared exactly (floats bit for bit after widening to f32/f64).
final class ReaderFixtureTests: XCTestCase {
    func testEveryFixtureFileReadsExactly() throws {
        let manifest = try Fixtures.manifest()
        let files = try XCTUnwrap(manifest["files"]?.arrayValue)
        XCTAssertEqual(files.count, 3)
        for entry in files {
            let name = try XCTUnwrap(entry["file"]?.stringValue)
            let file = try SafeTensorsFile(path: Fixtures.path(name))
            let expected = try ManifestTensor.list(entry["tensors"])
            XCTAssertEqual(Set(file.names), Set(expected.map(\.name)), name)
            XCTAssertEqual(file.names.count, expected.count, name)
            let meta = try XCTUnwrap(entry["metadata"]?.objectValue)
            XCTAssertEqual(file.metadata, Dictionary(uniqueKeysWithValues: meta.map { ($0.key, $0.value.stringValue!) }), name)
            for t in expected { try check(t, in: file) }
        }
    }

    private func check(_ t: ManifestTensor, in file: SafeTensorsFile) throws {
        let info = try XCTUnwrap(file.info(t.name), t.name)
        XCTAssertEqual(info.dtype, t.dtype, t.name)
        XCTAssertEqual(info.shape, t.shape, t.name)
        XCTAssertEqual(info.elementCount, t.values.count, t.name)
        XCTAssertEqual(info.fileRange.lowerBound, 8 + file.headerLength + info.dataOffsets.lowerBound)
        let raw = try file.rawBytes(t.name)
        XCTAssertEqual(Array(raw), t.bytes, "bytes of \(t.name)")
        switch t.dtype {
        case .f32, .bf16, .f16:
            let got = try file.floats(t.name)
            XCTAssertEqual(got.map(\.bitPattern), t.floats.map(\.bitPattern), t.name)
        case .f64:
            let got = (0..<info.elementCount).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
            XCTAssertEqual(got, t.values.map { $0.doubleValue! }, t.name)
        default:
            XCTAssertEqual(try file.int64s(t.name), t.integers, t.name)
        }
    }

    func testNamesAreInFileOrderAndDataIsZeroCopy() throws {
        let file = try SafeTensorsFile(path: Fixtures.path("dtypes.safetensors"))
        // safetensors lays out by dtype (I64, F64, F32, I32, BF16, F16, I16, I8, U8, BOOL), then name.
        XCTAssertEqual(file.names.first, "ids")
        XCTAssertEqual(file.names.last, "mask")
        XCTAssertEqual(file.tensors.map(\.dataOffsets.lowerBound), file.tensors.map(\.dataOffsets.lowerBound).sorted())
        let a = try file.rawBytes("zeta.weight")
        let b = try file.rawBytes("zeta.weight")
        XCTAssertEqual(a.baseAddress, b.baseAddress, "the same map, not a copy")
        XCTAssertEqual(file.fileSize, try Fixtures.data("dtypes.safetensors").count)
    }

    func testZeroDimAndEmptyTensors() throws {
        let file = try SafeTensorsFile(path: Fixtures.path("dtypes.safetensors"))
        XCTAssertEqual(file.info("scalar")?.shape, [])
        XCTAssertEqual(try file.floats("scalar"), [2.75])
        XCTAssertEqual(file.info("empty")?.shape, [0])
        XCTAssertEqual(try file.floats("empty"), [])
        XCTAssertEqual(file.info("empty_2d")?.shape, [3, 0])
        XCTAssertEqual(file.info("empty_2d")?.byteCount, 0)
        XCTAssertEqual(try file.floats("empty_2d"), [])
        let none = try SafeTensorsFile(path: Fixtures.path("no_tensors.safetensors"))
        XCTAssertEqual(none.names, [])
        XCTAssertEqual(none.metadata, ["format": "pt"])
    }

    func testEscapedAndNonASCIINames() throws {
        let file = try SafeTensorsFile(path: Fixtures.path("dtypes.safetensors"))
        XCTAssertEqual(try file.floats("odd \"name\"\twith é"), [1.5])
        let meta = try SafeTensorsFile(path: Fixtures.path("metadata.safetensors"))
        XCTAssertEqual(meta.metadata["zeta"], "ü \"quoted\"")
        XCTAssertEqual(meta.metadataKeys, ["format", "source", "zeta"])
    }

    func testReadFloatsIntoBufferAndConversionErrors() throws {
        let file = try SafeTensorsFile(path: Fixtures.path("dtypes.safetensors"))
        var out = [Float](repeating: .nan, count: 5)
        try out.withUnsafeMutableBufferPointer { try file.readFloats("layers.10.bias", into: $0) }
        XCTAssertEqual(out, try file.floats("layers.10.bias"))

        var short = [Float](repeating: 0, count: 4)
        XCTAssertThrowsError(try short.withUnsafeMutableBufferPointer { try file.readFloats("layers.10.bias", into: $0) }) { e in
            XCTAssertEqual(e as? SafeTensorsError, .elementCountMismatch(source: file.path, tensor: "layers.10.bias", expected: 5, given: 4))
        }
        XCTAssertThrowsError(try file.floats("ids")) { e in
            XCTAssertTrue("\(e)".contains("'ids' is I64"), "\(e)")
            XCTAssertTrue("\(e)".contains("dtypes.safetensors"), "\(e)")
        }
        XCTAssertThrowsError(try file.int64s("alpha")) { e in
            guard case .unsupportedConversion(_, "alpha", .f16, _)? = e as? SafeTensorsError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try file.rawBytes("nope")) { e in
            XCTAssertEqual(e as? SafeTensorsError, .tensorNotFound(source: file.path, name: "nope"))
        }
        XCTAssertNil(file.info("nope"))
    }

    func testSummaryListsTensorsAndTotals() throws {
        let file = try SafeTensorsFile(path: Fixtures.path("dtypes.safetensors"))
        let s = file.summary()
        let expectedParameters = file.tensors.reduce(0) { $0 + $1.elementCount }
        XCTAssertEqual(file.parameterCount, expectedParameters)
        XCTAssertTrue(s.contains("16 tensors, \(expectedParameters) parameters"), s)
        XCTAssertTrue(s.contains("metadata: format=pt"), s)
        XCTAssertTrue(s.contains("BF16  [4, 2]"), s)
        XCTAssertTrue(s.contains("model.embed_tokens.weight"), s)
        XCTAssertEqual(groupedDigits(1_234_567), "1,234,567")
    }
}
