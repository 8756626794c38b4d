import Foundation
import XCTest
import Formats
import Kernels
import Models
@testable import Trainer

/// The FLOPs profiler: per-kernel counts against formulas worked out by hand for a Llama (GQA, SwiGLU,
/// tied head) and a GPT-2 (fused c_attn, GELU MLP, Conv1D weights), and the profile of a real step
/// whose module latencies add up to the step the Trainer measured.
final class FlopsProfilerTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Two micro-batches: spans of 5 and 3 tokens, then one of 4: N = 12, causal pairs 15 + 6 + 10 = 31.
    let spans = [[AttentionSpan(qStart: 0, qLen: 5), AttentionSpan(qStart: 5, qLen: 3)], [AttentionSpan(qStart: 0, qLen: 4)]]

    func rows(_ configPath: String, recompute: Bool = false) throws -> [String: ModuleProfile] {
        let config = try ModelRegistry.config(path: configPath)
        let layout = ModelRegistry.layout(for: config)
        let rows = FlopsCount.modules(config: config, layout: layout, spans: spans, recompute: recompute)
        return Dictionary(uniqueKeysWithValues: rows.map { ($0.name, $0) })
    }

    func testLlamaCountsAreTheHandFormulas() throws {
        // quickstart: H 192, I 512, 4 layers, 6 heads of 32, 2 KV heads (kv dim 64), V 900, tied head.
        let r = try rows(Self.root + "/Recipes/models/quickstart/config.json")
        let N = 12, pairs = 31
        let attnLinear = 2 * N * (192 * 192 + 64 * 192 + 64 * 192 + 192 * 192)  // q, k, v, o
        let attnCore = 4 * pairs * 32 * 6                                          // q·kᵀ and p·v per head
        let mlp = 2 * N * (512 * 192 + 512 * 192 + 192 * 512)                     // gate, up, down
        for l in 0..<4 {
            XCTAssertEqual(r["block \(l) attention"]?.forwardFLOPs, attnLinear + attnCore)
            XCTAssertEqual(r["block \(l) attention"]?.backwardFLOPs, 2 * (attnLinear + attnCore))
            XCTAssertEqual(r["block \(l) mlp"]?.forwardFLOPs, mlp)
            XCTAssertEqual(r["block \(l) norms and other"]?.forwardFLOPs, 0)
            XCTAssertEqual(r["block \(l) norms and other"]?.parameters, 2 * 192, "input and post-attention RMSNorm weights")
            XCTAssertEqual(r["block \(l) attention"]?.parameters, 192 * 192 * 2 + 64 * 192 * 2)
            XCTAssertEqual(r["block \(l)"]?.forwardFLOPs, attnLinear + attnCore + mlp)
        }
        XCTAssertEqual(r["head and loss"]?.forwardFLOPs, 2 * N * 192 * 900)
        XCTAssertEqual(r["head and loss"]?.backwardFLOPs, 4 * N * 192 * 900)
        XCTAssertEqual(r["head and loss"]?.parameters, 192, "the final norm; the tied head's weight is the embedding's")
        XCTAssertEqual(r["embedding"]?.parameters, 900 * 192)
        // Activation checkpointing runs each block's forward again in backward.
        let ckpt = try rows(Self.root + "/Recipes/models/quickstart/config.json", recompute: true)
        XCTAssertEqual(ckpt["block 0 mlp"]?.backwardFLOPs, 3 * mlp)
        XCTAssertEqual(ckpt["head and loss"]?.backwardFLOPs, 4 * N * 192 * 900, "the head is not recomputed")
        XCTAssertEqual(ckpt["block 0 attention"]?.backwardFLOPs, 2 * attnLinear + 2 * attnCore + (attnLinear + attnCore))
        // A frozen base (LoRA): no weight gradients, the input gradients still flow.
        let config = try ModelRegistry.config(path: Self.root + "/Recipes/models/quickstart/config.json")
        let frozen = Dictionary(uniqueKeysWithValues: FlopsCount.modules(config: config, layout: ModelRegistry.layout(for: config), spans: spans,
                                                                         recompute: false, frozenBase: true).map { ($0.name, $0) })
        XCTAssertEqual(frozen["block 0 mlp"]?.backwardFLOPs, mlp)
        XCTAssertEqual(frozen["block 0 attention"]?.backwardFLOPs, attnLinear + 2 * attnCore)
        XCTAssertEqual(frozen["head and loss"]?.backwardFLOPs, 2 * N * 192 * 900)
        // LoRA r = 4 on q_proj (192 → 192) and down_proj (512 → 192): each adapter adds x·Aᵀ and u·Bᵀ,
        // 2·N·r·(in + out) forward, twice that backward (A's, B's and the input's gradients).
        let model = TransformerModel(config: config)
        let adapter = try LoRAAdapter(model: model, settings: LoRASettings(r: 4, alpha: 8, targets: .names(["q_proj", "down_proj"])))
        let lora = Dictionary(uniqueKeysWithValues: FlopsCount.modules(config: config, layout: model.layout, spans: spans, recompute: false,
                                                                       adapter: adapter.layout).map { ($0.name, $0) })
        let q = 2 * N * 4 * (192 + 192), down = 2 * N * 4 * (512 + 192)
        XCTAssertEqual(lora["block 0 attention"]?.forwardFLOPs, attnLinear + attnCore + q)
        XCTAssertEqual(lora["block 0 attention"]?.backwardFLOPs, attnLinear + 2 * attnCore + 2 * q, "the base frozen, the adapter trained")
        XCTAssertEqual(lora["block 3 mlp"]?.forwardFLOPs, mlp + down)
        XCTAssertEqual(lora["block 3 mlp"]?.backwardFLOPs, mlp + 2 * down)
        XCTAssertEqual(lora["block 3 mlp"]?.parameters, 3 * 512 * 192 + 4 * (512 + 192))
        XCTAssertEqual(lora["head and loss"]?.backwardFLOPs, 2 * N * 192 * 900)
        let loraCkpt = FlopsCount.modules(config: config, layout: model.layout, spans: spans, recompute: true, adapter: adapter.layout)
        XCTAssertEqual(loraCkpt.first { $0.name == "block 2 mlp" }?.backwardFLOPs, mlp + mlp + 3 * down, "frozen input grad, recompute, adapter")
    }

    func testGPT2CountsAreTheHandFormulas() throws {
        // Tests/Fixtures/models/gpt2: n_embd 64, 2 layers, 4 heads of 16, n_inner 4·64, V 96, tied.
        let r = try rows(Self.root + "/Tests/Fixtures/models/gpt2/config.json")
        let N = 12, pairs = 31, H = 64
        let attn = 2 * N * (H * 3 * H + H * H) + 4 * pairs * 16 * 4   // c_attn [H, 3H], c_proj [H, H]; core
        let mlp = 2 * N * (H * 4 * H + 4 * H * H)                       // c_fc [H, 4H], c_proj [4H, H]
        for l in 0..<2 {
            XCTAssertEqual(r["block \(l) attention"]?.forwardFLOPs, attn)
            XCTAssertEqual(r["block \(l) mlp"]?.forwardFLOPs, mlp)
            XCTAssertEqual(r["block \(l) attention"]?.parameters, H * 3 * H + 3 * H + H * H + H, "weights and biases")
            XCTAssertEqual(r["block \(l) mlp"]?.parameters, H * 4 * H + 4 * H + 4 * H * H + H)
            XCTAssertEqual(r["block \(l) norms and other"]?.parameters, 4 * H, "ln_1 and ln_2, weight and bias")
        }
        XCTAssertEqual(r["head and loss"]?.forwardFLOPs, 2 * N * H * 96)
    }

    /// A profiled step of the tiny model: the depth-1 latencies add up to the step, which agrees with the
    /// step time the Trainer measured itself (StepMetrics' tokens / tokens_per_second, which also holds
    /// the data loader and the loss all-reduce) within 5%; the FLOPs are the analytic count of the step's
    /// own tokens; the profile lands in flops_profile.json and output_file.
    func testProfiledStepAddsUpToTheMeasuredStep() throws {
        let out = NSTemporaryDirectory() + "sf-profile-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var c = TrainerAPITests.configuration(output: out)
        c.training.maxSteps = 3
        c.training.evalSteps = nil
        c.data.eval = nil
        c.output.saveSteps = nil
        c.logging.flopsProfiler.enabled = true
        c.logging.flopsProfiler.profileStep = 2
        c.logging.flopsProfiler.outputFile = out + "/profile.txt"
        var logged: [String] = []
        let trainer = try Trainer(configuration: c, log: { logged.append($0) })
        let recorder = TrainerAPITests.Recorder()
        trainer.addCallback(recorder)
        _ = try trainer.train()
        let p = try XCTUnwrap(trainer.lastProfile)
        XCTAssertEqual(p.step, 2)
        XCTAssertEqual(p.stepLatency, p.times.step, accuracy: 1e-9)
        let m = recorder.steps[1]
        let measured = Double(m.tokens) / m.tokensPerSecond
        XCTAssertLessThan(abs(p.stepLatency - measured) / measured, 0.05, "profile \(p.stepLatency) s, measured \(measured) s")
        XCTAssertEqual(p.modules[0].forwardFLOPs, p.modules.filter { $0.depth == 1 }.reduce(0) { $0 + $1.forwardFLOPs })
        // Each block's attention, MLP and norms are timed apart and make up the block.
        let byName = Dictionary(uniqueKeysWithValues: p.modules.map { ($0.name, $0) })
        for l in 0..<4 {
            let parts = ["attention", "mlp", "norms and other"].map { byName["block \(l) \($0)"]?.latency ?? -1 }
            XCTAssertGreaterThan(parts[0], 0)
            XCTAssertGreaterThan(parts[1], 0)
            XCTAssertEqual(parts.reduce(0, +), byName["block \(l)"]?.latency ?? -1, accuracy: 1e-12)
        }
        XCTAssertGreaterThan(p.forwardFLOPs, 0)
        XCTAssertGreaterThan(p.mfu, 0)
        XCTAssertLessThan(p.mfu, 1.5, "MFU against the measured sgemm peak")
        let text = try XCTUnwrap(logged.first { $0.contains("FLOPs profiler") })
        XCTAssertTrue(text.contains("Profile summary at step 2") && text.contains("MFU") && text.contains("block 3 mlp"), text)
        XCTAssertEqual(try String(contentsOfFile: out + "/profile.txt", encoding: .utf8), text + "\n")
        let json = try JSONValue.read(path: out + "/flops_profile.json")
        XCTAssertEqual(json["modules"]?.arrayValue?.count, p.modules.count)
        XCTAssertEqual(json["fwd_flops"]?.intValue, p.forwardFLOPs)
        // The end of training writes report.html with the profile's bars.
        let report = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        XCTAssertTrue(report.contains("latency per module (ms)") && report.contains("block 3"), "report.html")
    }
}
