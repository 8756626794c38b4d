import Foundation
import Tokenizers
import XCTest
@testable import Trainer

/// Malformed data stops reading at the first bad line with file:line, the key and the lines read so far.
final class DataErrorTests: XCTestCase {
    /// Reads `lines` as `format` and returns the error's text.
    func failure(_ format: DataOptions.Format, _ lines: [String], file: StaticString = #filePath, line: UInt = #line) throws -> (DataError, String) {
        let path = try DataFixtures.scratch(self, lines.joined(separator: "\n") + "\n")
        do {
            _ = try DataFileReader.readAll(path: path, format: format)
        } catch let e as DataError {
            return (e, "\(e)".replacingOccurrences(of: path, with: "F"))
        }
        XCTFail("no error", file: file, line: line)
        return (.invalidOptions(""), "")
    }

    func testMalformedLinesNameFileLineAndKey() throws {
        let good = #"{"text": "fine"}"#
        let cases: [(DataOptions.Format, [String], String)] = [
            (.text, [good, "{not json"], "F:2: invalid JSON"),
            (.text, [good, good, #"{"txt": "x"}"#], #"F:3: key "text": missing (the text format needs it) (stopped after reading 3 lines)"#),
            (.text, [#"{"text": 5}"#], #"F:1: key "text": expected a string, found"#),
            (.text, [#"["text"]"#], "F:1: expected a JSON object, found"),
            (.prompt_completion, [#"{"prompt": "a"}"#], #"F:1: key "completion": missing"#),
            (.alpaca, [#"{"instruction": "a", "input": 3, "output": "b"}"#], #"F:1: key "input": expected a string"#),
            (.chat, [#"{"messages": []}"#], #"F:1: key "messages": the conversation is empty"#),
            (.chat, [#"{"messages": "hi"}"#], #"F:1: key "messages": expected a list of messages"#),
            (.chat, [#"{"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}"#],
             #"F:1: key "messages[1].role": unknown role "bot" (expected one of assistant, system, tool, user)"#),
            (.chat, [#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]}"#], #"F:1: key "messages[1].content": missing"#),
            (.chat, [#"{"messages": [{"role": "user", "content": "a"}]}"#], #"F:1: key "messages": the conversation has no assistant message"#),
            (.sharegpt, [#"{"conversations": [{"from": "human", "value": "a"}, {"from": "robot", "value": "b"}]}"#],
             #"F:1: key "conversations[1].from": unknown speaker "robot""#),
            (.sharegpt, [#"{"messages": []}"#], #"F:1: key "conversations": missing"#),
        ]
        for (format, lines, expected) in cases {
            let (_, text) = try failure(format, lines)
            XCTAssertTrue(text.hasPrefix(expected), "\(format): got \(text)\nwanted prefix \(expected)")
            XCTAssertTrue(text.contains("stopped after reading \(lines.count) line"), text)
        }
    }

    func testBlankLinesAreSkippedButCounted() throws {
        let (error, _) = try failure(.text, [#"{"text": "a"}"#, "", "   ", "oops"])
        guard case .malformedLine(_, let line, nil, _, let read) = error else { return XCTFail("\(error)") }
        XCTAssertEqual(line, 4)
        XCTAssertEqual(read, 4)
    }

    func testMissingFileAndMemberOfPlainFile() throws {
        XCTAssertThrowsError(try DataFileReader.readAll(path: "/nonexistent/x.jsonl", format: .text)) { e in
            XCTAssertEqual("\(e)", "/nonexistent/x.jsonl: cannot read data: no such file")
        }
        let path = try DataFixtures.scratch(self, #"{"text": "a"}"#)
        XCTAssertThrowsError(try DataFileReader.readAll(path: path, format: .text, member: "m.jsonl")) { e in
            XCTAssertTrue("\(e)".contains("is not an archive"), "\(e)")
        }
    }

    /// A template that renders the last message differently makes a prefix's tokens disagree with the whole
    /// conversation's: that must be an error naming the line, never a guessed mask.
    func testPrefixMismatchIsAnError() throws {
        let tokenizer = try DataFixtures.tokenizer("qwen2")
        let template = try ChatTemplate(source: "{% for m in messages %}{% if loop.last %}[final]{% endif %}{{ m.role }}: {{ m.content }}\n{% endfor %}")
        let t = try ExampleTokenizer(tokenizer: tokenizer, chatTemplate: template)
        let messages = [ChatMessage(role: "user", content: "hi"), ChatMessage(role: "assistant", content: "hello"),
                        ChatMessage(role: "user", content: "bye"), ChatMessage(role: "assistant", content: "ciao")]
        XCTAssertThrowsError(try t.tokenize(.chat(messages), at: DataLocation(source: "c.jsonl", line: 9))) { e in
            guard case DataError.prefixMismatch(let source, let line, let index, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(source, "c.jsonl")
            XCTAssertEqual(line, 9)
            XCTAssertEqual(index, 1)
            XCTAssertTrue("\(e)".hasPrefix("c.jsonl:9: cannot locate message 1 in tokens"), "\(e)")
        }
    }

    func testTemplateExceptionNamesTheLine() throws {
        let tokenizer = try DataFixtures.tokenizer("qwen2")
        let template = try ChatTemplate(source: "{% if messages[0].role != 'system' %}{{ raise_exception('system first') }}{% endif %}")
        let t = try ExampleTokenizer(tokenizer: tokenizer, chatTemplate: template)
        XCTAssertThrowsError(try t.tokenize(.chat([ChatMessage(role: "user", content: "a"), ChatMessage(role: "assistant", content: "b")]),
                                            at: DataLocation(source: "c.jsonl", line: 3))) { e in
            XCTAssertTrue("\(e)".hasPrefix("c.jsonl:3: chat template failed:"), "\(e)")
            XCTAssertTrue("\(e)".contains("system first"), "\(e)")
        }
    }

    func testChatNeedsATemplateTextDoesNot() throws {
        let gpt2 = try DataFixtures.tokenizer("gpt2")
        let t = try ExampleTokenizer(tokenizer: gpt2)
        XCTAssertNoThrow(try t.tokenize(.text("hello"), at: DataLocation(source: "x", line: 1)))
        XCTAssertThrowsError(try t.tokenize(.chat([ChatMessage(role: "assistant", content: "b")]), at: DataLocation(source: "x", line: 1))) { e in
            XCTAssertTrue("\(e)".contains("has no chat template"), "\(e)")
        }
        let bert = try DataFixtures.tokenizer("bert")
        XCTAssertThrowsError(try ExampleTokenizer(tokenizer: bert)) { e in
            XCTAssertTrue("\(e)".contains("no eos_token"), "\(e)")
        }
    }

    func testBOSWarningWhenTheTemplateOmitsIt() throws {
        let llama3 = try DataFixtures.tokenizer("llama3")
        XCTAssertNil(try ExampleTokenizer(tokenizer: llama3).chatTemplateBOSWarning(), "llama3's template writes bos_token")
        let noBOS = try ChatTemplate(source: "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}")
        let warning = try ExampleTokenizer(tokenizer: llama3, chatTemplate: noBOS).chatTemplateBOSWarning()
        XCTAssertEqual(warning?.hasPrefix("the chat template does not write <|begin_of_text|>"), true, warning ?? "nil")
        XCTAssertNil(try ExampleTokenizer(tokenizer: try DataFixtures.tokenizer("qwen2")).chatTemplateBOSWarning(), "qwen2 adds no BOS")
    }

    /// Errors from several threads: the earliest line wins.
    func testEarliestTokenizationErrorIsReported() throws {
        let tokenizer = try DataFixtures.tokenizer("qwen2")
        let template = try ChatTemplate(source: "{% if messages[0].content == 'bad' %}{{ raise_exception('bad') }}{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}")
        let t = try ExampleTokenizer(tokenizer: tokenizer, chatTemplate: template)
        var lines: [String] = []
        for i in 0..<200 {
            let first = i == 57 || i == 150 ? "bad" : "ok \(i)"
            lines.append(#"{"messages": [{"role": "user", "content": "\#(first)"}, {"role": "assistant", "content": "x"}]}"#)
        }
        let path = try DataFixtures.scratch(self, lines.joined(separator: "\n"))
        XCTAssertThrowsError(try DataPipeline.tokenizeFile(path: path, format: .chat, member: nil, with: t)) { e in
            XCTAssertTrue("\(e)".hasPrefix(path + ":58:"), "\(e)")
        }
    }

    func testInvalidOptions() throws {
        XCTAssertThrowsError(try DataPipeline.heldOutIndices(count: 10, fraction: 1.0, seed: 1))
        XCTAssertThrowsError(try DataPipeline.heldOutIndices(count: 1, fraction: 0.5, seed: 1))
        XCTAssertThrowsError(try TokenizedDataset(examples: [], maxSeqLen: 1))
        let e = TokenizedExample(inputIds: [1, 2], labels: [1, 2], location: DataLocation(source: "s", line: 1))
        XCTAssertThrowsError(try DataLoader(examples: [e], maxSeqLen: 4, options: DataLoaderOptions(worldSize: 2, rank: 2)))
        XCTAssertThrowsError(try DataLoader(examples: [e], maxSeqLen: 1, options: DataLoaderOptions()))
    }
}
