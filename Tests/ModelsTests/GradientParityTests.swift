import Foundation
import XCTest
import Kernels
@testable import Models
import SafeTensors
import Tensors

let gradientFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/gradients").path

/// One micro-batch in the training API's terms, built from transformers-style examples.
struct TrainingBatch {
    var tokens: [Int32] = [], positions: [Int32] = [], targets: [Int32] = [], spans: [AttentionSpan] = []

    /// Appends one example as one span: positions restart at 0 and targets are the labels shifted by one
    /// (transformers' labels[t+1] is the target of position t; the last token has none).
    mutating func append(ids: [Int32], labels: [Int32]) {
        spans.append(AttentionSpan(qStart: tokens.count, qLen: ids.count))
        tokens += ids
        positions += (0..<ids.count).map(Int32.init)
        targets += Array(labels.dropFirst()) + [-100]
    }

    var labelTokens: Int { targets.filter { $0 != -100 }.count }
}

/// Loss and every parameter's gradient against transformers' loss.backward() on the same tiny models
/// (Scripts/reference/gen_gradients.py). Tolerances: loss 1e-4 relative; each gradient tensor 1e-4
/// relative (max |a − b| / max |b|, per tensor by Hugging Face name).
final class GradientParityTests: XCTestCase {
    static let cases = ["llama_gqa_llama3rope", "llama_tied_linear_bias_v4", "qwen2_bias_tied", "gpt2",
                        "qwen3_gqa", "qwen3_tied_v4", "phi3_gqa", "gemma3_text", "gemma3_text_v4"]

    func rows(_ file: SafeTensorsFile, _ name: String) throws -> [[Int32]] {
        let values = try file.int64s(name).map(Int32.init)
        let shape = try XCTUnwrap(file.info(name)?.shape)
        return (0..<shape[0]).map { Array(values[$0 * shape[1]..<($0 + 1) * shape[1]]) }
    }

    /// Runs the batch, compares the loss and every gradient; returns the worst gradient error.
    @discardableResult
    func check(_ name: String, prefix: String, batch: TrainingBatch, expected: SafeTensorsFile,
               checkpoint: Bool = false) throws -> Float {
        let model = try TransformerModel.load(directory: fixture(name))
        let grads = FlatBuffer(dtype: .f32, count: model.parameterCount)
        let state = TrainingState(config: model.config, maxTokens: batch.tokens.count, checkpointActivations: checkpoint)
        let expectedCount = Int(try expected.int64s(prefix + ".label_tokens")[0])
        XCTAssertEqual(batch.labelTokens, expectedCount, "\(name) \(prefix): label tokens")
        let result = try model.lossAndGradients(tokens: batch.tokens, positions: batch.positions, spans: batch.spans,
                                                targets: batch.targets, normalizer: Float(expectedCount), grads: grads, state: state)
        XCTAssertEqual(result.labelTokens, expectedCount)
        let loss = result.lossSum / Double(result.labelTokens)
        let refLoss = Double(try expected.floats(prefix + ".loss")[0])
        let lossErr = abs(loss - refLoss) / abs(refLoss)
        XCTAssertLessThan(lossErr, 1e-4, "\(name) \(prefix): loss \(loss) vs \(refLoss)")
        let gradNames = expected.names.filter { $0.hasPrefix(prefix + ".grad.") }
        XCTAssertEqual(gradNames.count, model.layout.entries.count, "\(name) \(prefix): one gradient per parameter")
        var worst: Float = 0
        for e in model.layout.entries {
            let reference = try expected.floats(prefix + ".grad." + e.name)
            let ours = Array(grads.floats(e.range))
            let err = relativeError(ours, reference)
            XCTAssertLessThan(err, 1e-4, "\(name) \(prefix): gradient of \(e.name)")
            worst = max(worst, err)
        }
        print("gradients \(name) \(prefix)\(checkpoint ? " (checkpointed)" : ""): loss relative error \(lossErr), worst gradient relative error \(worst)")
        return worst
    }

    func batchCase(_ file: SafeTensorsFile) throws -> TrainingBatch {
        var batch = TrainingBatch()
        for (ids, labels) in zip(try rows(file, "batch.input_ids"), try rows(file, "batch.labels")) {
            batch.append(ids: ids, labels: labels)
        }
        return batch
    }

    func packedCase(_ file: SafeTensorsFile) throws -> TrainingBatch {
        var batch = TrainingBatch()
        for i in 0..<2 {
            batch.append(ids: try file.int64s("packed.ids\(i)").map(Int32.init), labels: try file.int64s("packed.labels\(i)").map(Int32.init))
        }
        return batch
    }

    func testBatchGradientsMatchTransformers() throws {
        for name in Self.cases {
            let expected = try SafeTensorsFile(path: gradientFixtures + "/\(name).safetensors")
            try check(name, prefix: "batch", batch: try batchCase(expected), expected: expected)
        }
    }

    func testPackedRowGradientsMatchSeparateExamples() throws {
        // Two examples of different lengths in one row, positions restarting, attention not crossing.
        for name in ["llama_gqa_llama3rope", "gpt2", "gemma3_text"] {
            let expected = try SafeTensorsFile(path: gradientFixtures + "/\(name).safetensors")
            try check(name, prefix: "packed", batch: try packedCase(expected), expected: expected)
        }
    }

    func testCheckpointedActivationsGiveIdenticalGradients() throws {
        for name in ["llama_tied_linear_bias_v4", "gpt2"] {
            let expected = try SafeTensorsFile(path: gradientFixtures + "/\(name).safetensors")
            let batch = try batchCase(expected)
            let model = try TransformerModel.load(directory: fixture(name))
            var results: [(Double, [Float])] = []
            for checkpoint in [false, true] {
                let grads = FlatBuffer(dtype: .f32, count: model.parameterCount)
                let state = TrainingState(config: model.config, maxTokens: batch.tokens.count, checkpointActivations: checkpoint)
                let r = try model.lossAndGradients(tokens: batch.tokens, positions: batch.positions, spans: batch.spans,
                                                   targets: batch.targets, normalizer: 7, grads: grads, state: state)
                results.append((r.lossSum, Array(grads.floats)))
            }
            // Bit-identical: the same arithmetic on the same inputs.
            XCTAssertEqual(results[0].0, results[1].0, name)
            XCTAssertTrue(results[0].1 == results[1].1, "\(name): checkpointed gradients differ")
            try check(name, prefix: "batch", batch: batch, expected: expected, checkpoint: true)
        }
    }

    func testAccumulatedMicroBatchesEqualTheFullBatch() throws {
        // Each row as its own micro-batch with the step's normalizer adds up to the two-row batch.
        let name = "qwen2_bias_tied"
        let expected = try SafeTensorsFile(path: gradientFixtures + "/\(name).safetensors")
        let full = try batchCase(expected)
        let model = try TransformerModel.load(directory: fixture(name))
        let state = TrainingState(config: model.config, maxTokens: full.tokens.count)
        let one = FlatBuffer(dtype: .f32, count: model.parameterCount), split = FlatBuffer(dtype: .f32, count: model.parameterCount)
        let normalizer = Float(full.labelTokens)
        let r = try model.lossAndGradients(tokens: full.tokens, positions: full.positions, spans: full.spans, targets: full.targets,
                                           normalizer: normalizer, grads: one, state: state)
        var lossSum: Double = 0, count = 0
        for (ids, labels) in zip(try rows(expected, "batch.input_ids"), try rows(expected, "batch.labels")) {
            var micro = TrainingBatch()
            micro.append(ids: ids, labels: labels)
            let m = try model.lossAndGradients(tokens: micro.tokens, positions: micro.positions, spans: micro.spans,
                                               targets: micro.targets, normalizer: normalizer, grads: split, state: state)
            lossSum += m.lossSum
            count += m.labelTokens
        }
        XCTAssertEqual(count, r.labelTokens)
        XCTAssertEqual(lossSum, r.lossSum, accuracy: 1e-5 * r.lossSum)
        // Tolerance: 1e-5 relative (only the order of f32 sums differs).
        XCTAssertLessThan(relativeError(Array(split.floats), Array(one.floats)), 1e-5)
    }

    func testEvaluationLossEqualsTrainingLoss() throws {
        let expected = try SafeTensorsFile(path: gradientFixtures + "/gpt2.safetensors")
        let batch = try packedCase(expected)
        let model = try TransformerModel.load(directory: fixture("gpt2"))
        let eval = try model.lossSum(tokens: batch.tokens, positions: batch.positions, spans: batch.spans, targets: batch.targets,
                                     workspace: ForwardWorkspace())
        XCTAssertEqual(eval.labelTokens, batch.labelTokens)
        // Tolerance: 1e-4 relative to transformers' summed loss (the fixture's loss is sum / label tokens).
        let reference = Double(try expected.floats("packed.loss")[0]) * Double(batch.labelTokens)
        XCTAssertEqual(eval.lossSum, reference, accuracy: 1e-4 * reference)
    }

    func testInvalidInputsThrow() throws {
        let model = try TransformerModel.load(directory: fixture("gpt2"))
        let state = TrainingState(config: model.config, maxTokens: 4)
        let grads = FlatBuffer(dtype: .f32, count: model.parameterCount)
        let spans = [AttentionSpan(qStart: 0, qLen: 3)]
        func attempt(tokens: [Int32] = [1, 2, 3], positions: [Int32] = [0, 1, 2], spans: [AttentionSpan] = spans,
                     targets: [Int32] = [2, 3, -100], normalizer: Float = 2, grads: FlatBuffer? = nil) -> String? {
            do {
                try model.lossAndGradients(tokens: tokens, positions: positions, spans: spans, targets: targets,
                                           normalizer: normalizer, grads: grads ?? FlatBuffer(dtype: .f32, count: model.parameterCount), state: state)
                return nil
            } catch { return "\(error)" }
        }
        XCTAssertNil(attempt())
        XCTAssertEqual(attempt(targets: [2, 96, -100]), "target 96 at index 1 is neither -100 nor in 0..<96")
        XCTAssertEqual(attempt(tokens: [1, -1, 3]), "token -1 at index 1 is outside the vocabulary 0..<96")
        XCTAssertEqual(attempt(positions: [0, 1, 64]), "position 64 at index 2 is outside 0..<64")
        XCTAssertNotNil(attempt(tokens: [1, 2, 3, 4, 5], positions: [0, 1, 2, 3, 4], spans: [.init(qStart: 0, qLen: 5)], targets: [1, 1, 1, 1, 1]))
        XCTAssertNotNil(attempt(spans: [.init(qStart: 0, qLen: 2)]))
        XCTAssertNotNil(attempt(targets: [1, 2]))
        XCTAssertNotNil(attempt(normalizer: 0))
        XCTAssertNotNil(attempt(grads: FlatBuffer(dtype: .f32, count: 5)))
        _ = grads
    }
}
