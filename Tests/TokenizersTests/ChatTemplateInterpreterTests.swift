import Foundation
import Formats
import XCTest

@testable import Tokenizers

/// Direct checks of the interpreter's API and error reporting. Rendering semantics are checked against
/// jinja2 itself in ChatTemplateGoldenTests; expected strings here were confirmed with jinja2 3.1.6.
final class ChatTemplateInterpreterTests: XCTestCase {
    func render(_ source: String, _ extra: [String: TemplateValue] = [:],
                        messages: [[String: TemplateValue]] = [], bos: String? = nil, eos: String? = nil,
                        generation: Bool = false) throws -> String {
        try ChatTemplate(source: source).render(messages: messages, addGenerationPrompt: generation,
                                                bosToken: bos, eosToken: eos, extra: extra)
    }

    func error(_ source: String, _ extra: [String: TemplateValue] = [:],
                       file: StaticString = #filePath, line: UInt = #line) -> ChatTemplateError? {
        do {
            _ = try render(source, extra)
            XCTFail("expected an error", file: file, line: line)
        } catch let e as ChatTemplateError {
            return e
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
        return nil
    }

    // MARK: errors carry the template line

    func testSyntaxErrorsNameTheLine() {
        XCTAssertEqual(error("ok\n{% if true %}\n{% frobnicate %}\n{% endif %}"),
                       .syntax(line: 3, message: "Encountered unknown tag 'frobnicate'."))
        XCTAssertEqual(error("a\nb\n\n{{ x | nope }}"), .syntax(line: 4, message: "No filter named 'nope'."))
        XCTAssertEqual(error("{% if false %}\n{{ x is shiny }}\n{% endif %}"), .syntax(line: 2, message: "No test named 'shiny'."))
        XCTAssertEqual(error("line\n{{ a $ b }}"), .syntax(line: 2, message: "unexpected char '$'"))
        XCTAssertEqual(error("{# open comment"), .syntax(line: 1, message: "Missing end of comment tag"))
        XCTAssertEqual(error("{{ (1 }}")?.line, 1)
        let unclosed = error("{% for x in y %}\n{{ x }}\n")
        XCTAssertEqual(unclosed?.line, 2)
        XCTAssert(unclosed?.message.contains("'endfor' or 'else'") == true, unclosed?.message ?? "")
        XCTAssertEqual(error("\n\n{% include 'other.jinja' %}")?.line, 3)
        XCTAssert(error("{% include 'x' %}")?.message.contains("'include' tag is not supported") == true)
        XCTAssert(error("{% for x in y recursive %}{% endfor %}")?.message.contains("recursive") == true)
    }

    func testRuntimeErrorsNameTheLineAndPythonException() throws {
        XCTAssertEqual(error("\n\n{{ 'a' + 1 }}"), .render(line: 3, message: "TypeError: can only concatenate str (not \"int\") to str"))
        XCTAssertEqual(error("{% for m in msgs %}\n{{ m.x.y }}\n{% endfor %}", ["msgs": [["a": 1]]]),
                       .render(line: 2, message: "UndefinedError: 'dict object' has no attribute 'x'"))
        XCTAssertEqual(error("{{ 9223372036854775807 + 1 }}")?.message, "OverflowError: integer result does not fit in 64 bits")
        let e = try XCTUnwrap(error("{% if true %}\n\n\n  {{ raise_exception('Roles must alternate') }}\n{% endif %}"))
        XCTAssertEqual(e, .raised(line: 4, message: "Roles must alternate"))
        XCTAssertEqual(e.description, "chat template raised an exception, line 4: Roles must alternate")
    }

    // MARK: API

    func testRenderWithDictionaryMessagesAndSpecialTokens() throws {
        let template = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m['content'] }}{% endfor %}"
            + "{% if add_generation_prompt %}<assistant>{% endif %}{{ eos_token }}"
        let messages: [[String: TemplateValue]] = [["role": "user", "content": "héllo"], ["role": "assistant", "content": "hi"]]
        XCTAssertEqual(try render(template, messages: messages, bos: "<s>", eos: "</s>", generation: true),
                       "<s><user>héllo<assistant>hi<assistant></s>")
        XCTAssertEqual(try render(template, messages: messages), "<user>héllo<assistant>hi")
    }

    func testTransformersNormalisation() throws {
        // tools/documents are None unless given; None-valued message keys are dropped; reasoning is aliased.
        XCTAssertEqual(try render("{{ tools is none }}{{ documents is none }}{{ bos_token is defined }}"), "TrueTrueFalse")
        XCTAssertEqual(try render("{{ messages[0].content is defined }}", messages: [["role": "assistant", "content": .none]]), "False")
        let m = try render("{{ messages[0]|tojson }}", messages: [["role": "assistant", "content": "a", "reasoning": "r"]])
        XCTAssertEqual(m, #"{"thinking": "r", "content": "a", "reasoning": "r", "role": "assistant", "reasoning_content": "r"}"#)
        XCTAssertEqual(try render("{{ tools|length }}", ["tools": [["type": "function"]]]), "1")
    }

    func testTemplateValueFromJSON() throws {
        let json = try JSONValue.parse(#"{"role": "user", "content": [{"type": "text", "text": "x"}], "n": 3, "f": 1.5, "b": true, "z": null}"#)
        let v = TemplateValue(json)
        XCTAssertEqual(v["role"], "user")
        XCTAssertEqual(v["content"], [["type": "text", "text": "x"]])
        guard case .object(let o) = v else { return XCTFail("not an object") }
        XCTAssertEqual(o.keys, ["role", "content", "n", "f", "b", "z"])
        XCTAssertEqual(o["n"], .int(3))
        XCTAssertEqual(o["f"], .double(1.5))
        XCTAssertEqual(o["z"], TemplateValue.none)
        XCTAssertEqual(try render("{{ v }}", ["v": v]),
                       "{'role': 'user', 'content': [{'type': 'text', 'text': 'x'}], 'n': 3, 'f': 1.5, 'b': True, 'z': None}")
    }

    func testStrftimeNowUsesLocalClock() throws {
        let year = { String(Calendar.current.component(.year, from: Date())) }
        let before = year()
        let rendered = try render("{{ strftime_now('%Y') }}")
        XCTAssert(rendered == before || rendered == year(), "strftime_now('%Y') gave \(rendered)")
    }

    // MARK: interpreter features (each also covered by a jinja2 golden)

    func testWhitespaceControl() throws {
        XCTAssertEqual(try render("a  {{- 'b' -}}  c"), "abc")
        XCTAssertEqual(try render("  {% if true %}\n  x\n  {% endif %}\ny"), "  x\ny")
        XCTAssertEqual(try render("{% for i in [1, 2] -%}\n  {{ i }}\n{%- endfor %}"), "12")
    }

    func testLoopsAndNamespace() throws {
        XCTAssertEqual(try render("{% for x in 'abc' %}{{ loop.index }}{{ x }}{% if loop.last %}!{% endif %}{% endfor %}"), "1a2b3c!")
        XCTAssertEqual(try render("{% set n = namespace(c=0) %}{% set c = 0 %}{% for x in [1, 2, 3] %}{% set n.c = n.c + x %}{% set c = c + x %}{% endfor %}{{ n.c }}/{{ c }}"), "6/0")
        XCTAssertEqual(try render("{% for k, v in {'a': 1}.items() %}{{ k }}{{ v }}{% else %}none{% endfor %}{% for x in [] %}{% else %}empty{% endfor %}"), "a1empty")
        XCTAssertEqual(try render("{% for x in range(9) %}{% if x is even %}{% continue %}{% endif %}{% if x > 6 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "135")
    }

    func testFiltersAndSlicing() throws {
        XCTAssertEqual(try render("{{ [1, 2, 3][::-1] }}{{ 'hello'[1:3] }}{{ [1, 2, 3][-1] }}"), "[3, 2, 1]el3")
        XCTAssertEqual(try render("{{ '  x '|trim|upper }}{{ [3, 1]|sort|join(',') }}{{ {'a': 'é'}|tojson }}"), #"X1,3{"a": "é"}"#)
        XCTAssertEqual(try render("{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }}",
                                  ["msgs": [["role": "user", "content": "q"], ["role": "assistant", "content": "a"]]]), "['q']")
    }
}
