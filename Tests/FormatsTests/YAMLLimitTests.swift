import XCTest
@testable import Formats

/// Limits (YAMLLimits): nesting, alias expansion and `${}` references end in an error naming the line,
/// in bounded time, never a stack overflow, a hang or gigabytes of expansion.
extension YAMLParserTests {
    func testDeepNestingIsRefusedAtTheLineItStarts() {
        for depth in [20_000, 100_000] {
            let flow = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            let e = parseError(flow)
            XCTAssertEqual(e?.problems.first?.mark?.column, YAMLLimits.maxDepth + 1, "\(String(describing: e))")
            XCTAssertTrue(e?.description.contains("nests more than \(YAMLLimits.maxDepth)") == true, "\(String(describing: e))")
        }
        var block = ""
        for i in 0..<2_000 { block += String(repeating: " ", count: i) + "k:\n" }
        XCTAssertEqual(parseError(block)?.problems.first?.mark?.line, YAMLLimits.maxDepth + 1)
        // Up to the limit it parses.
        let ok = String(repeating: "[", count: YAMLLimits.maxDepth) + String(repeating: "]", count: YAMLLimits.maxDepth)
        XCTAssertNoThrow(try YAMLParser.parse(ok))
    }

    func testBillionLaughsIsRefused() {
        var text = "a0: [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 { text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        text = text.replacingOccurrences(of: "a0: [", with: "a0: &a0 [")
        let e = parseError(text)
        XCTAssertTrue(e?.description.contains("expands to more than \(YAMLLimits.maxNodes) values") == true, "\(String(describing: e))")
        XCTAssertEqual(e?.problems.first?.mark?.line, 6)  // a5 is the first level past a million values
        // Aliases below the budget still expand.
        XCTAssertEqual(try YAMLParser.parse("a: &a [1, 2]\nb: [*a, *a]\n").node(at: ["b"])?.items?.count, 2)
    }

    func testEncodingErrorsNameTheirLineAndByte() {
        var bytes = Array("a: 1\nb: 2\nc: x".utf8)
        bytes += [0xFF, 0xFE, 0x0A]
        do {
            _ = try YAMLParser.parse(data: Data(bytes), source: "r.yaml")
            XCTFail("expected an error")
        } catch let e as YAMLError {
            XCTAssertEqual(e.problems.first?.mark?.line, 3, e.description)
            XCTAssertEqual(e.problems.first?.mark?.column, 5, e.description)
            XCTAssertTrue(e.description.contains("byte 14"), e.description)
        } catch { XCTFail("\(error)") }
    }
}

extension YAMLOverrideTests {
    func testDoublingReferencesResolveOnceAndStringsAreBounded() throws {
        // 39 levels, each using the previous twice: 2^39 resolutions without a cache.
        var typed = "l0: {a: 1}\n"
        for i in 1...39 { typed += "l\(i): [\"${l\(i - 1)}\", \"${l\(i - 1)}\"]\n" }
        XCTAssertThrowsError(try YAMLParser.parse(typed, source: "r.yaml").resolvingReferences()) { error in
            XCTAssertTrue("\(error)".contains("expand the document to more than \(YAMLLimits.maxNodes) values"), "\(error)")
        }
        var text = "s0: ab\n"
        for i in 1...39 { text += "s\(i): \"${s\(i - 1)}${s\(i - 1)}\"\n" }
        XCTAssertThrowsError(try YAMLParser.parse(text, source: "r.yaml").resolvingReferences()) { error in
            XCTAssertTrue("\(error)".contains("longer than \(YAMLLimits.maxInterpolatedLength) bytes"), "\(error)")
        }
        // Shared references below the limits resolve, each value right.
        var small = "s0: ab\n"
        for i in 1...10 { small += "s\(i): \"${s\(i - 1)}${s\(i - 1)}\"\n" }
        let resolved = try YAMLParser.parse(small, source: "r.yaml").resolvingReferences()
        XCTAssertEqual(resolved.node(at: ["s10"])?.stringValue, String(repeating: "ab", count: 1024))
    }

    func testLongReferenceChainsAreRefused() {
        // Each key refers to the next: resolving the first recurses through all of them.
        var text = ""
        for i in 0..<5_000 { text += "k\(i): ${k\(i + 1)}\n" }
        text += "k5000: 1\n"
        XCTAssertThrowsError(try YAMLParser.parse(text, source: "r.yaml").resolvingReferences()) { error in
            XCTAssertTrue("\(error)".contains("references lead through more than \(YAMLLimits.maxDepth) other references"), "\(error)")
        }
    }

    func testOverrideThatIsNotAValueStaysText() throws {
        var node = try tree()
        try node.applyOverrides(["training.epochs=---", "training.learning_rate=#x", "lora=~"])
        XCTAssertEqual(node.node(at: ["training", "epochs"])?.stringValue, "---")
        XCTAssertEqual(node.node(at: ["training", "learning_rate"])?.stringValue, "#x")
        XCTAssertEqual(node.node(at: ["lora"])?.isNull, true)
    }
}
