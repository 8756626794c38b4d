import XCTest
import Formats
import Models
import Tensors
@testable import Trainer
@testable import Engine

/// The decay / no-decay split against transformers 5.23's Trainer.get_decay_parameter_names on a tiny
/// Llama (with attention biases) and a tiny GPT-2 (Tests/Fixtures/optim/decay_names.json), plus the
/// range bookkeeping ZeRO relies on. Exact comparisons (names and integer ranges).
final class ParameterGroupsTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/optim")

    func testDecayNamesMatchTransformers() throws {
        let json = try JSONValue.read(path: Self.fixtures.appendingPathComponent("decay_names.json").path)
        // The GPT-2 fixture model has the fixture's layer count; its architecture names the LayerNorm modules.
        let gpt2 = try ModelRegistry.config(path: Self.fixtures.deletingLastPathComponent().appendingPathComponent("models/gpt2/config.json").path)
        XCTAssertEqual(gpt2.numLayers, json["gpt2"]!["layers"]!.intValue!)
        for (model, policy) in [("llama", DecayPolicy()), ("gpt2", DecayPolicy(for: gpt2))] {
            let names = json[model]!["names"]!.arrayValue!.map { $0.stringValue! }
            let expected = json[model]!["decay"]!.arrayValue!.map { $0.stringValue! }
            // Sets: transformers lists a module's children before its own parameters, named_parameters the reverse.
            XCTAssertEqual(Set(names.filter(policy.decays)), Set(expected), model)
            XCTAssertEqual(Set(expected).subtracting(names), [], "\(model): fixture names incomplete")
        }
        // Without the LayerNorm module list GPT-2's ln weights would wrongly decay: names alone cannot tell.
        XCTAssertTrue(DecayPolicy().decays("transformer.ln_f.weight"))
        XCTAssertFalse(DecayPolicy(for: gpt2).decays("transformer.ln_f.weight"))
        // The name patterns, one by one.
        let p = DecayPolicy()
        XCTAssertFalse(p.decays("x.Bias"))
        XCTAssertFalse(p.decays("encoder.LayerNorm.weight"))
        XCTAssertFalse(p.decays("block.rmsnorm.weight"))
        XCTAssertFalse(p.decays("norm.weight"))
        XCTAssertFalse(p.decays("layers.0.q_norm.weight"))
        XCTAssertTrue(p.decays("layers.0.normal.weight"))
        XCTAssertTrue(p.decays("layers.0.norm_proj.weight"))
        XCTAssertTrue(p.decays("enorm.weight"))
    }

    func layout() -> ParameterLayout {
        var l = ParameterLayout()
        l.append("model.embed_tokens.weight", shape: [10, 4], group: 0)            // 0..<40
        l.append("model.layers.0.self_attn.q_proj.weight", shape: [4, 4], group: 1) // 40..<56
        l.append("model.layers.0.self_attn.q_proj.bias", shape: [4], group: 1)      // 56..<60
        l.append("model.layers.0.mlp.down_proj.weight", shape: [4, 6], group: 1)    // 60..<84
        l.append("model.layers.0.input_layernorm.weight", shape: [4], group: 1)     // 84..<88
        l.append("model.norm.weight", shape: [4], group: 2)                         // 88..<92
        l.append("lm_head.weight", shape: [10, 4], group: 2)                        // 92..<132
        return l
    }

    func testGroupsRangesFrozenAndShardSegments() {
        let g = ParameterGroups(layout: layout(), weightDecay: 0.1, frozen: ["model.embed_tokens.weight"])
        XCTAssertEqual(g.frozenNames, ["model.embed_tokens.weight"])
        XCTAssertEqual(g.decay.weightDecay, 0.1)
        XCTAssertEqual(g.noDecay.weightDecay, 0)
        XCTAssertEqual(g.decay.ranges, [40..<56, 60..<84, 92..<132])
        XCTAssertEqual(g.noDecay.ranges, [56..<60, 84..<92])  // input_layernorm and model.norm merge
        XCTAssertEqual(g.decay.elementCount + g.noDecay.elementCount, 92)
        XCTAssertEqual(g.trainableRanges, [40..<56, 56..<60, 60..<84, 84..<92, 92..<132])
        // A shard cutting through tensors: each piece keeps its group's decay; frozen elements are absent.
        let segs = g.segments(within: 30..<90)
        XCTAssertEqual(segs.map(\.range), [40..<56, 56..<60, 60..<84, 84..<90])
        XCTAssertEqual(segs.map(\.weightDecay), [0.1, 0, 0.1, 0])
        XCTAssertEqual(segs.map(\.group), [0, 1, 0, 1])
        XCTAssertEqual(g.segments(within: 0..<40), [])
        // A predicate freezes too.
        let lora = ParameterGroups(layout: layout(), weightDecay: 0.1, isFrozen: { !$0.contains("q_proj") })
        XCTAssertEqual(lora.decay.names, ["model.layers.0.self_attn.q_proj.weight"])
        XCTAssertEqual(lora.noDecay.names, ["model.layers.0.self_attn.q_proj.bias"])
        XCTAssertEqual(lora.frozenNames.count, 5)
    }
}
