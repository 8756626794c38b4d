import Foundation
import XCTest
@testable import GGUF

/// Files that parse but are not a model we can build: each gets an error naming the key or tensor.
final class ConversionErrorTests: XCTestCase {
    /// One block of `arch` with hidden 32, 4 heads of 8, intermediate 64, vocabulary 8 (dims innermost first).
    static func tensors(_ arch: String) -> [(String, [UInt64])] {
        let h: UInt64 = 32
        var t: [(String, [UInt64])] = [("token_embd.weight", [h, 8]), ("output_norm.weight", [h])]
        if arch == "phi3" {
            t += [("blk.0.attn_qkv.weight", [h, 3 * h]), ("blk.0.attn_output.weight", [h, h]), ("blk.0.ffn_up.weight", [h, 128]),
                  ("blk.0.ffn_down.weight", [64, h]), ("blk.0.attn_norm.weight", [h]), ("blk.0.ffn_norm.weight", [h])]
            return t
        }
        for p in ["attn_q", "attn_k", "attn_v", "attn_output"] { t.append(("blk.0.\(p).weight", [h, h])) }
        t += [("blk.0.ffn_gate.weight", [h, 64]), ("blk.0.ffn_up.weight", [h, 64]), ("blk.0.ffn_down.weight", [64, h]),
              ("blk.0.attn_norm.weight", [h]), ("blk.0.ffn_norm.weight", [h])]
        if arch == "qwen3" || arch == "gemma3" { t += [("blk.0.attn_q_norm.weight", [8]), ("blk.0.attn_k_norm.weight", [8])] }
        if arch == "gemma3" { t += [("blk.0.post_attention_norm.weight", [h]), ("blk.0.post_ffw_norm.weight", [h])] }
        return t
    }

    private func model(_ dir: String, _ name: String, arch: String = "llama", blocks: UInt32 = 1,
                       edit: (inout [(String, [UInt64])]) -> Void = { _ in }, extraKV: (inout RawGGUF) -> Int = { _ in 0 }) throws -> String {
        let h: UInt64 = 32
        var list = Self.tensors(arch)
        edit(&list)
        var g = RawGGUF()
        var kv = RawGGUF()
        kv.kvString("general.architecture", arch)
        kv.kvU32("\(arch).block_count", blocks)
        kv.kvU32("\(arch).embedding_length", UInt32(h))
        kv.kvU32("\(arch).feed_forward_length", 64)
        kv.kvU32("\(arch).attention.head_count", 4)
        kv.kvU32("\(arch).vocab_size", 8)
        let extra = extraKV(&kv)
        g.header(tensors: UInt64(list.count), kvs: UInt64(6 + extra))
        g.bytes += kv.bytes
        var offset: UInt64 = 0
        for (n, dims) in list {
            g.tensor(n, dims: dims, offset: offset)
            offset += (dims.reduce(1, *) * 4 + 31) / 32 * 32
        }
        g.pad()
        g.bytes += [UInt8](repeating: 0, count: Int(offset))
        return try g.write(dir, name)
    }

    private func expect(_ path: String, _ parts: String..., line: UInt = #line) {
        XCTAssertThrowsError(try GGUFToHuggingFace(file: GGUFFile(path: path)), line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(error is GGUFError, "not a GGUFError: \(text)", line: line)
            XCTAssertTrue(text.contains(path), text, line: line)
            for p in parts { XCTAssertTrue(text.contains(p), "'\(p)' missing from: \(text)", line: line) }
        }
    }

    func testModelFaults() throws {
        let dir = try makeTemporaryDirectory(self)
        XCTAssertNoThrow(try GGUFToHuggingFace(file: GGUFFile(path: model(dir, "ok.gguf"))))
        expect(try model(dir, "gpt2.gguf", arch: "gpt2"), "general.architecture 'gpt2'", "gemma3, llama, phi3, qwen2, qwen3")
        expect(try model(dir, "huge.gguf", blocks: 1_000_000_000), "num_hidden_layers = 1000000000", "out of range")
        expect(try model(dir, "blocks.gguf", blocks: 5), "block_count 5 needs at least 45 tensors", "the file has 11")
        expect(try model(dir, "zero.gguf", blocks: 0), "num_hidden_layers = 0")
        expect(try model(dir, "missing.gguf") { $0.remove(at: 2); $0.append(("blk.0.attn_x.weight", [32, 32])) },
               "'blk.0.attn_q.weight'", "not in the file")
        expect(try model(dir, "shape.gguf") { $0[0].1 = [16, 8] }, "'token_embd.weight'", "[8, 32]", "[8, 16]")
        expect(try model(dir, "extra.gguf") { $0.append(("blk.0.attn_q.bias", [32])) }, "'blk.0.attn_q.bias'", "no Hugging Face counterpart")
        expect(try model(dir, "rope.gguf") { $0.append(("rope_freqs.weight", [4])) }, "rope_freqs.weight", "not supported")
        XCTAssertNoThrow(try GGUFToHuggingFace(file: GGUFFile(path: model(dir, "ctx.gguf", extraKV: { g in g.kvU32("llama.context_length", 64); return 1 }))))
        let heads = try model(dir, "kv.gguf", extraKV: { g in g.kvU32("llama.attention.head_count_kv", 3); return 1 })
        expect(heads, "3 key/value heads do not divide 4")
    }

    /// Qwen3, Gemma 3 and Phi-3 files: each fault named by its key or tensor.
    func testFamilyFaults() throws {
        let dir = try makeTemporaryDirectory(self)
        func kv(_ pairs: [(String, UInt32)]) -> (inout RawGGUF) -> Int {
            { g in for (k, v) in pairs { g.kvU32(k, v) }; return pairs.count }
        }
        // Gemma's head size is its key_length (here 8, the tensors' size); without it transformers assumes 256.
        let gemmaKeys = kv([("gemma3.attention.key_length", 8)])
        XCTAssertNoThrow(try GGUFToHuggingFace(file: GGUFFile(path: model(dir, "gemma.gguf", arch: "gemma3", extraKV: gemmaKeys))))
        expect(try model(dir, "gemma-256.gguf", arch: "gemma3"), "'blk.0.attn_q.weight'", "[1024, 32]", "[32, 32]")
        expect(try model(dir, "gemma-norm.gguf", arch: "gemma3", edit: { $0.removeAll { $0.0 == "blk.0.post_ffw_norm.weight" } }, extraKV: gemmaKeys),
               "'blk.0.post_ffw_norm.weight'", "not in the file")
        // Qwen3: transformers builds 128-wide heads whatever the file says, so a file of 8-wide heads cannot load.
        expect(try model(dir, "qwen3-kl.gguf", arch: "qwen3", extraKV: kv([("qwen3.attention.key_length", 8)])),
               "'qwen3.attention.key_length'", "builds heads of 128")
        expect(try model(dir, "qwen3.gguf", arch: "qwen3"), "'blk.0.attn_q.weight'", "[512, 32]")
        // Phi-3: fused tensors of the wrong height; Phi3Config's padding id 32000 when the file names none.
        let pad = kv([("tokenizer.ggml.padding_token_id", 2)])
        XCTAssertNoThrow(try GGUFToHuggingFace(file: GGUFFile(path: model(dir, "phi.gguf", arch: "phi3", extraKV: pad))))
        expect(try model(dir, "phi-pad.gguf", arch: "phi3"), "pad_token_id 32000", "no tokenizer.ggml.padding_token_id", "vocabulary of 8")
        expect(try model(dir, "phi-qkv.gguf", arch: "phi3", edit: { $0[2].1 = [32, 64] }, extraKV: pad),
               "'blk.0.attn_qkv.weight'", "[96, 32]", "[64, 32]")
        expect(try model(dir, "phi-up.gguf", arch: "phi3", edit: { $0[4].1 = [32, 64] }, extraKV: pad),
               "'blk.0.ffn_up.weight'", "[128, 32]", "[64, 32]")
        expect(try model(dir, "phi-split.gguf", arch: "phi3", edit: { $0.append(("blk.0.ffn_gate.weight", [32, 64])) }, extraKV: pad),
               "'blk.0.ffn_gate.weight'", "no Hugging Face counterpart in a phi3 model")
        expect(try model(dir, "phi-blocks.gguf", arch: "phi3", blocks: 2, extraKV: pad), "block_count 2 needs at least 12 tensors")
        // A required key, named with the file's architecture.
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 2)
        g.kvString("general.architecture", "gemma3")
        g.kvU32("gemma3.block_count", 1)
        expect(try g.write(dir, "gemma-bare.gguf"), "missing metadata 'gemma3.embedding_length'")
    }

    func testMissingKeyAndTokenizer() throws {
        let dir = try makeTemporaryDirectory(self)
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.kvString("general.architecture", "llama")
        let bare = try g.write(dir, "bare.gguf")
        expect(bare, "llama.block_count", "missing")
        // A model without tokenizer metadata converts its weights but not a tokenizer.
        let path = try model(dir, "notok.gguf")
        let conversion = try GGUFToHuggingFace(file: GGUFFile(path: path))
        XCTAssertThrowsError(try conversion.write(to: dir + "/out")) { XCTAssertTrue("\($0)".contains("tokenizer.ggml.model"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"), "nothing is left behind")
        let spm = try model(dir, "tok.gguf", extraKV: { g in g.kvString("tokenizer.ggml.model", "bert"); return 1 })
        XCTAssertThrowsError(try GGUFToHuggingFace(file: GGUFFile(path: spm)).write(to: dir + "/out2")) {
            XCTAssertTrue("\($0)".contains("tokenizer.ggml.model 'bert' is not supported"), "\($0)")
        }
    }
}
