import Foundation
import XCTest
import SwiftFinetune

/// `make run`'s recipe without its download: Recipes/quickstart.yaml with the tiny SmolLM-shaped fixture
/// (same tokenizer family and ChatML template) in place of the real SmolLM2 folder runs the quickstart's
/// whole path (LoRA on the shipped identity data, answers before and after, the PEFT adapter, the merged
/// Hugging Face folder and the GGUF export Scripts/quickstart.sh makes of it, and generation from both).
final class QuickstartRecipeTests: XCTestCase {
    static let root = URL(fileURLWithPath: CLI.fixtures).deletingLastPathComponent().deletingLastPathComponent().path
    static let model = "model.path=Tests/Fixtures/models/smollm_chat"

    func testRecipeIsValidOnceTheModelFolderExists() throws {
        // A scratch output folder: a local `make run` leaves out/quickstart, which a fresh run refuses.
        let r = try CLI.run(["validate", "Recipes/quickstart.yaml", Self.model, "output.dir=\(NSTemporaryDirectory())sf-quickstart-validate-\(getpid())"],
                            cwd: Self.root)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertEqual(r.stdout, "Recipes/quickstart.yaml: ok\n")
    }

    func testQuickstartPathTrainsSamplesExportsAndTheGGUFGenerates() throws {
        let out = NSTemporaryDirectory() + "sf-quickstart-\(getpid())"
        let cache = out + "-cache"
        defer { for d in [out, cache] { try? FileManager.default.removeItem(atPath: d) } }
        let train = try CLI.run(["Recipes/quickstart.yaml", Self.model, "output.dir=\(out)", "training.max_steps=2"], cwd: Self.root)
        XCTAssertEqual(train.status, 0, train.stderr)
        let log = train.stdout + train.stderr
        for prompt in ["What is your name?", "Who made you?", "What is the capital of Germany?"] {
            XCTAssertTrue(log.contains("sample before training: \(prompt) -> "), log)
            XCTAssertTrue(log.contains("sample after training: \(prompt) -> "), log)
        }
        XCTAssertTrue(log.contains("70 examples"), log)
        XCTAssertTrue(log.contains("LoRA: trainable params"), log)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/final/adapter_config.json"), "final/ is a PEFT adapter")
        let merged = try CLI.run(["export", out + "/final", out + "/merged", "--dtype", "f32"], cwd: Self.root)
        XCTAssertEqual(merged.status, 0, merged.stderr)
        XCTAssertEqual(try CLI.run(["generate", "--model", out + "/merged", "--chat", "--prompt", "Hi", "--max-new-tokens", "4"], cwd: Self.root).status, 0)
        let gguf = out + "/quill.q8_0.gguf"
        let export = try CLI.run(["export", out + "/final", gguf, "--format", "gguf", "--dtype", "q8_0"], cwd: Self.root)
        XCTAssertEqual(export.status, 0, export.stderr)
        let file = try GGUFFile(path: gguf)
        XCTAssertEqual(file["tokenizer.ggml.model"]?.string, "gpt2")
        XCTAssertNotNil(file["tokenizer.chat_template"]?.string)
        let generate = try CLI.run(["generate", "--model", gguf, "--chat", "--prompt", "What is your name?", "--max-new-tokens", "4"],
                                   cwd: Self.root, environment: ["SWIFT_FINETUNE_CACHE": cache])
        XCTAssertEqual(generate.status, 0, generate.stderr)
    }
}
