import Foundation
import XCTest
import Formats
@testable import Models
import SafeTensors
import Tensors

/// Configs of both transformers layouts, the registry, strict loading and saving.
final class LoadingTests: XCTestCase {
    /// A deferred load filled one layer group at a time, and a random init group by group, give exactly
    /// the weights of the one-call forms (what a 16-bit frozen base is built from, group by group).
    func testGroupByGroupLoadingAndInitEqualTheWholeModel() throws {
        let folder = fixture("llama_gqa_llama3rope")
        let whole = try TransformerModel.load(directory: folder)
        let (deferred, fill) = try TransformerModel.loadDeferred(directory: folder)
        XCTAssertTrue(deferred.params.floats.allSatisfy { $0 == 0 }, "nothing read before fill")
        for g in 0..<deferred.layout.groupCount { try fill(deferred.layout.range(ofGroup: g)) }
        XCTAssertEqual(Array(deferred.params.floats), Array(whole.params.floats))
        let a = TransformerModel(config: whole.config), b = TransformerModel(config: whole.config)
        a.initializeRandom(seed: 9)
        for g in (0..<b.layout.groupCount).reversed() { b.initializeRandom(seed: 9, range: b.layout.range(ofGroup: g)) }
        XCTAssertEqual(Array(a.params.floats), Array(b.params.floats))
        // Skipping lands on the word a sequential draw would give, at every phase within a block.
        for n in [0, 1, 3, 4, 5, 9, 1000] {
            var s = CounterRNG(seed: 3), k = CounterRNG(seed: 3)
            _ = s.nextUInt32()
            _ = k.nextUInt32()
            for _ in 0..<n { _ = s.nextUInt32() }
            k.skip(words: n)
            XCTAssertEqual(s.nextUInt32(), k.nextUInt32(), "skip \(n)")
        }
    }

    func testBothConfigLayoutsDecodeToTheSameModel() throws {
        let v4 = try ModelRegistry.config(path: fixture("llama_tied_linear_bias_v4/config.json"))
        XCTAssertEqual(v4.headDim, 20)
        XCTAssertEqual(v4.numKVHeads, 3)
        let v4Llama = try XCTUnwrap(v4.architecture as? LlamaArchitecture)
        XCTAssertTrue(v4.tieWordEmbeddings && v4Llama.qkvBias && v4Llama.outputBias && v4Llama.mlpBias)
        guard case .rotary(let theta, .linear(let factor)) = v4.positions else { return XCTFail("expected linear rope") }
        XCTAssertEqual(theta, 10000)
        XCTAssertEqual(factor, 2)
        let v5 = try ModelRegistry.config(path: fixture("llama_gqa_llama3rope/config.json"))
        guard case .rotary(let theta5, .llama3(let f, let low, let high, let orig)) = v5.positions else { return XCTFail("expected llama3 rope") }
        XCTAssertEqual([theta5, f, low, high], [500000, 8, 1, 4])
        XCTAssertEqual(orig, 16)
        let qwen = try ModelRegistry.config(path: fixture("qwen2_bias_tied/config.json"))
        let qwenLlama = try XCTUnwrap(qwen.architecture as? LlamaArchitecture)
        XCTAssertTrue(qwenLlama.qkvBias)
        XCTAssertFalse(qwenLlama.outputBias, "Qwen2's o_proj never has a bias")
        XCTAssertEqual(try ModelRegistry.config(path: fixture("llama_bf16/config.json")).torchDtype, .bf16)
    }

    func testUnknownModelTypeListsTheSupportedOnes() {
        XCTAssertThrowsError(try ModelRegistry.config(json: .object(JSONObject([("model_type", .string("bert"))])), source: "x/config.json")) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("x/config.json") && text.contains("'bert'") && text.contains("gemma3_text, gpt2, llama, mistral, phi3, qwen2, qwen3"), text)
        }
    }

    func testConfigErrorsNameTheKey() throws {
        let missing = try JSONValue.parse(#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}"#)
        XCTAssertThrowsError(try ModelRegistry.config(json: missing, source: "m/config.json")) {
            XCTAssertTrue("\($0)".contains("m/config.json: missing required key 'intermediate_size'"), "\($0)")
        }
        let wrongType = try JSONValue.parse(#"{"model_type": "llama", "vocab_size": "ten", "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}"#)
        XCTAssertThrowsError(try ModelRegistry.config(json: wrongType, source: "m/config.json")) {
            XCTAssertTrue("\($0)".contains("vocab_size: expected an integer, found a string"), "\($0)")
        }
        let badGQA = try JSONValue.parse(#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3}"#)
        XCTAssertThrowsError(try ModelRegistry.config(json: badGQA, source: "m/config.json")) {
            XCTAssertTrue("\($0)".contains("num_key_value_heads: must divide num_attention_heads (4), got 3"), "\($0)")
        }
        let yarn = try JSONValue.parse(#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "rope_scaling": {"rope_type": "yarn", "factor": 4}}"#)
        XCTAssertThrowsError(try ModelRegistry.config(json: yarn, source: "m/config.json")) {
            XCTAssertTrue("\($0)".contains("'yarn' (supported: default, linear, llama3)"), "\($0)")
        }
    }

    func testStrictLoadingReportsEveryFaultAtOnce() throws {
        let config = try ModelRegistry.config(path: fixture("llama_gqa_llama3rope/config.json"))
        let model = TransformerModel(config: config)
        var source = InMemoryTensors(sourceName: "weights.safetensors")
        for e in model.layout.entries where e.name != "model.norm.weight" && e.name != "model.layers.1.mlp.up_proj.weight" {
            let shape = e.name == "model.layers.0.self_attn.k_proj.weight" ? [e.shape[1], e.shape[0]] : e.shape
            source.add(e.name, shape: shape, values: [Float](repeating: 0, count: e.count))
        }
        source.add("model.layers.0.self_attn.rotary_emb.inv_freq", shape: [4], values: [0, 0, 0, 0])
        XCTAssertThrowsError(try WeightLoader.load(into: model.params, layout: model.layout, config: config, from: source)) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("weights.safetensors"), text)
            XCTAssertTrue(text.contains("missing 2: model.layers.1.mlp.up_proj.weight, model.norm.weight"), text)
            XCTAssertTrue(text.contains("unexpected 1: model.layers.0.self_attn.rotary_emb.inv_freq"), text)
            XCTAssertTrue(text.contains("model.layers.0.self_attn.k_proj.weight: expected shape [32, 64], found [64, 32]"), text)
        }
    }

    func testSaveThenLoadIsExactAndShardsLikeTransformers() throws {
        let original = try TransformerModel.load(directory: fixture("mistral_sharded"))
        let dir = NSTemporaryDirectory() + "sf-save-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try original.save(directory: dir, dtype: .f32, maxShardSize: 80_000)
        // Same shard boundaries and index as save_pretrained(max_shard_size="80KB") wrote.
        for file in ["model.safetensors.index.json", "model-00001-of-00004.safetensors", "model-00004-of-00004.safetensors"] {
            XCTAssertEqual(FileManager.default.contents(atPath: dir + "/" + file), FileManager.default.contents(atPath: fixture("mistral_sharded/" + file)), file)
        }
        let reloaded = try TransformerModel.load(directory: dir)
        XCTAssertEqual(Array(reloaded.params.floats), Array(original.params.floats))
        let config = try JSONValue.read(path: dir + "/config.json")
        XCTAssertEqual(config["torch_dtype"], .string("float32"))
        XCTAssertNil(config["rope_parameters"], "transformers-4 layout")
        XCTAssertEqual(config["rope_theta"], .double(10000))
    }

    func testBF16CheckpointLoadsIntoF32Exactly() throws {
        let model = try TransformerModel.load(directory: fixture("llama_bf16"))
        let file = try SafeTensorsFile(path: fixture("llama_bf16/model.safetensors"))
        XCTAssertEqual(file.info("model.norm.weight")?.dtype, .bf16)
        let raw = try file.rawBytes("model.norm.weight").bindMemory(to: UInt16.self)
        let loaded = model.params.floats(model.layout["model.norm.weight"]!.range)
        for (bits, value) in zip(raw, loaded) { XCTAssertEqual(HalfConversion.float(bf16: bits), value) }
    }
}
