import Foundation
import XCTest
import Kernels
@testable import Models
import SafeTensors
import Tensors

/// PEFT-written LoRA adapters with non-zero B (Scripts/reference/gen_lora.py, peft 0.21.2): on the tiny
/// SmolLM-style Llama (all-linear, tied) and on Qwen3 (four targets, rsLoRA, modules_to_save
/// embed_tokens): logits with the adapter unmerged, the gradients of every lora_A / lora_B (and of the
/// saved embedding copy), and the merged weights. Tolerances: logits and gradients 1e-4 relative per
/// tensor; merged weights 1e-5.
final class LoRAParityTests: XCTestCase {
    static let cases = ["smollm_chat", "qwen3_gqa"]
    static func root(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/lora/" + name).path
    }

    func attached(_ name: String) throws -> TransformerModel {
        let model = try TransformerModel.load(directory: fixture(name))
        model.adapter = try LoRAAdapter.load(directory: Self.root(name) + "/adapter", model: model)
        return model
    }

    func testLogitsWithTheAdapterMatchPEFT() throws {
        for name in Self.cases { try checkLogits(name) }
    }

    func testAdapterGradientsMatchPEFT() throws {
        for name in Self.cases { try checkGradients(name) }
    }

    func testMergeMatchesMergeAndUnload() throws {
        for name in Self.cases { try checkMerge(name) }
    }

    func testSavedModulesAreTrainableCopies() throws {
        let model = try attached("qwen3_gqa")
        let names = model.trainableLayout.entries.map(\.name)
        XCTAssertTrue(names.contains("base_model.model.model.embed_tokens.weight"), "\(names)")
        // A tied head's weight cannot be saved apart from the embedding.
        let tied = try TransformerModel.load(directory: fixture("smollm_chat"))
        XCTAssertThrowsError(try LoRAAdapter(model: tied, settings: LoRASettings(r: 2, alpha: 4, targets: .allLinear, modulesToSave: ["embed_tokens"]))) {
            XCTAssertTrue("\($0)".contains("tied"), "\($0)")
        }
        XCTAssertThrowsError(try LoRAAdapter(model: tied, settings: LoRASettings(r: 2, alpha: 4, targets: .allLinear, modulesToSave: ["nonesuch"]))) {
            XCTAssertTrue("\($0)".contains("nonesuch"), "\($0)")
        }
    }

    func checkLogits(_ name: String) throws {
        let root = Self.root(name), model = try attached(name)
        let expected = try SafeTensorsFile(path: root + "/expected.safetensors")
        let ids = try expected.int64s("input_ids").map(Int32.init)
        let T = try XCTUnwrap(expected.info("input_ids")?.shape)[1]
        let logits = model.logits(batch: [Array(ids[0..<T]), Array(ids[T..<2 * T])])
        let err = relativeError(logits, try expected.floats("logits"))
        XCTAssertLessThan(err, 1e-4, "\(name): logits with the adapter")
        // Without the adapter the logits are the base model's, visibly different.
        let adapter = model.adapter
        model.adapter = nil
        XCTAssertGreaterThan(relativeError(model.logits(batch: [Array(ids[0..<T])]), Array(try expected.floats("logits")[0..<T * model.config.vocabSize])), 1e-2)
        model.adapter = adapter
    }

    func checkGradients(_ name: String) throws {
        let root = Self.root(name), model = try attached(name)
        let expected = try SafeTensorsFile(path: root + "/gradients.safetensors")
        let ids = try expected.int64s("batch.input_ids").map(Int32.init), labels = try expected.int64s("batch.labels").map(Int32.init)
        let T = try XCTUnwrap(expected.info("batch.input_ids")?.shape)[1]
        var tokens: [Int32] = [], positions: [Int32] = [], targets: [Int32] = [], spans: [AttentionSpan] = []
        for row in 0..<ids.count / T {
            let r = row * T..<(row + 1) * T
            spans.append(AttentionSpan(qStart: tokens.count, qLen: T))
            tokens += ids[r]
            positions += (0..<T).map(Int32.init)
            targets += Array(labels[r].dropFirst()) + [-100]
        }
        let count = Int(try expected.int64s("batch.label_tokens")[0])
        let grads = FlatBuffer(dtype: .f32, count: model.trainableLayout.totalCount)
        let base = Array(model.params.floats)
        let r = try model.lossAndGradients(tokens: tokens, positions: positions, spans: spans, targets: targets,
                                           normalizer: Float(count), grads: grads,
                                           state: TrainingState(config: model.config, maxTokens: tokens.count))
        XCTAssertEqual(r.lossSum / Double(r.labelTokens), Double(try expected.floats("batch.loss")[0]), accuracy: 1e-4 * r.lossSum / Double(r.labelTokens))
        for e in model.trainableLayout.entries {
            let err = relativeError(Array(grads.floats(e.range)), try expected.floats("batch.grad." + e.name))
            XCTAssertLessThan(err, 1e-4, "\(name): " + e.name)
        }
        XCTAssertEqual(Array(model.params.floats), base, "the frozen base is untouched")
    }

    func checkMerge(_ name: String) throws {
        let root = Self.root(name), model = try attached(name)
        model.adapter!.merge(into: model)
        let expected = try SafeTensorsFile(path: root + "/expected.safetensors")
        for e in model.layout.entries {
            let err = relativeError(Array(model.params.floats(e.range)), try expected.floats("merged." + e.name))
            XCTAssertLessThan(err, 1e-5, "\(name): " + e.name)
        }
    }

    /// Dropout on the adapter input (nn.Dropout semantics, masks from the counter RNG): the analytic
    /// gradient of every adapter tensor matches central finite differences of the loss along a random
    /// direction with the same masks (f32, ε = 1e-2 along a unit direction: tolerance 1e-2 relative,
    /// where a wrong mask in backward is off by O(1)); the same key gives the same loss, another key
    /// another one; about p of the mask is zero.
    func testDropoutGradientsMatchFiniteDifferences() throws {
        let model = try attached("smollm_chat")
        model.adapter!.dropout = 0.3
        let T = 9
        let ids: [Int32] = (0..<2 * T).map { Int32(($0 * 37 + 11) % model.config.vocabSize) }
        let tokens = ids, positions = (0..<2 * T).map { Int32($0 % T) }
        let spans = [AttentionSpan(qStart: 0, qLen: T), AttentionSpan(qStart: T, qLen: T)]
        var targets = Array(ids.dropFirst()) + [-100]
        targets[T - 1] = -100
        let n = model.trainableLayout.totalCount
        func loss(key: UInt64, grads: FlatBuffer? = nil) throws -> Double {
            let g = grads ?? FlatBuffer(dtype: .f32, count: n)
            return try model.lossAndGradients(tokens: tokens, positions: positions, spans: spans, targets: targets, normalizer: 1,
                                              grads: g, state: TrainingState(config: model.config, maxTokens: tokens.count),
                                              dropoutKey: key).lossSum
        }
        let grads = FlatBuffer(dtype: .f32, count: n)
        let l0 = try loss(key: 7, grads: grads)
        XCTAssertEqual(try loss(key: 7), l0, "the same key draws the same masks")
        XCTAssertNotEqual(try loss(key: 8), l0, "another key, other masks")
        var rng = CounterRNG(seed: 5)
        // A unit direction: the step ε·v stays small whatever the adapter's size.
        var direction = (0..<n).map { _ in rng.nextNormal() }
        let norm = direction.reduce(0) { $0 + $1 * $1 }.squareRoot()
        direction = direction.map { $0 / norm }
        let p = model.adapter!.params.floats
        let saved = Array(p)
        let eps: Float = 1e-2  // f32 losses ~5: smaller steps drown in rounding
        for i in 0..<n { p[i] = saved[i] + eps * direction[i] }
        let plus = try loss(key: 7)
        for i in 0..<n { p[i] = saved[i] - eps * direction[i] }
        let minus = try loss(key: 7)
        for i in 0..<n { p[i] = saved[i] }
        let numeric = (plus - minus) / Double(2 * eps)
        let analytic = zip(Array(grads.floats), direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        print("dropout gradient check: analytic \(analytic), numeric \(numeric)")
        XCTAssertEqual(analytic, numeric, accuracy: 1e-2 * abs(numeric), "directional derivative with dropout")
        let count = 100_000
        let mask = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { mask.deallocate() }
        LoRADropout(p: 0.3, key: 1).mask(module: 0, count: count, into: mask)
        let zeros = (0..<count).filter { mask[$0] == 0 }.count
        XCTAssertEqual(Double(zeros) / Double(count), 0.3, accuracy: 0.01)
        XCTAssertTrue((0..<count).allSatisfy { mask[$0] == 0 || abs(mask[$0] - 1 / 0.7) < 1e-6 })
    }
}
