import XCTest

@testable import Tokenizers

/// Limits (ChatTemplateLimitTests): hostile templates end in a typed error naming the line, never a stack overflow or an allocation that
/// exhausts memory: macro recursion, deep nesting of brackets, operators and blocks, huge repetitions.
extension ChatTemplateInterpreterTests {
    func testUnboundedMacroRecursionStopsWithRecursionError() throws {
        // Each call reaches the macro through the scope it was defined in, which is where the old guard
        // (a depth copied with the interpreter) never counted past one.
        let e = error("x\n{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
        XCTAssertEqual(e?.line, 2)
        XCTAssertTrue(e?.message.hasPrefix("RecursionError: maximum macro recursion depth exceeded") == true, "\(String(describing: e))")
        // Mutual recursion counts too.
        let mutual = error("{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}")
        XCTAssertTrue(mutual?.message.hasPrefix("RecursionError") == true)
        // Recursion that ends below the limit still renders.
        XCTAssertEqual(try render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(50) }}"),
                       (1...50).reversed().map(String.init).joined())
    }

    func testDeepNestingIsRefusedAtParseTime() {
        for (open, close) in [("(", ")"), ("[", "]"), ("{'a': ", "}")] {
            let source = "{{ " + String(repeating: open, count: 100_000) + "1" + String(repeating: close, count: 100_000) + " }}"
            let e = error(source)
            guard case .syntax(1, let message)? = e else { return XCTFail("\(open): \(String(describing: e))") }
            XCTAssertTrue(message.contains("nests more than"), message)
        }
        let nots = error("{{ " + String(repeating: "not ", count: 20_000) + "x }}")
        XCTAssertTrue(nots?.message.contains("nests more than") == true, "\(String(describing: nots))")
        let signs = error("{{ " + String(repeating: "-", count: 20_000) + "1 }}")
        XCTAssertTrue(signs?.message.contains("nests more than") == true, "\(String(describing: signs))")
        let blocks = error(String(repeating: "{% if true %}", count: 20_000) + String(repeating: "{% endif %}", count: 20_000))
        XCTAssertTrue(blocks?.message.contains("nests more than") == true, "\(String(describing: blocks))")
        let elses = error("{{ " + String(repeating: "1 if false else ", count: 20_000) + "2 }}")
        XCTAssertTrue(elses?.message.contains("nests more than") == true, "\(String(describing: elses))")
    }

    func testLongOperatorChainsAreRefusedNotEvaluatedRecursively() throws {
        // Built by a loop in the parser, but as tall as it is long for the evaluator.
        for chain in ["1" + String(repeating: " + 1", count: 100_000), "'a'" + String(repeating: "|trim", count: 100_000),
                      "x" + String(repeating: ".a", count: 100_000)] {
            let e = error("{{ \(chain) }}")
            XCTAssertTrue(e?.message.contains("operations deep") == true, "\(String(describing: e))")
        }
        // Up to the limit they evaluate.
        let n = Parser.maxHeight - 2
        XCTAssertEqual(try render("{{ 1" + String(repeating: " + 1", count: n) + " }}"), String(n + 1))
        XCTAssertEqual(try render("{{ " + String(repeating: "(", count: 30) + "7" + String(repeating: ")", count: 30) + " }}"), "7")
    }

    func testHugeRepetitionsAndWidthsFailWithMemoryError() {
        let cases = ["{{ 'a' * 10000000000 }}", "{{ [1, 2] * 10000000000 }}", "{{ 'ab' * 9223372036854775807 }}",
                     "{{ 'x' | center(10000000000) }}", "{{ 'x' | indent(10000000000) }}", "{{ {'a': 1} | tojson(indent=10000000000) }}",
                     "{{ '%10000000000d' % 1 }}", "{{ '%.10000000000d' % 1 }}"]
        for source in cases {
            let e = error("\n" + source)
            XCTAssertEqual(e?.line, 2, source)
            XCTAssertTrue(e?.message.hasPrefix("MemoryError") == true, "\(source): \(String(describing: e))")
        }
        // Output that grows through a loop stops too (each iteration is small, the total is not).
        let loop = error("{% set s = 'x' * 10000000 %}{% for i in range(100000) %}{{ s }}{% endfor %}")
        XCTAssertTrue(loop?.message.hasPrefix("MemoryError") == true, "\(String(describing: loop))")
    }
}
