import Foundation
import XCTest
import Formats
@testable import GGUF

/// The fixtures written by Scripts/reference/gen_gguf.py.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/gguf").path

    static func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
}

/// A fresh folder under the system temporary directory, removed when the test ends.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("gguf-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// Builds GGUF bytes by hand, field by field, so tests can write every kind of malformed file.
struct RawGGUF {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }

    /// Magic, version and the two counts.
    mutating func header(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) {
        bytes += Array("GGUF".utf8)
        u32(version)
        u64(tensors)
        u64(kvs)
    }

    mutating func kvString(_ key: String, _ value: String) { string(key); u32(8); string(value) }
    mutating func kvU32(_ key: String, _ value: UInt32) { string(key); u32(4); u32(value) }

    /// A tensor info: name, dims (innermost first), ggml type, offset.
    mutating func tensor(_ name: String, dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0) {
        string(name)
        u32(UInt32(dims.count))
        for d in dims { u64(d) }
        u32(type)
        u64(offset)
    }

    /// Zero padding to the next multiple of `alignment`.
    mutating func pad(_ alignment: Int = 32) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    func write(_ dir: String, _ name: String) throws -> String {
        let path = (dir as NSString).appendingPathComponent(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}
