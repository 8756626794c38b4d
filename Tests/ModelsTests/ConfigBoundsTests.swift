import Foundation
import XCTest
import Formats
@testable import Models

/// Sizes out of range and numbers that make the math NaN, refused when config.json is read, naming the
/// key and the bound (TransformerConfig.Limits, validated).
extension FamilyConfigTests {
    private func nested(_ o: inout JSONObject, _ section: String, _ key: String, _ value: JSONValue) {
        var inner = o[section]?.objectValue ?? JSONObject()
        inner[key] = value
        o[section] = .object(inner)
    }

    func testSizesOutOfRangeNameTheKeyAndBound() throws {
        let huge = JSONValue.int(1_000_000_000_000)
        assertRefused(try config("smollm_chat") { $0["vocab_size"] = huge }, "vocab_size: must be at most 16777216, got 1000000000000")
        assertRefused(try config("smollm_chat") { $0["hidden_size"] = huge; $0["head_dim"] = .int(16) }, "hidden_size: must be at most 131072, got 1000000000000")
        assertRefused(try config("smollm_chat") { $0["intermediate_size"] = huge }, "intermediate_size: must be at most 1048576")
        assertRefused(try config("smollm_chat") { $0["num_hidden_layers"] = huge }, "num_hidden_layers: must be at most 4096")
        assertRefused(try config("smollm_chat") { $0["max_position_embeddings"] = .int(0) }, "max_position_embeddings: must be positive, got 0")
        assertRefused(try config("smollm_chat") { $0["max_position_embeddings"] = .int(-1) }, "max_position_embeddings: must be positive, got -1")
        assertRefused(try config("gpt2") { $0["n_positions"] = .int(0) }, "n_positions: must be positive, got 0")
        assertRefused(try config("gpt2") { $0["n_embd"] = huge }, "n_embd: must be at most 131072")
    }

    func testNumbersThatMakeTheMathNaNAreRefused() throws {
        for eps in [0.0, -1e-6, 1e-50] {
            assertRefused(try config("smollm_chat") { $0["rms_norm_eps"] = .double(eps) }, "rms_norm_eps: must be a positive finite number")
        }
        assertRefused(try config("gpt2") { $0["layer_norm_epsilon"] = .double(0) }, "layer_norm_epsilon: must be a positive finite number, got 0.0")
        for theta in [0.0, -10000.0] {
            assertRefused(try config("smollm_chat") { self.nested(&$0, "rope_parameters", "rope_theta", .double(theta)) },
                          "rope_theta: must be a positive finite number")
            assertRefused(try config("llama_tied_linear_bias_v4") { $0["rope_theta"] = .double(theta) }, "rope_theta: must be a positive finite number")
        }
        assertRefused(try config("llama_tied_linear_bias_v4") { self.nested(&$0, "rope_scaling", "factor", .double(0)) },
                      "rope_scaling.factor: must be a positive finite number, got 0.0")
        assertRefused(try config("llama_gqa_llama3rope") { self.nested(&$0, "rope_parameters", "factor", .double(0)) },
                      "rope_scaling.factor: must be a positive finite number, got 0.0")
        assertRefused(try config("llama_gqa_llama3rope") { self.nested(&$0, "rope_parameters", "high_freq_factor", .double(1)) },
                      "rope_scaling.high_freq_factor: must be greater than low_freq_factor (1.0), got 1.0")
        assertRefused(try config("gemma3_text_v4") { $0["rope_local_base_freq"] = .double(0) }, "rope_local_base_freq: must be a positive finite number")
        // The fixtures themselves are fine.
        for name in ["smollm_chat", "gpt2", "llama_gqa_llama3rope", "gemma3_text_v4"] {
            XCTAssertNoThrow(try ModelRegistry.config(json: try config(name) { _ in }, source: "m/config.json"))
        }
    }

    func testAModelLargerThanMemoryIsRefusedBeforeAllocating() throws {
        // Every size within its own bound, the product far beyond any machine.
        let c = try ModelRegistry.config(json: try config("smollm_chat") {
            $0["vocab_size"] = .int(1 << 24)
            $0["hidden_size"] = .int(1 << 16)
            $0["tie_word_embeddings"] = .bool(false)
        }, source: "m/config.json")
        XCTAssertThrowsError(try c.checkFitsInMemory(source: "m/config.json")) {
            XCTAssertTrue("\($0)".contains("m/config.json: vocab_size/hidden_size/intermediate_size/num_hidden_layers: the model's f32 parameters need"), "\($0)")
        }
        XCTAssertNoThrow(try ModelRegistry.config(json: try config("smollm_chat") { _ in }, source: "m").checkFitsInMemory(source: "m"))
    }

    func testNonFiniteWeightsAreRefusedNamingTheTensor() throws {
        let config = try ModelRegistry.config(path: fixture("smollm_chat/config.json"))
        for bad in [Float.nan, .infinity, -.infinity] {
            let model = TransformerModel(config: config)
            var source = InMemoryTensors(sourceName: "weights.safetensors")
            for e in model.layout.entries {
                var values = [Float](repeating: 0.5, count: e.count)
                if e.name == "model.layers.1.mlp.down_proj.weight" { values[7] = bad }
                source.add(e.name, shape: e.shape, values: values)
            }
            XCTAssertThrowsError(try WeightLoader.load(into: model.params, layout: model.layout, config: config, from: source)) {
                XCTAssertTrue($0 is NonFiniteWeightError, "\(type(of: $0))")
                XCTAssertEqual("\($0)", "weights.safetensors: tensor 'model.layers.1.mlp.down_proj.weight' holds \(bad) at element 7; "
                               + "weights must be finite numbers (the file is corrupt or from a diverged run)")
            }
        }
    }
}
