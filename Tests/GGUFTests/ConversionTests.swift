import Foundation
import XCTest
import Formats
import SafeTensors
import Tokenizers
@testable import GGUF

/// `GGUFToHuggingFace` on the gen_gguf.py models against what transformers 5.23's GGUF loading made of the
/// same files: config.json, generation_config.json, tokenizer.json and tokenizer_config.json byte for byte,
/// every weight bit for bit (tolerance: none), and the token ids of ids.json through our Tokenizers module.
final class ConversionTests: XCTestCase {
    static let cases = ["llama_bpe", "qwen2_bpe", "llama_spm", "mistral_spm", "qwen3_bpe", "gemma3_spm", "phi3_spm"]

    private func convert(_ name: String) throws -> String {
        let out = (try makeTemporaryDirectory(self) as NSString).appendingPathComponent(name)
        try GGUFToHuggingFace(file: try GGUFFile(path: Fixtures.path("\(name).gguf"))).write(to: out)
        return out
    }

    func testFilesAreTransformersOwn() throws {
        for name in Self.cases {
            let out = try convert(name)
            for file in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"] {
                let ours = try XCTUnwrap(FileManager.default.contents(atPath: out + "/" + file), "\(name)/\(file)")
                let theirs = try XCTUnwrap(FileManager.default.contents(atPath: Fixtures.path(name) + "/" + file))
                XCTAssertEqual(String(decoding: ours, as: UTF8.self), String(decoding: theirs, as: UTF8.self), "\(name)/\(file)")
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(),
                           ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        }
    }

    func testWeightsAreTransformersOwnBitForBit() throws {
        for name in ["llama_bpe", "qwen2_bpe", "llama_spm", "qwen3_bpe", "gemma3_spm", "phi3_spm"] {
            let ours = try SafeTensorsFile(path: try convert(name) + "/model.safetensors")
            let theirs = try SafeTensorsFile(path: Fixtures.path(name) + "/expected.safetensors")
            XCTAssertEqual(Set(ours.names), Set(theirs.names), name)
            for t in theirs.names {
                XCTAssertEqual(ours.info(t)?.shape, theirs.info(t)?.shape, "\(name) \(t)")
                XCTAssertEqual(try ours.floats(t).map(\.bitPattern), try theirs.floats(t).map(\.bitPattern), "\(name) \(t)")
            }
        }
        // transformers cannot load the weights of a file named "mistral" (gguf 0.19 lacks the architecture);
        // they are laid out as llama's, so they equal llama_spm's, whose file differs only in general.name.
        let mistral = try SafeTensorsFile(path: try convert("mistral_spm") + "/model.safetensors")
        let llama = try SafeTensorsFile(path: Fixtures.path("llama_spm") + "/expected.safetensors")
        for t in llama.names { XCTAssertEqual(try mistral.floats(t), try llama.floats(t), t) }
    }

    func testTokenIdsAreTransformersOwn() throws {
        for name in Self.cases {
            let out = try convert(name)
            let tokenizer = try Tokenizer.load(directory: out)
            let expected = try XCTUnwrap(JSONValue.read(path: Fixtures.path(name) + "/ids.json").arrayValue)
            XCTAssertGreaterThan(expected.count, 10)
            for e in expected {
                let text = try XCTUnwrap(e["text"]?.stringValue)
                let ids = try XCTUnwrap(e["ids"]?.arrayValue).compactMap(\.intValue)
                let ours = try tokenizer.encode(text)
                XCTAssertEqual(ours, ids, "\(name): \(text.debugDescription)")
                XCTAssertEqual(try tokenizer.decode(ours, skipSpecialTokens: true), e["decoded"]?.stringValue, "\(name): decode \(text.debugDescription)")
            }
            XCTAssertNotNil(tokenizer.chatTemplateSource, "\(name): the chat template travels in tokenizer_config.json")
        }
    }

    func testVersion2AndModelTypes() throws {
        XCTAssertEqual(try GGUFFile(path: Fixtures.path("llama_spm.gguf")).version, 2)
        XCTAssertEqual(try GGUFFile(path: Fixtures.path("llama_bpe.gguf")).version, 3)
        let types = try Self.cases.map { try GGUFToHuggingFace(file: GGUFFile(path: Fixtures.path("\($0).gguf"))).mapping.modelType }
        XCTAssertEqual(types, ["llama", "qwen2", "llama", "mistral", "qwen3", "gemma3_text", "phi3"])
    }

    /// The family-specific layouts, beyond "equal to transformers": Gemma's norms come back as (w + 1) − 1
    /// in f32 (not the file's values), Phi-3's fused tensors are one tensor each, and Qwen3/Gemma/Phi-3
    /// Q/K rows are the file's own (llama.cpp permutes llama only).
    func testFamilyLayouts() throws {
        let gemma = try GGUFFile(path: Fixtures.path("gemma3_spm.gguf"))
        let gemmaOut = try SafeTensorsFile(path: try convert("gemma3_spm") + "/model.safetensors")
        let stored = try gemma.floats("blk.0.attn_q_norm.weight")
        XCTAssertEqual(try gemmaOut.floats("model.layers.0.self_attn.q_norm.weight"), stored.map { $0 - 1 })
        XCTAssertEqual(try gemmaOut.floats("model.layers.0.self_attn.q_proj.weight"), try gemma.floats("blk.0.attn_q.weight"))
        let phi = try SafeTensorsFile(path: try convert("phi3_spm") + "/model.safetensors")
        XCTAssertEqual(phi.info("model.layers.1.self_attn.qkv_proj.weight")?.shape, [64, 32])  // q 32 + k 16 + v 16 rows
        XCTAssertEqual(phi.info("model.layers.1.mlp.gate_up_proj.weight")?.shape, [96, 32])   // gate 48 + up 48 rows
        XCTAssertNil(phi.info("model.layers.1.mlp.gate_proj.weight"))
        let qwen = try GGUFFile(path: Fixtures.path("qwen3_bpe.gguf"))
        let qwenOut = try SafeTensorsFile(path: try convert("qwen3_bpe") + "/model.safetensors")
        XCTAssertEqual(try qwenOut.floats("model.layers.0.self_attn.k_proj.weight"), try qwen.floats("blk.0.attn_k.weight"))
        XCTAssertEqual(qwenOut.info("model.layers.0.self_attn.k_norm.weight")?.shape, [128])
    }

    func testPermutationRoundTrips() {
        let rows = 12, cols = 3, heads = 2
        let src = (0..<(rows * cols)).map(Float.init)
        var gguf = [Float](repeating: 0, count: src.count), back = gguf
        src.withUnsafeBufferPointer { s in gguf.withUnsafeMutableBufferPointer { QKPermutation.forward(s, heads: heads, rows: rows, into: $0) } }
        back.withUnsafeMutableBufferPointer { QKPermutation.reverse(gguf, heads: heads, rows: rows, into: $0) }
        XCTAssertEqual(back, src)
        // Head 0 (rows 0-5, half 3): GGUF row 1 is Hugging Face row 3 (the partner of row 0).
        XCTAssertEqual(Array(gguf[3..<6]), Array(src[9..<12]))
    }
}
