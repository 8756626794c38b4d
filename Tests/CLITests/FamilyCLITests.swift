import Foundation
import XCTest
import Formats

/// tokenize, generate, eval and a short fine-tune through the command line on a tiny model of each family
/// added on the Architecture design, saved by transformers with a shipped tokenizer
/// (Scripts/reference/gen_families.py: `<family>_chat`, `expected_cli.json`).
final class FamilyCLITests: XCTestCase {
    static let families = ["qwen3_chat", "phi3_chat", "gemma3_chat"]

    func folder(_ family: String) -> String { CLI.fixtures + "/models/" + family }

    func testTokenizeGenerateAndEvalMatchTransformers() throws {
        for family in Self.families {
            let model = folder(family)
            let expected = try JSONValue.read(path: model + "/expected_cli.json")
            for c in try XCTUnwrap(expected["cases"]?.arrayValue) {
                let prompt = try XCTUnwrap(c["prompt"]?.stringValue)
                let ids = try CLI.run(["tokenize", "--model", model, "--text", prompt])
                XCTAssertEqual(ids.status, 0, ids.stderr)
                // Token ids identical.
                XCTAssertEqual(try JSONValue.parse(ids.stdout), c["ids"], "\(family): \(prompt)")
                let plain = try CLI.run(["generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "12"])
                XCTAssertEqual(plain.status, 0, plain.stderr)
                // Greedy continuations: the same token ids, so the same decoded text.
                XCTAssertEqual(plain.stdout, (c["generated"]?.stringValue ?? "") + "\n", "\(family): \(prompt)")
                if let chatText = c["chat_generated"]?.stringValue {
                    let chat = try CLI.run(["generate", "--model", model, "--prompt", prompt, "--chat", "--max-new-tokens", "12"])
                    XCTAssertEqual(chat.status, 0, chat.stderr)
                    XCTAssertEqual(chat.stdout, chatText + "\n", "\(family) chat: \(prompt)")
                }
            }
            let r = try CLI.run(["eval", "--model", model, "--data", model + "/eval.jsonl"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let loss = try XCTUnwrap(Double(r.stdout.split(separator: " ").map(String.init)[1]))
            let reference = try XCTUnwrap(expected["eval_mean_loss"]?.doubleValue)
            // Tolerance: 1e-4 relative (mean token loss, f32 logits).
            XCTAssertEqual(loss, reference, accuracy: 1e-4 * reference, family)
        }
    }

    func testFineTuneRunsAndExportsALoadableModel() throws {
        let root = URL(fileURLWithPath: CLI.fixtures).deletingLastPathComponent().deletingLastPathComponent().path
        for family in Self.families {
            let out = NSTemporaryDirectory() + "sf-family-\(family)-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: out + ".yaml") }
            let recipe = """
                model: {path: \(folder(family))}
                data:
                  train: {path: Recipes/data/quickstart_chat.jsonl, format: chat}
                  max_seq_len: 64
                training: {max_steps: 4, micro_batch_size: 4, learning_rate: 3.0e-3}
                output: {dir: \(out), dtype: f32}
                logging: {progress: none}
                """
            try Data(recipe.utf8).write(to: URL(fileURLWithPath: out + ".yaml"))
            let r = try CLI.run([out + ".yaml"], cwd: root)
            XCTAssertEqual(r.status, 0, "\(family): \(r.stderr)")
            let losses = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
                .compactMap { try JSONValue.parse(String($0))["loss"]?.doubleValue }
            XCTAssertEqual(losses.count, 4, family)
            XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(family): \(losses)")
            XCTAssertLessThan(losses.last!, losses.first!, "\(family): the loss falls on the training data")
            // The exported folder is a model the CLI loads again.
            let e = try CLI.run(["eval", "--model", out + "/final", "--data", folder(family) + "/eval.jsonl"])
            XCTAssertEqual(e.status, 0, "\(family): \(e.stderr)")
        }
    }
}
