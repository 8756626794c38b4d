import Foundation
import XCTest
import Engine
import Formats
@testable import Recipes
import Trainer

/// Recipes: typed decoding with defaults, overrides, and every problem reported at once with its line.
final class RecipeTests: XCTestCase {
    var dir = ""
    let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models/llama_gqa_llama3rope").path

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "sf-recipe-\(getpid())-\(name.hashValue)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(#"{"text": "hello"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/train.jsonl"))
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ text: String) throws -> String {
        let path = dir + "/recipe.yaml"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testMinimalRecipeTakesDefaults() throws {
        let path = try write("""
        # Launch: swift-finetune recipe.yaml
        model: {path: \(model)}
        data: {train: {path: \(dir)/train.jsonl, format: text}}
        output: {dir: \(dir)/out}
        """)
        let c = try Recipe.load(path: path).configuration
        XCTAssertEqual(c.training.learningRate, 2e-5)
        XCTAssertEqual(c.training.maxGradNorm, 1.0)
        XCTAssertEqual(c.optimizer.betas, [0.9, 0.999])
        XCTAssertEqual(c.engine.precision, .f32)
        XCTAssertEqual(c.engine.lossScaler.initialScalePower, 16)
        XCTAssertEqual(c.data.maxSeqLen, 1024)
        XCTAssertEqual(c.seed, 42)
        XCTAssertNil(c.lora)
    }

    func testOverridesAndReferences() throws {
        let path = try write("""
        model: {path: \(model)}
        data: {train: {path: \(dir)/train.jsonl}, max_seq_len: 64}
        training: {learning_rate: 1.0e-4, micro_batch_size: 2}
        output: {dir: "${data.train.path}.out"}
        engine: {zero_stage: 2, precision: bf16}
        lora: {r: 8, alpha: 16}
        """)
        let c = try Recipe.load(path: path, overrides: ["training.learning_rate=3e-4", "lora.target_modules=[q_proj,k_proj,v_proj]", "training.max_grad_norm=null"]).configuration
        XCTAssertEqual(c.training.learningRate, 3e-4)
        XCTAssertNil(c.training.maxGradNorm, "null disables clipping")
        XCTAssertEqual(c.lora?.targetModules, ["q_proj", "k_proj", "v_proj"])
        XCTAssertEqual(c.output.dir, dir + "/train.jsonl.out")
        XCTAssertEqual(c.engine.zeroStage, 2)
        XCTAssertEqual(c.engine.precision, .bf16)
    }

    func testEveryProblemAtOnceWithLinesAndSuggestions() throws {
        let path = try write("""
        model: {path: /nonexistent}
        data:
          train: {path: \(dir)/missing.jsonl, format: chatml}
          eval: {split: 1.5}
        training:
          learning_rat: 1.0e-4
          micro_batch_size: 0
        optimizer: {betas: [0.9]}
        engine: {zero_stage: 3, pipeline: {stages: 2}}
        output: {dir: out}
        """)
        let (_, typeProblems) = Recipe.check(path: path)
        let text = typeProblems.map(\.description).joined(separator: "\n")
        XCTAssertTrue(text.contains("recipe.yaml:3:"), text)
        XCTAssertTrue(text.contains("data.train.format"), text)
        XCTAssertTrue(text.contains("learning_rat"), text)
        XCTAssertTrue(text.contains("did you mean 'learning_rate'"), text)

        // Once the types are right, the cross-key rules report everything else together.
        let fixed = try write("""
        model: {path: /nonexistent}
        data:
          train: {path: \(dir)/missing.jsonl, format: chat}
          eval: {split: 1.5}
        training:
          micro_batch_size: 0
        optimizer: {betas: [0.9]}
        engine: {zero_stage: 3, pipeline: {stages: 2}}
        output: {dir: out}
        """)
        let (_, problems) = Recipe.check(path: fixed)
        let all = problems.map(\.description)
        XCTAssertEqual(all.count, 6, all.joined(separator: "\n"))
        XCTAssertTrue(all.contains { $0.contains("recipe.yaml:1:") && $0.contains("model.path: no such folder '/nonexistent'") }, "\(all)")
        XCTAssertTrue(all.contains { $0.contains(":3:") && $0.contains("data.train.path: no such file") }, "\(all)")
        XCTAssertTrue(all.contains { $0.contains(":4:") && $0.contains("data.eval.split: must be between 0 and 1") }, "\(all)")
        XCTAssertTrue(all.contains { $0.contains("training.micro_batch_size: must be at least 1, got 0") }, "\(all)")
        XCTAssertTrue(all.contains { $0.contains("optimizer.betas: must be two numbers") }, "\(all)")
        XCTAssertTrue(all.contains { $0.contains("pipeline parallelism composes only with ZeRO stage 0 or 1") }, "\(all)")
    }
}
