import XCTest
@testable import Formats

final class YAMLEmitterTests: XCTestCase {
    func testRoundTripKeepsTypesOrderAndTrickyStrings() throws {
        let source = """
        model: {path: /m, name: "true"}
        numbers: {i: -3, f: 2.0e-5, whole: 1.0, big: 1e300, inf: .inf, ninf: -.inf}
        strings: ["", "null", "1e-5", "0x10", "  padded ", "a: b", "# hash", "multi\\nline\\n", "é ü 中", "-", "${x.y}", "'q'", "[x]"]
        empty_map: {}
        empty_list: []
        nothing: null
        flags: [true, false]
        "1": numeric key
        "<<": not a merge
        nested:
          - {a: 1, b: [1, 2]}
          - - deep
        """
        let tree = try YAMLParser.parse(source, source: "in.yaml")
        let text = try YAMLEmitter.emit(tree, header: "Resolved recipe\nsecond line")
        XCTAssertTrue(text.hasPrefix("# Resolved recipe\n# second line\n"), text)
        let back = try YAMLParser.parse(text, source: "out.yaml")
        XCTAssertEqual(back.jsonValue, tree.jsonValue, text)
        XCTAssertEqual(back.entries?.map(\.key), tree.entries?.map(\.key))
        XCTAssertEqual(back["numbers"]?["whole"]?.value, .double(1.0))
        XCTAssertEqual(back["numbers"]?["f"]?.value, .double(2.0e-5))
        XCTAssertEqual(back["strings"]?.items?.map(\.value), tree["strings"]?.items?.map(\.value))
    }

    func testBlockStyleOutput() throws {
        let tree = try YAMLParser.parse("a: {b: 1, c: [x, y]}\n", source: "in.yaml")
        XCTAssertEqual(try YAMLEmitter.emit(tree), "a:\n  b: 1\n  c:\n  - x\n  - y\n")
    }

    func testNaNRoundTrips() throws {
        let tree = YAMLNode(.mapping([YAMLEntry(key: "x", keyMark: YAMLMark(source: "", line: 1, column: 1),
                                                value: YAMLNode(.double(.nan), mark: YAMLMark(source: "", line: 1, column: 1)))]),
                            mark: YAMLMark(source: "", line: 1, column: 1))
        let back = try YAMLParser.parse(try YAMLEmitter.emit(tree), source: "out.yaml")
        XCTAssertTrue(back["x"]?.doubleValue?.isNaN ?? false)
    }

    func testWriteToFileAtomically() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("yaml-emit-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("recipe.yaml").path
        let tree = try YAMLParser.parse("seed: 42\nlist: [1]\n", source: "in.yaml")
        try YAMLEmitter.write(tree, to: path)
        XCTAssertEqual(try YAMLParser.read(path: path).jsonValue, tree.jsonValue)
    }
}
