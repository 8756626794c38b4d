import Formats
import XCTest
@testable import Tokenizers

/// Ids and decoded text compared exactly (no tolerance) with HF tokenizers 0.23.3 / transformers 5.23 over the
/// edge-case corpus written by Scripts/reference/gen_tokenizers.py.
final class GoldenTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizers")
    static let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Tokenizers")
    static let families = ["gpt2", "llama2", "llama2-metaspace", "llama3", "qwen2", "smollm", "bert", "unigram"]

    static func ints(_ v: JSONValue?) -> [Int] { v?.arrayValue?.compactMap(\.intValue) ?? [] }

    /// Compares every case and reports all mismatches at once (so a failing run shows the whole picture).
    func checkCases(_ tokenizer: Tokenizer, _ cases: [JSONValue], name: String, decodeSkip: Bool) throws -> Int {
        var failures: [String] = []
        for c in cases {
            let text = c["text"]!.stringValue!
            let ids = Self.ints(c["ids"])
            let got = try tokenizer.encode(text)
            if got != ids { failures.append("\(name) encode \(text.debugDescription):\n  want \(ids)\n  got  \(got)") }
            let plain = Self.ints(c["ids_no_special"])
            let gotPlain = try tokenizer.encode(text, addSpecialTokens: false)
            if gotPlain != plain { failures.append("\(name) encode(no special) \(text.debugDescription):\n  want \(plain)\n  got  \(gotPlain)") }
            let decoded = try tokenizer.decode(ids)
            if decoded != c["decoded"]!.stringValue! { failures.append("\(name) decode \(text.debugDescription): want \(c["decoded"]!.stringValue!.debugDescription) got \(decoded.debugDescription)") }
            if decodeSkip {
                let skipped = try tokenizer.decode(ids, skipSpecialTokens: true)
                let want = c["decoded_skip_special"]!.stringValue!
                if skipped != want { failures.append("\(name) decode(skip) \(text.debugDescription): want \(want.debugDescription) got \(skipped.debugDescription)") }
            }
        }
        for f in failures.prefix(12) { XCTFail(f) }
        if failures.count > 12 { XCTFail("\(name): \(failures.count - 12) more mismatches") }
        return cases.count - Set(failures.map { $0.split(separator: "\n")[0] }).count
    }

    func testFamilies() throws {
        var total = 0
        for family in Self.families {
            let golden = try JSONValue.read(path: Self.fixtures.appendingPathComponent("\(family).json").path)
            let tokenizer = try Tokenizer.load(directory: Self.shipped.appendingPathComponent(family).path)
            let cases = golden["cases"]!.arrayValue!
            XCTAssertEqual(cases.count, 63)
            _ = try checkCases(tokenizer, cases, name: family, decodeSkip: true)
            total += cases.count
            for p in golden["pairs"]!.arrayValue! {
                let a = p["a"]!.stringValue!, b = p["b"]!.stringValue!
                XCTAssertEqual(try tokenizer.encode(a, pair: b), Self.ints(p["ids"]), "\(family) pair \(a.debugDescription) + \(b.debugDescription)")
            }
            XCTAssertEqual(tokenizer.bosTokenId, golden["bos_token_id"]?.intValue, family)
            XCTAssertEqual(tokenizer.eosTokenId, golden["eos_token_id"]?.intValue, family)
            XCTAssertEqual(tokenizer.padTokenId, golden["pad_token_id"]?.intValue, family)
            XCTAssertEqual(tokenizer.vocabSize, golden["vocab_size"]?.intValue, family)
            XCTAssertEqual(tokenizer.bosToken, golden["bos_token"]?.stringValue, family)
            XCTAssertEqual(tokenizer.eosToken, golden["eos_token"]?.stringValue, family)
            let template = golden["chat_template"]
            if let s = template?.stringValue {
                XCTAssertEqual(tokenizer.chatTemplateSource, s, family)
            } else if let named = template?.objectValue {
                XCTAssertEqual(tokenizer.chatTemplateSource, named["default"]?.stringValue, family)
                for (name, body) in named { XCTAssertEqual(tokenizer.config?.namedChatTemplates[name], body.stringValue, family) }
            } else {
                XCTAssertNil(tokenizer.chatTemplateSource, family)
            }
        }
        XCTAssertEqual(total, 504)
    }

    /// With `transformersClassPipeline`, ids and decodes equal transformers 5 `AutoTokenizer`, which rebuilds
    /// `LlamaTokenizer` pipelines (llama2 ships tokenizer_class LlamaTokenizer with legacy true).
    func testAutoTokenizerClassPipelines() throws {
        var rebuilt = 0
        for family in Self.families {
            let golden = try JSONValue.read(path: Self.fixtures.appendingPathComponent("\(family).json").path)
            let t = try Tokenizer.load(directory: Self.shipped.appendingPathComponent(family).path, transformersClassPipeline: true)
            var failures = 0
            let plain = try Tokenizer.load(directory: Self.shipped.appendingPathComponent(family).path)
            // Entries hold only what differs from the tokenizer.json pipeline's case at the same index.
            for (c, auto) in zip(golden["cases"]!.arrayValue!, golden["auto_cases"]!.arrayValue!) {
                let text = c["text"]!.stringValue!
                let ids = auto["ids"] != nil ? Self.ints(auto["ids"]) : Self.ints(c["ids"])
                if try t.encode(text) != ids { failures += 1; if failures < 5 { XCTFail("\(family) auto \(text.debugDescription): want \(ids) got \(try t.encode(text))") } }
                let decoded = try auto["decoded"]?.stringValue ?? plain.decode(ids)
                if try t.decode(ids) != decoded { failures += 1; if failures < 5 { XCTFail("\(family) auto decode \(text.debugDescription)") } }
            }
            XCTAssertEqual(failures, 0, family)
            if golden["auto_tokenizer_class"]?.stringValue == "LlamaTokenizer" { rebuilt += 1 }
        }
        XCTAssertEqual(rebuilt, 1, "llama2 is the family whose class transformers rebuilds")
    }

    func testComponentPipelines() throws {
        let dir = Self.fixtures.appendingPathComponent("components")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tokenizer.json") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 20)
        for name in names {
            let stem = String(name.dropLast(".tokenizer.json".count))
            let path = dir.appendingPathComponent(name).path
            let tokenizer = try Tokenizer(json: try JSONValue.read(path: path), config: nil, source: path)
            let golden = try JSONValue.read(path: dir.appendingPathComponent("\(stem).goldens.json").path)
            _ = try checkCases(tokenizer, golden["cases"]!.arrayValue!, name: stem, decodeSkip: false)
        }
    }
}
