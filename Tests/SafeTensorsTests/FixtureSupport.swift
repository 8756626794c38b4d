import Foundation
import XCTest
import Formats
import Tensors
@testable import SafeTensors

/// The fixtures written by Scripts/reference/gen_safetensors.py and its manifest of exact values.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/safetensors").path

    static func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    static func manifest() throws -> JSONValue { try JSONValue.read(path: path("manifest.json")) }

    static func data(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path(name)))
    }
}

/// One tensor of the manifest: its dtype, shape and values as JSON numbers (floats exact in double).
struct ManifestTensor {
    let name: String
    let dtype: DType
    let shape: [Int]
    let values: [JSONValue]

    init(_ json: JSONValue) throws {
        name = try XCTUnwrap(json["name"]?.stringValue)
        dtype = try XCTUnwrap(DType(rawValue: try XCTUnwrap(json["dtype"]?.stringValue)))
        shape = try XCTUnwrap(json["shape"]?.arrayValue).map { try XCTUnwrap($0.intValue) }
        values = try XCTUnwrap(json["values"]?.arrayValue)
    }

    static func list(_ json: JSONValue?) throws -> [ManifestTensor] {
        try XCTUnwrap(json?.arrayValue).map(ManifestTensor.init)
    }

    var floats: [Float] { values.map { Float($0.doubleValue!) } }

    var integers: [Int64] {
        values.map { v in v.boolValue.map { $0 ? 1 : 0 } ?? Int64(v.intValue!) }
    }

    /// The little-endian bytes the tensor should have on disk.
    var bytes: [UInt8] {
        var out: [UInt8] = []
        func append<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        switch dtype {
        case .f64: values.forEach { append($0.doubleValue!.bitPattern) }
        case .f32: floats.forEach { append($0.bitPattern) }
        case .bf16: floats.forEach { append(HalfConversion.bf16Bits($0)) }
        case .f16: floats.forEach { append(HalfConversion.f16Bits($0)) }
        case .i64, .u64: integers.forEach { append($0) }
        case .i32, .u32: integers.forEach { append(Int32(truncatingIfNeeded: $0)) }
        case .i16, .u16: integers.forEach { append(Int16(truncatingIfNeeded: $0)) }
        case .i8, .u8, .bool: integers.forEach { append(UInt8(truncatingIfNeeded: $0)) }
        }
        return out
    }

    /// Adds the tensor to `writer`: float dtypes from f32 values (exercising the conversion on the
    /// way), everything else from bytes.
    func add(to writer: inout SafeTensorsWriter) throws {
        switch dtype {
        case .f32, .bf16, .f16: try writer.add(name, shape: shape, floats: floats, as: dtype)
        default: try writer.add(name, dtype: dtype, shape: shape, bytes: bytes)
        }
    }
}

/// A fresh folder under the system temporary directory, removed when the test ends.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("safetensors-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// Writes a hand-built safetensors file: an 8-byte length (the header's, unless overridden), the
/// header bytes, then `data`.
func writeRawFile(_ dir: String, _ name: String, header: [UInt8], data: [UInt8] = [], declaredLength: UInt64? = nil) throws -> String {
    var bytes: [UInt8] = []
    withUnsafeBytes(of: (declaredLength ?? UInt64(header.count)).littleEndian) { bytes.append(contentsOf: $0) }
    bytes += header + data
    let path = (dir as NSString).appendingPathComponent(name)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

func writeRawFile(_ dir: String, _ name: String, header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) throws -> String {
    try writeRawFile(dir, name, header: Array(header.utf8), data: data, declaredLength: declaredLength)
}
