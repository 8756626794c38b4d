import Formats
import XCTest
@testable import Tokenizers

/// The public surface other modules call, on the shipped family tokenizers (exact comparisons).
final class TokenizerAPITests: XCTestCase {
    func load(_ family: String) throws -> Tokenizer {
        try Tokenizer.load(directory: GoldenTests.shipped.appendingPathComponent(family).path)
    }

    func testTokenIdRoundTripOverWholeVocabulary() throws {
        for family in GoldenTests.families {
            let t = try load(family)
            var checked = 0
            for id in 0..<t.vocabSize {
                guard let token = t.idToToken(id) else { XCTFail("\(family): id \(id) has no token"); continue }
                XCTAssertEqual(t.tokenToId(token), id, "\(family): \(token.debugDescription)")
                checked += 1
            }
            XCTAssertEqual(checked, t.vocabSize, family)
            XCTAssertNil(t.idToToken(t.vocabSize + 5))
            XCTAssertNil(t.tokenToId("definitely not a token \u{1F600}\u{1F600}"))
        }
    }

    /// Vocabularies may hold canonically equivalent tokens ("é" and "e" + U+0301); HF keeps them apart by bytes.
    func testCanonicallyEquivalentTokensStayDistinct() throws {
        let t = try load("llama2")
        let composed = t.tokenToId("\u{E9}"), decomposed = t.tokenToId("e\u{301}")
        XCTAssertNotNil(composed)
        XCTAssertNotNil(decomposed)
        XCTAssertNotEqual(composed, decomposed)
        XCTAssertEqual(t.idToToken(decomposed!)?.unicodeScalars.count, 2)
    }

    func testSpecialTokenAccessors() throws {
        let llama3 = try load("llama3")
        XCTAssertEqual(llama3.eosTokenIds, [llama3.tokenToId("<|eot_id|>")!])
        XCTAssertEqual(llama3.bosToken, "<|begin_of_text|>")
        XCTAssertEqual(try llama3.encode("hi").first, llama3.bosTokenId)
        XCTAssertEqual(llama3.chatTemplateSource?.hasPrefix("{{ bos_token }}"), true, "chat_template.jinja wins over the stale inline one")
        let qwen = try load("qwen2")
        XCTAssertNil(qwen.bosTokenId)
        XCTAssertEqual(qwen.padTokenId, qwen.tokenToId("<|endoftext|>"))
        XCTAssertTrue(qwen.specialTokenIds.contains(qwen.tokenToId("<|im_end|>")!))
        let ids = try qwen.encode("<|im_start|>user\nhi<|im_end|>")
        XCTAssertEqual(ids.first, qwen.tokenToId("<|im_start|>"))
        XCTAssertEqual(try qwen.decode(ids, skipSpecialTokens: true), "user\nhi")
        let llama2 = try load("llama2")
        XCTAssertEqual(llama2.config?.addBosToken, true)
        XCTAssertEqual(llama2.config?.addEosToken, false)
        XCTAssertEqual(llama2.config?.modelMaxLength, 4096)
        XCTAssertEqual(llama2.modelType, "BPE")
        let meta = try load("llama2-metaspace")
        XCTAssertEqual(meta.config?.namedChatTemplates.keys.sorted(), ["default", "tool_use"])
        XCTAssertNil(try load("gpt2").chatTemplateSource)
    }

    /// Several threads encoding at once must agree with a single-threaded run (the BPE cache is shared).
    func testConcurrentEncodingIsConsistent() throws {
        let t = try load("gpt2")
        let texts = (0..<64).map { "text number \($0) with words like tokenization, Москва and 東京 \($0 * 7919)" }
        let expected = try texts.map { try t.encode($0) }
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var ids: [[Int]]
            init(_ n: Int) { ids = [[Int]](repeating: [], count: n) }
        }
        let results = Results(texts.count)
        DispatchQueue.concurrentPerform(iterations: texts.count) { i in
            let r = (try? t.encode(texts[i])) ?? [-1]
            results.lock.lock(); results.ids[i] = r; results.lock.unlock()
        }
        XCTAssertEqual(results.ids, expected)
    }
}

/// The heap merge used for long words must give exactly the linear-scan result (exact id comparison).
final class BPEMergeStrategyTests: XCTestCase {
    func testHeapAndLinearMergesAgree() throws {
        var state: UInt64 = 42
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        let alphabet = Array("etaoinshrdlu etaoin ĠĊ0123456789.,'é中")
        var compared = 0
        for family in ["gpt2", "llama2", "llama3", "qwen2", "smollm"] {
            let t = try Tokenizer.load(directory: GoldenTests.shipped.appendingPathComponent(family).path)
            guard let bpe = t.model as? BPEModel else { return XCTFail(family) }
            for _ in 0..<60 {
                let word = (0..<(2 + next(300))).map { _ in alphabet[next(alphabet.count)] }
                let text = family == "llama2" ? String(word) : String(word).replacingOccurrences(of: " ", with: "Ġ")
                let both = bpe.mergeBothWays(bpe.symbolsForTesting(scalars(text)))
                XCTAssertEqual(both.linear, both.heap, "\(family) \(text.debugDescription)")
                compared += 1
            }
        }
        XCTAssertEqual(compared, 300)
    }
}
