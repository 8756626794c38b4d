import Foundation
import XCTest
@testable import SafeTensors

/// One hand-built malformed file per fault; each must be refused with an error naming the file (and the
/// tensor where one is involved). A few legal oddities must be accepted.
final class MalformedFileTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory(self)
    }

    private func entry(_ name: String = "a", dtype: String = "F32", shape: String = "[2]", offsets: String = "[0,8]") -> String {
        #""\#(name)":{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}"#
    }

    /// Opens `path`, expects a `SafeTensorsError` whose description names the file and contains `parts`.
    private func expectFailure(_ path: String, _ parts: String..., file: StaticString = #filePath, line: UInt = #line,
                               match: (SafeTensorsError) -> Bool) {
        XCTAssertThrowsError(try SafeTensorsFile(path: path), file: file, line: line) { error in
            guard let e = error as? SafeTensorsError else { return XCTFail("not a SafeTensorsError: \(error)", file: file, line: line) }
            XCTAssertTrue(match(e), "unexpected case: \(e)", file: file, line: line)
            let text = e.description
            XCTAssertTrue(text.contains(path), "does not name the file: \(text)", file: file, line: line)
            for p in parts { XCTAssertTrue(text.contains(p), "'\(p)' missing from: \(text)", file: file, line: line) }
        }
    }

    func testFileShorterThanEightBytes() throws {
        let path = (dir as NSString).appendingPathComponent("short.safetensors")
        try Data([1, 2, 3, 4, 5]).write(to: URL(fileURLWithPath: path))
        expectFailure(path, "truncated", "5 bytes") { if case .truncated(_, 5) = $0 { return true }; return false }
        let empty = (dir as NSString).appendingPathComponent("empty.safetensors")
        try Data().write(to: URL(fileURLWithPath: empty))
        expectFailure(empty, "truncated") { if case .truncated(_, 0) = $0 { return true }; return false }
    }

    func testHeaderLengthBeyondFile() throws {
        let path = try writeRawFile(dir, "beyond.safetensors", header: "{}", declaredLength: 1000)
        expectFailure(path, "1000", "past the end") { if case .headerBeyondFile = $0 { return true }; return false }
    }

    func testHeaderLengthOverLimit() throws {
        let path = try writeRawFile(dir, "huge.safetensors", header: "{}", declaredLength: 100_000_001)
        expectFailure(path, "100000001", "100000000") { if case .headerTooLarge = $0 { return true }; return false }
        let max = try writeRawFile(dir, "max.safetensors", header: "{}", declaredLength: UInt64.max)
        expectFailure(max, "exceeds") { if case .headerTooLarge = $0 { return true }; return false }
    }

    func testHeaderNotUTF8() throws {
        let header: [UInt8] = Array(#"{"__metadata__":{"x":""#.utf8) + [0xFF, 0xFE] + Array(#""}}"#.utf8)
        let path = try writeRawFile(dir, "latin.safetensors", header: header)
        expectFailure(path, "UTF-8") { $0 == .headerNotUTF8(path: path) }
    }

    func testHeaderNotJSON() throws {
        let path = try writeRawFile(dir, "cut.safetensors", header: #"{"a":{"dtype":"F32""#)
        expectFailure(path, "not valid JSON") { if case .headerNotJSON = $0 { return true }; return false }
    }

    func testHeaderNotAnObject() throws {
        let path = try writeRawFile(dir, "array.safetensors", header: "[1, 2]  ")
        expectFailure(path, "JSON object", "an array") { if case .headerNotObject = $0 { return true }; return false }
    }

    func testEntryMissingFields() throws {
        for (field, header) in [
            ("dtype", #"{"a":{"shape":[2],"data_offsets":[0,8]}}"#),
            ("shape", #"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#),
            ("data_offsets", #"{"a":{"dtype":"F32","shape":[2]}}"#),
        ] {
            let path = try writeRawFile(dir, "missing-\(field).safetensors", header: header, data: [UInt8](repeating: 0, count: 8))
            expectFailure(path, "'a'", "missing \"\(field)\"") { if case .invalidEntry(_, "a", _) = $0 { return true }; return false }
        }
    }

    func testEntryWrongTypes() throws {
        for (i, (header, fault)) in [
            (#"{"a":[1]}"#, "entry must be an object"),
            (#"{"a":{"dtype":5,"shape":[2],"data_offsets":[0,8]}}"#, "\"dtype\" must be a string"),
            (#"{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#, "\"shape\" must be an array"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, "array of two integers"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}}"#, "must hold two integers"),
        ].enumerated() {
            let path = try writeRawFile(dir, "types-\(i).safetensors", header: header, data: [UInt8](repeating: 0, count: 8))
            expectFailure(path, "'a'", fault) { if case .invalidEntry(_, "a", _) = $0 { return true }; return false }
        }
    }

    func testUnknownDType() throws {
        let path = try writeRawFile(dir, "dtype.safetensors", header: "{" + entry(dtype: "F7") + "}", data: [UInt8](repeating: 0, count: 8))
        expectFailure(path, "'a'", "\"F7\"", "known:", "BF16", "BOOL") { $0 == .unknownDType(path: path, tensor: "a", dtype: "F7") }
    }

    func testDataOffsetsOutOfRange() throws {
        let neg = try writeRawFile(dir, "neg.safetensors", header: "{" + entry(offsets: "[-8,0]") + "}", data: [UInt8](repeating: 0, count: 8))
        expectFailure(neg, "'a'", "out of range") { if case .invalidOffsets(_, "a", -8, 0, _) = $0 { return true }; return false }
        let huge = try writeRawFile(dir, "huge-offset.safetensors", header: "{" + entry(shape: "[0]", offsets: "[9223372036854775807,9223372036854775807]") + "}")
        expectFailure(huge, "'a'", "out of range") { if case .invalidOffsets(_, "a", _, _, _) = $0 { return true }; return false }
    }

    func testBeginAfterEnd() throws {
        let path = try writeRawFile(dir, "reversed.safetensors", header: "{" + entry(offsets: "[8,0]") + "}", data: [UInt8](repeating: 0, count: 8))
        expectFailure(path, "'a'", "begin after end") { if case .invalidOffsets(_, "a", 8, 0, _) = $0 { return true }; return false }
    }

    func testByteLengthDisagreesWithShape() throws {
        let path = try writeRawFile(dir, "length.safetensors", header: "{" + entry(shape: "[3]", offsets: "[0,8]") + "}", data: [UInt8](repeating: 0, count: 8))
        expectFailure(path, "'a'", "needs 12 bytes", "span 8") {
            $0 == .byteLengthMismatch(path: path, tensor: "a", dtype: .f32, shape: [3], expected: 12, actual: 8)
        }
        let overflow = try writeRawFile(dir, "overflow.safetensors", header: "{" + entry(shape: "[4294967296,4294967296]", offsets: "[0,8]") + "}", data: [UInt8](repeating: 0, count: 8))
        expectFailure(overflow, "'a'", "64 bits") { if case .invalidEntry(_, "a", _) = $0 { return true }; return false }
    }

    func testOverlappingTensors() throws {
        let header = "{" + entry("a", offsets: "[0,8]") + "," + entry("b", offsets: "[4,12]") + "}"
        let path = try writeRawFile(dir, "overlap.safetensors", header: header, data: [UInt8](repeating: 0, count: 12))
        expectFailure(path, "'b'", "overlaps 'a'") { if case .layout = $0 { return true }; return false }
        // An empty tensor inside another's bytes also breaks the tiling.
        let inside = "{" + entry("a", offsets: "[0,8]") + "," + entry("e", shape: "[0]", offsets: "[4,4]") + "}"
        let path2 = try writeRawFile(dir, "inside.safetensors", header: inside, data: [UInt8](repeating: 0, count: 8))
        expectFailure(path2, "'e'", "overlaps 'a'") { if case .layout = $0 { return true }; return false }
    }

    func testHolesBetweenTensors() throws {
        let header = "{" + entry("a", offsets: "[0,8]") + "," + entry("b", offsets: "[12,20]") + "}"
        let path = try writeRawFile(dir, "hole.safetensors", header: header, data: [UInt8](repeating: 0, count: 20))
        expectFailure(path, "hole of 4 bytes after 'a'", "'b'") { if case .layout = $0 { return true }; return false }
        let start = try writeRawFile(dir, "hole-start.safetensors", header: "{" + entry(offsets: "[4,12]") + "}", data: [UInt8](repeating: 0, count: 12))
        expectFailure(start, "hole of 4 bytes at the start") { if case .layout = $0 { return true }; return false }
    }

    func testTruncatedData() throws {
        let header = "{" + entry("a", offsets: "[0,8]") + "," + entry("b", offsets: "[8,16]") + "}"
        let path = try writeRawFile(dir, "truncated.safetensors", header: header, data: [UInt8](repeating: 0, count: 12))
        expectFailure(path, "'b'", "truncated") { if case .invalidOffsets(_, "b", 8, 16, _) = $0 { return true }; return false }
    }

    func testBytesAfterTheLastTensor() throws {
        let header = "{" + entry() + "}"
        let path = try writeRawFile(dir, "trailing.safetensors", header: header, data: [UInt8](repeating: 0, count: 11))
        let size = 8 + header.utf8.count + 11
        expectFailure(path, "3 bytes after the last tensor") { $0 == .dataSizeMismatch(path: path, expectedFileSize: size - 3, fileSize: size) }
    }

    func testDuplicateNames() throws {
        // json-c would keep only the second entry, which here even describes a valid file.
        let header = "{" + entry("a", offsets: "[0,8]") + "," + entry("a", offsets: "[0,8]") + "}"
        let path = try writeRawFile(dir, "dup.safetensors", header: header, data: [UInt8](repeating: 0, count: 8))
        expectFailure(path, "'a'", "more than once") { $0 == .duplicateTensor(path: path, name: "a") }
        // The same name spelled with an escape is still the same name.
        let escaped = "{" + entry("ab", offsets: "[0,8]") + "," + entry(#"a\u0062"#, offsets: "[0,8]") + "}"
        let path2 = try writeRawFile(dir, "dup-escaped.safetensors", header: escaped, data: [UInt8](repeating: 0, count: 8))
        expectFailure(path2, "'ab'") { $0 == .duplicateTensor(path: path2, name: "ab") }
        // Keys repeated deeper in the document are not tensor names.
        let nested = #"{"__metadata__":{"a":"1","b":"2"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        XCTAssertNoThrow(try SafeTensorsFile(path: try writeRawFile(dir, "nested.safetensors", header: nested, data: [UInt8](repeating: 0, count: 8))))
    }

    func testNegativeOrNonIntegerShape() throws {
        for (i, (shape, fault)) in [("[-2]", "shape[0] is negative"), ("[2.5]", "shape[0] must be a non-negative integer"),
                                    ("[2.0]", "found a number"), (#"["2"]"#, "found a string")].enumerated() {
            let path = try writeRawFile(dir, "shape-\(i).safetensors", header: "{" + entry(shape: shape) + "}", data: [UInt8](repeating: 0, count: 8))
            expectFailure(path, "'a'", fault) { if case .invalidEntry(_, "a", _) = $0 { return true }; return false }
        }
    }

    func testMetadataMustMapStringsToStrings() throws {
        for (i, (meta, fault)) in [(#"{"x":1}"#, "value of 'x' must be a string"), (#"["pt"]"#, "must be an object")].enumerated() {
            let header = #"{"__metadata__":"# + meta + "," + entry() + "}"
            let path = try writeRawFile(dir, "meta-\(i).safetensors", header: header, data: [UInt8](repeating: 0, count: 8))
            expectFailure(path, "__metadata__", fault) { if case .invalidMetadata = $0 { return true }; return false }
        }
    }

    func testLegalOdditiesAreAccepted() throws {
        // Entries in reverse offset order, a 0-dim and two empty tensors, null metadata, leading
        // whitespace, unknown extra fields, no padding.
        let header = #" {"__metadata__":null,"# + entry("z", offsets: "[8,16]") + "," + entry("s", shape: "[]", offsets: "[4,8]") + ","
            + entry("e1", shape: "[0,5]", offsets: "[4,4]") + "," + entry("e0", shape: "[0]", offsets: "[0,0]") + ","
            + #""y":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":true}}"#
        let data: [UInt8] = [0, 0, 0x80, 0x3F] + [0, 0, 0, 0x40] + [0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40]
        let path = try writeRawFile(dir, "odd.safetensors", header: header, data: data)
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.names, ["e0", "y", "e1", "s", "z"])
        XCTAssertEqual(try f.floats("y"), [1])
        XCTAssertEqual(try f.floats("s"), [2])
        XCTAssertEqual(try f.floats("z"), [3, 4])
        XCTAssertEqual(try f.floats("e1"), [])
        XCTAssertEqual(f.metadata, [:])
    }

    func testMissingFileAndFolderAreIOErrors() throws {
        let missing = (dir as NSString).appendingPathComponent("nope.safetensors")
        expectFailure(missing, "open failed") { if case .io(_, "open", _) = $0 { return true }; return false }
        expectFailure(dir, "a folder, expected a file") { $0 == .notARegularFile(path: self.dir) }
    }
}
