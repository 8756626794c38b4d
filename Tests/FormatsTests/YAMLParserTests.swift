import XCTest
@testable import Formats

final class YAMLParserTests: XCTestCase {
    private func parse(_ text: String) throws -> YAMLNode { try YAMLParser.parse(text, source: "r.yaml") }

    func parseError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> YAMLError? {
        do {
            _ = try parse(text)
            XCTFail("expected a parse error", file: file, line: line)
            return nil
        } catch let e as YAMLError {
            return e
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return nil
        }
    }

    func testScalarResolutionFollowsCoreSchema() throws {
        let doc = try parse("""
        a: ~
        b:
        c: null
        d: true
        e: False
        f: -42
        g: 1.0e-5
        h: 2e-5
        i: .inf
        j: -.inf
        k: .nan
        l: "3"
        m: 'true'
        n: yes
        o: 0x1F
        p: 1_000
        q: 3.
        r: hello world
        s: 1.5.2
        t: 99999999999999999999
        u: +7
        """)
        XCTAssertEqual(doc["a"]?.value, .null)
        XCTAssertEqual(doc["b"]?.value, .null)
        XCTAssertEqual(doc["c"]?.value, .null)
        XCTAssertEqual(doc["d"]?.value, .bool(true))
        XCTAssertEqual(doc["e"]?.value, .bool(false))
        XCTAssertEqual(doc["f"]?.value, .int(-42))
        XCTAssertEqual(doc["g"]?.value, .double(1.0e-5))
        XCTAssertEqual(doc["h"]?.value, .double(2e-5))
        XCTAssertEqual(doc["i"]?.value, .double(.infinity))
        XCTAssertEqual(doc["j"]?.value, .double(-.infinity))
        XCTAssertTrue(doc["k"]?.doubleValue?.isNaN ?? false)
        XCTAssertEqual(doc["l"]?.value, .string("3"))
        XCTAssertEqual(doc["m"]?.value, .string("true"))
        XCTAssertEqual(doc["n"]?.value, .string("yes"))
        XCTAssertEqual(doc["o"]?.value, .int(31))
        XCTAssertEqual(doc["p"]?.value, .int(1000))
        XCTAssertEqual(doc["q"]?.value, .double(3))
        XCTAssertEqual(doc["r"]?.value, .string("hello world"))
        XCTAssertEqual(doc["s"]?.value, .string("1.5.2"))
        XCTAssertEqual(doc["t"]?.value, .double(1e20))
        XCTAssertEqual(doc["u"]?.value, .int(7))
    }

    func testMarksAndKeyOrder() throws {
        let doc = try parse("""
        # comment
        zeta: 1
        alpha:
          inner: [a, b]
        """)
        XCTAssertEqual(doc.entries?.map(\.key), ["zeta", "alpha"])
        XCTAssertEqual(doc.entries?[1].keyMark, YAMLMark(source: "r.yaml", line: 3, column: 1))
        XCTAssertEqual(doc["alpha"]?["inner"]?.mark, YAMLMark(source: "r.yaml", line: 4, column: 10))
        XCTAssertEqual(doc["alpha"]?["inner"]?.items?[1].mark.column, 14)
        XCTAssertEqual(doc.node(at: ["alpha", "inner", "1"])?.stringValue, "b")
    }

    func testAnchorsAliasesAndMergeKeys() throws {
        let doc = try parse("""
        base: &base {lr: 1.0e-4, epochs: 3}
        copy: *base
        run:
          <<: *base
          epochs: 5
        multi:
          <<: [{a: 1}, {a: 2, b: 2}]
        """)
        XCTAssertEqual(doc["copy"]?.jsonValue, doc["base"]?.jsonValue)
        XCTAssertEqual(doc["run"]?.entries?.map(\.key), ["lr", "epochs"])
        XCTAssertEqual(doc["run"]?["epochs"]?.intValue, 5)
        XCTAssertEqual(doc["run"]?["lr"]?.doubleValue, 1.0e-4)
        XCTAssertEqual(doc["multi"]?["a"]?.intValue, 1)
        XCTAssertEqual(doc["multi"]?["b"]?.intValue, 2)
    }

    func testUndefinedAliasIsAnError() {
        let e = parseError("a: *nowhere\n")
        XCTAssertTrue(e?.description.contains("r.yaml:1:4") ?? false, e?.description ?? "")
        XCTAssertTrue(e?.description.contains("nowhere") ?? false)
    }

    func testDuplicateKeysNameBothLinesAndAllAreReported() {
        let e = parseError("""
        lr: 1
        epochs: 2
        lr: 3
        sub:
          x: 1
          x: 2
        """)
        XCTAssertEqual(e?.problems.count, 2)
        XCTAssertEqual(e?.problems.first?.description, "r.yaml:3:1: duplicate key 'lr': first defined at line 1, again at line 3")
        XCTAssertTrue(e?.problems.last?.description.contains("r.yaml:6:3: duplicate key 'x'") ?? false)
    }

    func testTabIndentationIsExplained() {
        let e = parseError("model:\n\tpath: x\n")
        let text = e?.description ?? ""
        XCTAssertTrue(text.hasPrefix("r.yaml:2:1: "), text)
        XCTAssertTrue(text.contains("tabs cannot be used for indentation"), text)
    }

    func testBadIndentationGivesLibyamlMessageWithPosition() {
        let e = parseError("a:\n  b: 1\n c: 2\n")
        let text = e?.description ?? ""
        XCTAssertTrue(text.hasPrefix("r.yaml:3:2: "), text)
        XCTAssertTrue(text.contains("did not find expected key"), text)
    }

    func testUnclosedFlowSequence() {
        let text = parseError("a: [1, 2\nb: 3\n")?.description ?? ""
        XCTAssertTrue(text.hasPrefix("r.yaml:"), text)
        XCTAssertTrue(text.contains("flow sequence"), text)
    }

    func testExactlyOneDocument() {
        XCTAssertTrue(parseError("a: 1\n---\nb: 2\n")?.description.contains("r.yaml:2:1: a second YAML document") ?? false)
        XCTAssertTrue(parseError("# only a comment\n")?.description.contains("no YAML document") ?? false)
        XCTAssertTrue(parseError("")?.description.contains("no YAML document") ?? false)
    }

    func testComplexKeyIsRejected() {
        XCTAssertTrue(parseError("? [a, b]\n: 1\n")?.description.contains("mapping key must be a plain value") ?? false)
    }

    func testBlockScalarsAndQuoting() throws {
        let doc = try parse("""
        template: |
          line one
          line two
        folded: >
          a
          b
        esc: "tab\\there \\u00e9"
        """)
        XCTAssertEqual(doc["template"]?.stringValue, "line one\nline two\n")
        XCTAssertEqual(doc["folded"]?.stringValue, "a b\n")
        XCTAssertEqual(doc["esc"]?.stringValue, "tab\there é")
    }

    func testJSONConversionKeepsOrderAndTypes() throws {
        let doc = try parse("b: 1\na: [true, 2.5, null, x]\n")
        let json = doc.jsonValue
        XCTAssertEqual(json.objectValue?.keys, ["b", "a"])
        XCTAssertEqual(json["a"], .array([.bool(true), .double(2.5), .null, .string("x")]))
        XCTAssertEqual(JSONWriter.compact.string(json), #"{"b":1,"a":[true,2.5,null,"x"]}"#)
    }

    func testReadMissingFile() {
        XCTAssertThrowsError(try YAMLParser.read(path: "/nonexistent/r.yaml")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/r.yaml: no such file"))
        }
    }
}
