import Foundation
import XCTest
@testable import Formats

/// json-c parsing into JSONValue, the Python-compatible writer, and the Decodable bridge.
final class JSONTests: XCTestCase {
    func testParseKeepsOrderTypesAndUnicode() throws {
        let v = try JSONValue.parse(#"{"z": 1, "a": [true, null, 2.5, -7, "é\u00e9\ud83d\ude00"], "m": {"k": "v"}}"#)
        XCTAssertEqual(v.objectValue?.keys, ["z", "a", "m"])
        XCTAssertEqual(v["a"]?.arrayValue, [.bool(true), .null, .double(2.5), .int(-7), .string("éé😀")])
        XCTAssertEqual(v["m"]?["k"]?.stringValue, "v")
        XCTAssertEqual(JSONValue.double(3.0).intValue, 3, "integral doubles read as integers")
        XCTAssertNil(JSONValue.double(3.5).intValue)
    }

    func testKeysAreExactNotCanonicallyEquivalent() throws {
        let v = try JSONValue.parse(#"{"\u00e9": 1, "e\u0301": 2}"#)
        XCTAssertEqual(v.objectValue?.count, 2)
        XCTAssertEqual(v["\u{e9}"], .int(1))
        XCTAssertEqual(v["e\u{301}"], .int(2))
    }

    func testParseErrorsNameTheSource() {
        // json-c (even in strict mode) accepts single-quoted strings; Python's json does not. Harmless for reading.
        for bad in ["", "{", #"{"a": 1,}"#, "[1, 2] x", "nul"] {
            XCTAssertThrowsError(try JSONValue.parse(bad, source: "conf.json"), bad) {
                XCTAssertTrue("\($0)".hasPrefix("conf.json: invalid JSON"), "\($0)")
            }
        }
        XCTAssertThrowsError(try JSONValue.read(path: "/nonexistent.json")) {
            XCTAssertTrue("\($0)".contains("/nonexistent.json: cannot read: no such file"), "\($0)")
        }
    }

    /// Surrogate escapes: a pair is one character (as Python's json and serde_json read it); an unpaired
    /// one is an error naming where (serde_json's "lone leading surrogate"), not a silent U+FFFD.
    func testLoneSurrogateEscapesAreErrors() throws {
        XCTAssertEqual(try JSONValue.parse(#""a\ud83d\ude00b""#), .string("a😀b"))
        XCTAssertEqual(try JSONValue.parse(#""x\\ud800""#), .string(#"x\ud800"#), "an escaped backslash, then plain text")
        XCTAssertEqual(try JSONValue.parse(#"{"\u00e9": "\uD7FF\uE000"}"#)["é"], .string("\u{D7FF}\u{E000}"))
        for (bad, column) in [(#""\ud800""#, 2), (#"["ok", "a\uDC00"]"#, 10), (#""\ud800\u0041""#, 2), (#""\udc00\ud800""#, 2)] {
            XCTAssertThrowsError(try JSONValue.parse(bad, source: "t.json"), bad) {
                XCTAssertTrue("\($0)".contains("is a lone UTF-16 surrogate escape") && "\($0)".contains("column \(column)"), "\($0)")
            }
        }
    }

    func testWriterMatchesPythonJsonDumps() throws {
        // python3 -c 'import json; print(json.dumps({"b": [1, 2.0, 1e-05, 1e16, None], "a": "é\n", "c": {}, "d": []}, indent=2, sort_keys=True))'
        let v = JSONValue.object(JSONObject([
            ("b", .array([.int(1), .double(2.0), .double(1e-05), .double(1e16), .null])),
            ("a", .string("é\n")), ("c", .object(JSONObject())), ("d", .array([])),
        ]))
        XCTAssertEqual(JSONWriter.transformers.string(v), """
        {
          "a": "\\u00e9\\n",
          "b": [
            1,
            2.0,
            1e-05,
            1e+16,
            null
          ],
          "c": {},
          "d": []
        }
        """)
        XCTAssertEqual(JSONWriter.compact.string(v), #"{"b":[1,2.0,1e-05,1e+16,null],"a":"é\n","c":{},"d":[]}"#)
        XCTAssertEqual(JSONWriter(asciiOnly: true).string(.string("😀\u{7f}")), #""\ud83d\ude00\u007f""#)
    }

    func testDecoderNamesKeyPathsAndTypes() throws {
        struct Inner: Decodable { let factor: Double }
        struct Outer: Decodable { let name: String; let inner: Inner; let list: [Int]; let optional: Int? }
        let ok = try JSONValueDecoder(source: "c.json").decode(Outer.self, from: JSONValue.parse(#"{"name": "x", "inner": {"factor": 2}, "list": [1, 2], "optional": null}"#))
        XCTAssertEqual(ok.inner.factor, 2)
        XCTAssertNil(ok.optional)
        XCTAssertThrowsError(try JSONValueDecoder(source: "c.json").decode(Outer.self, from: JSONValue.parse(#"{"name": "x", "inner": {"factor": "big"}, "list": [1]}"#))) {
            XCTAssertEqual("\($0)", "c.json: inner.factor: expected a number, found a string")
        }
        XCTAssertThrowsError(try JSONValueDecoder(source: "c.json").decode(Outer.self, from: JSONValue.parse(#"{"name": "x", "inner": {"factor": 1}, "list": [1, "two"]}"#))) {
            XCTAssertEqual("\($0)", "c.json: list[1]: expected an integer, found a string")
        }
        XCTAssertThrowsError(try JSONValueDecoder(source: "c.json").decode(Outer.self, from: JSONValue.parse(#"{"name": "x", "list": []}"#))) {
            XCTAssertEqual("\($0)", "c.json: missing required key 'inner'")
        }
    }

    func testAtomicWriteReplacesWholeFiles() throws {
        let path = NSTemporaryDirectory() + "sf-atomic-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try JSONValue.object(JSONObject([("a", .int(1))])).write(to: path)
        try JSONValue.object(JSONObject([("a", .int(2))])).write(to: path)
        XCTAssertEqual(try JSONValue.read(path: path)["a"], .int(2))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter { $0.hasPrefix("sf-atomic-\(getpid()).json.tmp") }
        XCTAssertEqual(leftovers, [])
        XCTAssertThrowsError(try AtomicFile.write(Data(), to: "/nonexistent-dir/x.json")) {
            XCTAssertTrue("\($0)".contains("/nonexistent-dir/x.json"), "\($0)")
        }
    }
}
