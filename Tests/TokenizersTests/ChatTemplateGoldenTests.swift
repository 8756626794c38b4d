import Formats
import XCTest

@testable import Tokenizers

/// Renders every case that `Scripts/reference/gen_chat_templates.py` rendered through transformers'
/// `apply_chat_template(..., tokenize=False)` (jinja2 3.1.6) and requires identical text, or the same
/// error: `raise_exception` as `ChatTemplateError.raised` with its exact message, any other jinja2
/// failure as `.render` with "ExceptionType: message", a compile-time failure as `.syntax`.
/// Exact string equality, no tolerance.
final class ChatTemplateGoldenTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/chat_templates")

    static let compileErrors: Set<String> = ["SyntaxError", "TemplateSyntaxError", "TemplateAssertionError"]

    private func loadCases(_ file: String) throws -> [JSONValue] {
        let doc = try JSONValue.read(path: Self.fixtures.appendingPathComponent(file).path)
        return try XCTUnwrap(doc["cases"]?.arrayValue, "\(file) has no cases")
    }

    private func extra(_ v: JSONValue?) -> [String: TemplateValue] {
        var out: [String: TemplateValue] = [:]
        for (k, v) in v?.objectValue ?? JSONObject() { out[k] = TemplateValue(v) }
        return out
    }

    /// Compares one outcome with the golden; returns a description of the mismatch, or nil.
    private func check(_ name: String, _ expectation: JSONValue, _ render: () throws -> String) -> String? {
        do {
            let text = try render()
            if let error = expectation["error"] { return "\(name): rendered but jinja2 failed with \(error)" }
            guard let expected = expectation["expected"]?.stringValue else { return "\(name): golden has no outcome" }
            if text != expected {
                return "\(name): text differs\n--- expected\n\(expected.debugDescription)\n--- got\n\(text.debugDescription)"
            }
        } catch let error as ChatTemplateError {
            guard let golden = expectation["error"], let type = golden["type"]?.stringValue,
                let message = golden["message"]?.stringValue
            else { return "\(name): threw \(error) but jinja2 rendered" }
            switch error {
            case .raised(_, let m) where type == "TemplateError":
                if m != message { return "\(name): raised \(m.debugDescription), expected \(message.debugDescription)" }
            case .syntax where Self.compileErrors.contains(type):
                // jinja2 rejected the template while compiling; its message names a line of the generated
                // Python, so only the kind of failure is compared.
                break
            case .render(_, let m) where type != "TemplateError" && !Self.compileErrors.contains(type):
                if m != "\(type): \(message)" { return "\(name): error \(m.debugDescription), expected \(type): \(message)" }
            default:
                return "\(name): threw \(error), expected \(type): \(message)"
            }
        } catch {
            return "\(name): unexpected error \(error)"
        }
        return nil
    }

    /// Renders every case of `directory/cases.json` with `directory/templates/<template>.jinja`.
    func checkChatCases(in directory: URL) throws -> (cases: Int, raised: Int, failures: [String]) {
        let doc = try JSONValue.read(path: directory.appendingPathComponent("cases.json").path)
        let cases = try XCTUnwrap(doc["cases"]?.arrayValue)
        var templates: [String: ChatTemplate] = [:]
        var failures: [String] = []
        var raised = 0
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            let templateName = try XCTUnwrap(c["template"]?.stringValue)
            if templates[templateName] == nil {
                let path = directory.appendingPathComponent("templates/\(templateName).jinja").path
                templates[templateName] = try ChatTemplate(source: String(contentsOfFile: path, encoding: .utf8))
            }
            let template = templates[templateName]!
            let messages = (c["messages"]?.arrayValue ?? []).map { m -> TemplateObject in
                TemplateObject((m.objectValue ?? JSONObject()).map { ($0.key, TemplateValue($0.value)) })
            }
            if c["error"]?["type"]?.stringValue == "TemplateError" { raised += 1 }
            if let failure = check(name, c, {
                try template.render(messages: messages, addGenerationPrompt: c["add_generation_prompt"]?.boolValue ?? false,
                                    bosToken: c["bos_token"]?.stringValue, eosToken: c["eos_token"]?.stringValue,
                                    extra: extra(c["extra"]))
            }) {
                failures.append(failure)
            }
        }
        return (cases.count, raised, failures)
    }

    func testChatTemplateCasesMatchTransformers() throws {
        let (count, raised, failures) = try checkChatCases(in: Self.fixtures)
        XCTAssertEqual(count, 266, "the fixture's case count changed; update this test deliberately")
        XCTAssertGreaterThan(raised, 20, "raise_exception cases must be among the goldens")
        XCTAssert(failures.isEmpty, "\(failures.count)/\(count) cases differ:\n" + failures.prefix(8).joined(separator: "\n"))
    }

    func testFeatureCasesMatchJinja2() throws {
        let cases = try loadCases("features.json")
        var failures: [String] = []
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            let source = try XCTUnwrap(c["template"]?.stringValue)
            if let failure = check(name, c, {
                try ChatTemplate(source: source).render(messages: [] as [TemplateObject], addGenerationPrompt: false,
                                                        bosToken: nil, eosToken: nil, extra: extra(c["context"]))
            }) {
                failures.append(failure)
            }
        }
        XCTAssertEqual(cases.count, 101, "the fixture's case count changed; update this test deliberately")
        XCTAssert(failures.isEmpty, "\(failures.count)/\(cases.count) features differ:\n" + failures.joined(separator: "\n"))
    }
}
