import Foundation
import Formats
import XCTest
@testable import Tokenizers

/// Loading failures must throw (never trap) and name the file and the offending component.
final class TokenizerErrorTests: XCTestCase {
    let gpt2Dir = GoldenTests.shipped.appendingPathComponent("gpt2")

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-err-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// gpt2's tokenizer.json with one component replaced.
    func gpt2JSON(replacing key: String, with value: JSONValue) throws -> JSONValue {
        guard case .object(var o) = try JSONValue.read(path: gpt2Dir.appendingPathComponent("tokenizer.json").path) else { throw XCTSkip("unreachable") }
        o[key] = value
        return .object(o)
    }

    func assertThrows(_ json: JSONValue, source: String = "my/tokenizer.json", contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Tokenizer(json: json, config: nil, source: source), file: file, line: line) { error in
            let message = "\(error)"
            for p in parts + [source] { XCTAssertTrue(message.contains(p), "\(message.debugDescription) lacks \(p.debugDescription)", file: file, line: line) }
        }
    }

    func testUnknownComponentTypesNameTheTypeAndFile() throws {
        for (key, stage) in [("normalizer", "normalizer"), ("pre_tokenizer", "pre-tokenizer"), ("decoder", "decoder"),
                             ("post_processor", "post-processor")] {
            assertThrows(try gpt2JSON(replacing: key, with: .object(JSONObject([("type", .string("Frobnicate"))]))),
                         contains: ["Frobnicate", stage])
        }
        let nested = JSONValue.object(JSONObject([("type", .string("Sequence")), ("pretokenizers", .array([
            .object(JSONObject([("type", .string("Digits")), ("individual_digits", .bool(true))])),
            .object(JSONObject([("type", .string("NoSuchSplitter"))])),
        ]))]))
        assertThrows(try gpt2JSON(replacing: "pre_tokenizer", with: nested), contains: ["NoSuchSplitter", "pretokenizers[1]"])
        guard case .object(var model) = try gpt2JSON(replacing: "x", with: .null)["model"]! else { return XCTFail() }
        model["type"] = .string("Tiktoken")
        assertThrows(try gpt2JSON(replacing: "model", with: .object(model)), contains: ["Tiktoken", "model"])
    }

    func testUnsupportedAndInconsistentComponents() throws {
        assertThrows(try gpt2JSON(replacing: "normalizer", with: .object(JSONObject([("type", .string("Precompiled")), ("precompiled_charsmap", .string("AAAA"))]))),
                     contains: ["precompiled_charsmap", "charsmap"])
        let badRegex = JSONValue.object(JSONObject([("type", .string("Split")), ("behavior", .string("Isolated")), ("invert", .bool(false)),
                                                    ("pattern", .object(JSONObject([("Regex", .string("(abc"))])))]))
        assertThrows(try gpt2JSON(replacing: "pre_tokenizer", with: badRegex), contains: ["\"(abc\"", "unmatched"])
        let badBehavior = JSONValue.object(JSONObject([("type", .string("Split")), ("behavior", .string("Sideways")),
                                                       ("pattern", .object(JSONObject([("String", .string(" "))])))]))
        assertThrows(try gpt2JSON(replacing: "pre_tokenizer", with: badBehavior), contains: ["behavior", "Removed"])
        guard case .object(var model) = try gpt2JSON(replacing: "x", with: .null)["model"]! else { return XCTFail() }
        model["merges"] = .array([.string("zz qq")])
        assertThrows(try gpt2JSON(replacing: "model", with: .object(model)), contains: ["merges[0]", "missing from the vocabulary"])
    }

    func testIdsOutsideTheVocabularyAreRefused() throws {
        func unigram(unk: Int) throws -> JSONValue {
            try JSONValue.parse(#"{"model": {"type": "Unigram", "unk_id": \#(unk), "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -2.0]]}}"#)
        }
        for unk in [3, -1, 1_000_000] {
            assertThrows(try unigram(unk: unk), contains: ["model.unk_id \(unk) is outside the vocabulary of 3 pieces"])
        }
        XCTAssertEqual(try Tokenizer(json: try unigram(unk: 0), config: nil, source: "u").encode("ab", addSpecialTokens: false), [1, 2])
        // A vocabulary id that would size the id table in terabytes.
        guard case .object(var model) = try gpt2JSON(replacing: "x", with: .null)["model"]!,
              case .object(var vocab) = model["vocab"]! else { return XCTFail() }
        vocab["zzz"] = .int(1_000_000_000_000)
        model["vocab"] = .object(vocab)
        assertThrows(try gpt2JSON(replacing: "model", with: .object(model)), contains: ["model.vocab.zzz", "an id below 16777216", "1000000000000"])
    }

    /// User regexes run on Oniguruma with a budget of backtracking steps per search: a pattern that
    /// backtracks catastrophically on a text (nested or overlapping repetition before a failing end)
    /// ends that encode with an error naming the pattern, in well under a second, where HF's tokenizers
    /// (Oniguruma with the same default retry limit) panic. The same patterns on texts they match
    /// quickly encode as usual.
    func testPatternsThatBacktrackCatastrophicallyFailNamingThePattern() throws {
        func split(_ regex: String) -> JSONValue {
            .object(JSONObject([("type", .string("Split")), ("behavior", .string("Isolated")), ("invert", .bool(false)),
                                ("pattern", .object(JSONObject([("Regex", .string(regex))])))]))
        }
        let run = String(repeating: "a", count: 40)
        for (bad, text) in [("(a+)+$", run + "!"), ("(a|aa)+$", run + "!"), ("(x+x+)+y", String(repeating: "x", count: 40)),
                            ("(\\w{2,})+$", run + "!")] {
            let t = try Tokenizer(json: try gpt2JSON(replacing: "pre_tokenizer", with: split(bad)), config: nil, source: "t.json")
            XCTAssertNoThrow(try t.encode("ok"), bad)
            let start = Date()
            XCTAssertThrowsError(try t.encode(text), bad) {
                XCTAssertTrue("\($0)".contains("t.json: regex pattern \(bad.debugDescription) needed more than 10000000 backtracking steps"), "\($0)")
            }
            XCTAssertLessThan(Date().timeIntervalSince(start), 5, bad)
        }
        // Oniguruma's empty-loop check keeps these linear, so they are not refused (as in HF).
        for good in ["(?i:'s|'t)|\\p{L}+|\\s+(?!\\S)", "[+*]+", "(ab){2}", "(a|b)+", "\\(a+\\)+", "(?:\\s*x?)*y", "((ab)*c)*(ab)*$"] {
            let t = try Tokenizer(json: try gpt2JSON(replacing: "pre_tokenizer", with: split(good)), config: nil, source: "t")
            XCTAssertNoThrow(try t.encode(run + "! (aa) ab's +*" + String(repeating: " ", count: 40) + String(repeating: "ab", count: 30) + "!"), good)
        }
    }

    func testMalformedFilesNameTheFile() throws {
        let dir = try tempDir()
        let path = dir.appendingPathComponent("tokenizer.json").path
        let config = dir.appendingPathComponent("tokenizer_config.json").path
        func write(_ text: String, _ file: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: file)) }
        func assertLoadFails(naming parts: [String], line: UInt = #line) {
            XCTAssertThrowsError(try Tokenizer.load(directory: dir.path), line: line) { error in
                for p in parts { XCTAssertTrue("\(error)".contains(p), "\(error) lacks \(p)", line: line) }
            }
        }
        try write("{\"model\": {\"type\": \"BPE\", ", path)
        assertLoadFails(naming: [path])
        try write("[1, 2]", path)
        assertLoadFails(naming: [path, "top level"])
        try FileManager.default.removeItem(atPath: path)
        assertLoadFails(naming: [path])
        try FileManager.default.copyItem(atPath: gpt2Dir.appendingPathComponent("tokenizer.json").path, toPath: path)
        try write("{\"bos_token\": 5,", config)
        assertLoadFails(naming: [config])
        try write("{\"bos_token\": 5}", config)
        assertLoadFails(naming: [config, "bos_token"])
    }

    func testConfigForms() throws {
        let v4 = try JSONValue.parse(#"{"bos_token": {"__type": "AddedToken", "content": "<s>"}, "eos_token": "</s>", "model_max_length": 1000000000000000019884624838656, "chat_template": "inline", "add_bos_token": true}"#)
        let c = try TokenizerConfig(json: v4, source: "cfg.json")
        XCTAssertEqual(c.bosToken, "<s>")
        XCTAssertEqual(c.eosToken, "</s>")
        XCTAssertNil(c.modelMaxLength)
        XCTAssertEqual(c.chatTemplate, "inline")
        XCTAssertEqual(c.addBosToken, true)
        XCTAssertFalse(c.cleanUpTokenizationSpaces)
        let withFile = try TokenizerConfig(json: v4, source: "cfg.json", chatTemplateFile: "from file")
        XCTAssertEqual(withFile.chatTemplate, "from file")
        let bad = try JSONValue.parse(#"{"chat_template": 3}"#)
        XCTAssertThrowsError(try TokenizerConfig(json: bad, source: "cfg.json")) { XCTAssertTrue("\($0)".contains("cfg.json")) }
    }
}
