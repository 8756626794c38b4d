import Foundation
import XCTest
import Formats

/// The command line against what transformers produced for the same model folder
/// (Scripts/reference/gen_models.py, `smollm_chat`: a tiny Llama with the shipped SmolLM tokenizer).
final class TokenizeGenerateEvalTests: XCTestCase {
    let model = CLI.fixtures + "/models/smollm_chat"

    func expected() throws -> JSONValue { try JSONValue.read(path: model + "/expected_cli.json") }

    func testTokenizeMatchesTransformersIds() throws {
        for c in try XCTUnwrap(expected()["cases"]?.arrayValue) {
            let prompt = try XCTUnwrap(c["prompt"]?.stringValue)
            let r = try CLI.run(["tokenize", "--model", model, "--text", prompt])
            XCTAssertEqual(r.status, 0, r.stderr)
            // Token ids identical.
            XCTAssertEqual(try JSONValue.parse(r.stdout), c["ids"], prompt)
            let viaStdin = try CLI.run(["tokenize", "--model", model], stdin: prompt)
            XCTAssertEqual(viaStdin.stdout, r.stdout)
        }
    }

    func testGreedyGenerationPrintsTransformersText() throws {
        for c in try XCTUnwrap(expected()["cases"]?.arrayValue) {
            let prompt = try XCTUnwrap(c["prompt"]?.stringValue)
            let plain = try CLI.run(["generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "12"])
            XCTAssertEqual(plain.status, 0, plain.stderr)
            XCTAssertEqual(plain.stdout, (c["generated"]?.stringValue ?? "") + "\n", prompt)
            let chat = try CLI.run(["generate", "--model", model, "--prompt", prompt, "--chat", "--max-new-tokens", "12"])
            XCTAssertEqual(chat.status, 0, chat.stderr)
            XCTAssertEqual(chat.stdout, (c["chat_generated"]?.stringValue ?? "") + "\n", prompt)
        }
    }

    func testSamplingIsSeededAndValidated() throws {
        let a = try CLI.run(["generate", "--model", model, "--prompt", "Hi", "--temperature", "0.8", "--top-p", "0.9", "--seed", "3", "--max-new-tokens", "8"])
        let b = try CLI.run(["generate", "--model", model, "--prompt", "Hi", "--temperature", "0.8", "--top-p", "0.9", "--seed", "3", "--max-new-tokens", "8"])
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(a.stdout, b.stdout, "same seed, same text")
        let bad = try CLI.run(["generate", "--model", model, "--prompt", "Hi", "--top-p", "1.5"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--top-p in (0, 1]"), bad.stderr)
        // A folder with a tokenizer but no chat template: --chat is refused, naming the folder.
        let plain = NSTemporaryDirectory() + "sf-notemplate-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: plain) }
        try FileManager.default.copyItem(atPath: model, toPath: plain)
        try? FileManager.default.removeItem(atPath: plain + "/chat_template.jinja")
        var config = try XCTUnwrap(JSONValue.read(path: plain + "/tokenizer_config.json").objectValue)
        config["chat_template"] = nil
        try JSONValue.object(config).write(to: plain + "/tokenizer_config.json")
        let noTemplate = try CLI.run(["generate", "--model", plain, "--prompt", "Hi", "--chat"])
        XCTAssertEqual(noTemplate.status, 1)
        XCTAssertTrue(noTemplate.stderr.contains("\(plain): a chat prompt needs a chat template"), noTemplate.stderr)
    }

    func testEvalLossMatchesTransformers() throws {
        let r = try CLI.run(["eval", "--model", model, "--data", model + "/eval.jsonl"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let fields = r.stdout.split(separator: " ").map(String.init)
        let loss = try XCTUnwrap(Double(fields[1]))
        let reference = try XCTUnwrap(expected()["eval_mean_loss"]?.doubleValue)
        // Tolerance: 1e-4 relative (mean token loss, f32 logits).
        XCTAssertEqual(loss, reference, accuracy: 1e-4 * reference)
        XCTAssertTrue(r.stdout.contains("tokens 51"), r.stdout)
    }

    func testEvalReportsTheBadLine() throws {
        let path = NSTemporaryDirectory() + "sf-eval-\(getpid()).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("{\"text\": \"fine\"}\n{\"txt\": \"oops\"}\n".utf8).write(to: URL(fileURLWithPath: path))
        let r = try CLI.run(["eval", "--model", model, "--data", path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("\(path):2: expected an object with a string \"text\""), r.stderr)
    }
}
