import Foundation
import XCTest
import Formats
@testable import Models
import SafeTensors
import Tensors

let modelFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/models").path

func fixture(_ name: String) -> String { (modelFixtures as NSString).appendingPathComponent(name) }

/// Relative error of a tensor: max |a − b| over max |b| (per tensor, by name).
func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    let scale = b.map(abs).max() ?? 0
    return (zip(a, b).map { abs($0 - $1) }.max() ?? 0) / max(scale, 1e-30)
}

/// Logits and greedy continuations of tiny random models of every family against what transformers
/// computed for the same files (Scripts/reference/gen_models.py).
final class ForwardParityTests: XCTestCase {
    static let families = ["llama_gqa_llama3rope", "llama_tied_linear_bias_v4", "mistral_sharded",
                           "qwen2_bias_tied", "llama_bf16", "gpt2",
                           "qwen3_gqa", "qwen3_tied_v4", "phi3_gqa", "gemma3_text", "gemma3_text_v4"]

    func testLogitsMatchTransformers() throws {
        for name in Self.families {
            let model = try TransformerModel.load(directory: fixture(name))
            let expected = try SafeTensorsFile(path: fixture(name + "/expected.safetensors"))
            let ids = try expected.int64s("input_ids").map(Int32.init)
            let shape = try XCTUnwrap(expected.info("input_ids")?.shape)
            let batch = (0..<shape[0]).map { Array(ids[$0 * shape[1]..<($0 + 1) * shape[1]]) }
            let logits = model.logits(batch: batch)
            let reference = try expected.floats("logits")
            // Tolerance: 1e-4 relative (fp32 logits, per tensor).
            let err = relativeError(logits, reference)
            XCTAssertLessThan(err, 1e-4, "\(name): logits relative error \(err)")
            print("logits \(name): relative error \(err)")
        }
    }

    func testGreedyGenerationWithKVCacheMatchesTransformers() throws {
        for name in Self.families {
            let model = try TransformerModel.load(directory: fixture(name))
            let expected = try SafeTensorsFile(path: fixture(name + "/expected.safetensors"))
            let prompt = try expected.int64s("prompt").map(Int32.init)
            let reference = try expected.int64s("generated").map(Int32.init)
            let generated = model.generate(prompt: prompt, maxNewTokens: reference.count)
            // Token ids identical.
            XCTAssertEqual(generated, reference, name)
        }
    }

    func testCachedDecodingEqualsFullForward() throws {
        // The logits of the last token after incremental decoding equal those of one full pass.
        let model = try TransformerModel.load(directory: fixture("llama_gqa_llama3rope"))
        let tokens: [Int32] = [5, 17, 3, 88, 41, 9, 60]
        let full = model.logits(batch: [tokens])
        let V = model.config.vocabSize
        let cache = KVCache(config: model.config, maxTokens: 16)
        let ws = ForwardWorkspace()
        var last = [Float](repeating: 0, count: V)
        for (i, t) in tokens.enumerated() {
            let h = model.forward(tokens: [t], positions: [Int32(i)], spans: [.init(qStart: 0, qLen: 1, kvStart: 0, past: i)],
                                  cache: cache, workspace: ws)
            last.withUnsafeMutableBufferPointer { model.logits(hidden: h, rows: 1, into: $0.baseAddress!) }
        }
        // Tolerance: 1e-5 relative (same arithmetic, different blocking).
        XCTAssertLessThan(relativeError(last, Array(full[(tokens.count - 1) * V..<tokens.count * V])), 1e-5)
    }

    func testPackedSpansEqualSeparateRows() throws {
        // Two examples packed in one row with positions restarting give the logits of two separate rows.
        let model = try TransformerModel.load(directory: fixture("qwen2_bias_tied"))
        let a: [Int32] = [1, 2, 3, 4, 5], b: [Int32] = [7, 8, 9]
        let ws = ForwardWorkspace()
        let h = model.forward(tokens: a + b, positions: [0, 1, 2, 3, 4, 0, 1, 2],
                              spans: [.init(qStart: 0, qLen: 5), .init(qStart: 5, qLen: 3)], workspace: ws)
        let V = model.config.vocabSize
        var packed = [Float](repeating: 0, count: 8 * V)
        packed.withUnsafeMutableBufferPointer { model.logits(hidden: h, rows: 8, into: $0.baseAddress!) }
        let separate = model.logits(batch: [a]) + model.logits(batch: [b])
        XCTAssertLessThan(relativeError(packed, separate), 1e-5)
    }
}
