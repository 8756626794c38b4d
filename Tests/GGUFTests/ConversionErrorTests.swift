import Foundation
import XCTest
@testable import GGUF

/// Files that parse but are not a model we can build: each gets an error naming the key or tensor.
final class ConversionErrorTests: XCTestCase {
    private func model(_ dir: String, _ name: String, arch: String = "llama", blocks: UInt32 = 1,
                       edit: (inout [(String, [UInt64])]) -> Void = { _ in }, extraKV: (inout RawGGUF) -> Int = { _ in 0 }) throws -> String {
        let h: UInt64 = 32
        var standard: [(String, [UInt64])] = [("token_embd.weight", [h, 8]), ("output_norm.weight", [h])]
        for p in ["attn_q", "attn_k", "attn_v", "attn_output"] { standard.append(("blk.0.\(p).weight", [h, h])) }
        standard.append(("blk.0.ffn_gate.weight", [h, 64]))
        standard.append(("blk.0.ffn_up.weight", [h, 64]))
        standard.append(("blk.0.ffn_down.weight", [64, h]))
        standard.append(("blk.0.attn_norm.weight", [h]))
        standard.append(("blk.0.ffn_norm.weight", [h]))
        var list = standard
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
        expect(try model(dir, "gpt2.gguf", arch: "gpt2"), "general.architecture 'gpt2'", "llama, qwen2")
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
