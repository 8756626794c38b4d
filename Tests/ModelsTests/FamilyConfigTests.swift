import Foundation
import XCTest
import Formats
@testable import Models
import SafeTensors
import Tensors

/// Bad config.json keys of the families added on the Architecture design, and bad LoRA settings and
/// adapter folders: each is a typed error naming the file and key (or tensor) and what was expected.
final class FamilyConfigTests: XCTestCase {
    func config(_ fixtureName: String, _ edit: (inout JSONObject) -> Void) throws -> JSONValue {
        var o = try XCTUnwrap(JSONValue.read(path: fixture(fixtureName + "/config.json")).objectValue)
        edit(&o)
        return .object(o)
    }

    func assertRefused(_ json: JSONValue, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModelRegistry.config(json: json, source: "m/config.json"), file: file, line: line) {
            XCTAssertTrue($0 is ModelConfigError, "\(type(of: $0))", file: file, line: line)
            XCTAssertTrue("\($0)".contains("m/config.json: " + expected), "\($0)", file: file, line: line)
        }
    }

    func testGemmaKeysAreChecked() throws {
        assertRefused(try config("gemma3_text") { $0["layer_types"] = .array([.string("full_attention")]) },
                      "layer_types: has 1 entries for 3 layers")
        assertRefused(try config("gemma3_text") { $0["layer_types"] = .array(Array(repeating: .string("chunked_attention"), count: 3)) },
                      "layer_types: 'chunked_attention' is neither sliding_attention nor full_attention")
        assertRefused(try config("gemma3_text") { $0["sliding_window"] = .int(0) }, "sliding_window: must be positive, got 0")
        assertRefused(try config("gemma3_text_v4") { $0["sliding_window_pattern"] = .int(0) }, "sliding_window_pattern: must be positive, got 0")
        assertRefused(try config("gemma3_text") { $0["final_logit_softcapping"] = .double(-1) }, "final_logit_softcapping: must be positive")
        assertRefused(try config("gemma3_text") { $0["query_pre_attn_scalar"] = .int(0) }, "query_pre_attn_scalar: must be positive")
        assertRefused(try config("gemma3_text") { $0["hidden_activation"] = .string("relu") }, "hidden_activation: 'relu' (only gelu_pytorch_tanh) is not supported")
        assertRefused(try config("gemma3_text") { $0["use_bidirectional_attention"] = .bool(true) }, "use_bidirectional_attention: bidirectional attention is not supported")
    }

    func testPhi3AndQwen3KeysAreChecked() throws {
        assertRefused(try config("phi3_gqa") { o in
            var rp = o["rope_parameters"]!.objectValue!
            rp["partial_rotary_factor"] = .double(0.5)
            o["rope_parameters"] = .object(rp)
        }, "partial_rotary_factor: 0.5 (only 1.0, full rotary) is not supported")
        assertRefused(try config("qwen3_gqa") { $0["use_sliding_window"] = .bool(true) }, "use_sliding_window: sliding-window attention is not supported")
    }

    func testLoRASettingsAndAdapterFoldersAreChecked() throws {
        let model = try TransformerModel.load(directory: fixture("qwen3_gqa"))
        XCTAssertThrowsError(try LoRAAdapter(model: model, settings: LoRASettings(r: 4, alpha: 8, targets: .names(["qkv"])))) {
            XCTAssertTrue("\($0)".contains("lora.target_modules: [qkv] matches no projection of this model; its projections are named down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj"), "\($0)")
        }
        XCTAssertThrowsError(try LoRAAdapter(model: model, settings: LoRASettings(r: 0, alpha: 8, targets: .allLinear))) {
            XCTAssertTrue("\($0)".contains("lora: r must be positive, got 0"), "\($0)")
        }
        XCTAssertThrowsError(try LoRAAdapter(model: model, settings: LoRASettings(r: 4, alpha: .nan, targets: .allLinear))) {
            XCTAssertTrue("\($0)".contains("lora: alpha must be positive, got nan"), "\($0)")
        }
        // An adapter folder written by us loads back; a wrong peft_type or a missing tensor is refused by name.
        let dir = NSTemporaryDirectory() + "sf-adapter-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let adapter = try LoRAAdapter(model: model, settings: LoRASettings(r: 2, alpha: 4, targets: .names(["q_proj", "v_proj"])))
        adapter.initializeFresh(seed: 1)
        try adapter.save(directory: dir, baseModel: fixture("qwen3_gqa"))
        let back = try LoRAAdapter.load(directory: dir, model: model)
        XCTAssertEqual(Array(back.params.floats), Array(adapter.params.floats))
        XCTAssertEqual(back.layout, adapter.layout)
        var config = try XCTUnwrap(JSONValue.read(path: dir + "/adapter_config.json").objectValue)
        config["peft_type"] = .string("IA3")
        try JSONValue.object(config).write(to: dir + "/adapter_config.json")
        XCTAssertThrowsError(try LoRAAdapter.load(directory: dir, model: model)) {
            XCTAssertTrue("\($0)".contains("adapter_config.json: peft_type: expected \"LORA\""), "\($0)")
        }
        config["peft_type"] = .string("LORA")
        config["target_modules"] = .array([.string("q_proj"), .string("v_proj"), .string("o_proj")])
        try JSONValue.object(config).write(to: dir + "/adapter_config.json")
        XCTAssertThrowsError(try LoRAAdapter.load(directory: dir, model: model)) {
            XCTAssertTrue("\($0)".contains("missing 4: base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight"), "\($0)")
        }
    }
}
