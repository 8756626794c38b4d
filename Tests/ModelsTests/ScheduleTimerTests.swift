import Foundation
import XCTest
import Kernels
@testable import Models
import Tensors

/// The block schedule tells a `ScheduleTimer` each piece, in order, on every family's block code: the
/// embedding, each block with its attention and then MLP inside it, the head, then backward (MLP before
/// attention; with checkpointing the block's forward again first), the embedding's backward.
final class ScheduleTimerTests: XCTestCase {
    final class Recorder: ScheduleTimer {
        var events: [String] = []
        func begin(_ piece: SchedulePiece, backward: Bool) { events.append("+\(piece)\(backward ? " bwd" : "")") }
        func end(_ piece: SchedulePiece, backward: Bool) { events.append("-\(piece)\(backward ? " bwd" : "")") }
    }

    func expected(layers: Int, checkpoint: Bool) -> [String] {
        var e = ["+embedding", "-embedding"]
        for l in 0..<layers {
            e += ["+block(\(l))", "+attention(\(l))", "-attention(\(l))", "+mlp(\(l))", "-mlp(\(l))", "-block(\(l))"]
        }
        e += ["+headAndLoss", "-headAndLoss"]
        for l in (0..<layers).reversed() {
            e.append("+block(\(l)) bwd")
            if checkpoint { e += ["+attention(\(l))", "-attention(\(l))", "+mlp(\(l))", "-mlp(\(l))"] }
            e += ["+mlp(\(l)) bwd", "-mlp(\(l)) bwd", "+attention(\(l)) bwd", "-attention(\(l)) bwd", "-block(\(l)) bwd"]
        }
        return e + ["+embedding bwd", "-embedding bwd"]
    }

    func testEveryFamilyReportsItsPiecesInOrder() throws {
        for name in ["llama_gqa_llama3rope", "qwen3_gqa", "phi3_gqa", "gpt2", "gemma3_text"] {
            let model = try TransformerModel.load(directory: fixture(name))
            for checkpoint in [false, true] {
                let tokens: [Int32] = [1, 5, 9, 2, 7, 3]
                let grads = FlatBuffer(dtype: .f32, count: model.parameterCount)
                let state = TrainingState(config: model.config, maxTokens: tokens.count, checkpointActivations: checkpoint)
                let recorder = Recorder()
                state.timer = recorder
                _ = try model.lossAndGradients(tokens: tokens, positions: (0..<6).map(Int32.init), spans: [AttentionSpan(qStart: 0, qLen: 6)],
                                               targets: [5, 9, 2, 7, 3, -100], normalizer: 5, grads: grads, state: state)
                XCTAssertEqual(recorder.events, expected(layers: model.config.numLayers, checkpoint: checkpoint), "\(name) checkpoint \(checkpoint)")
            }
        }
    }
}
