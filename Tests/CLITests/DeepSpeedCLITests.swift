import Foundation
import XCTest

/// The Hugging Face DeepSpeed integration's example configs (ZeRO-2 and ZeRO-3, "auto" values, fp16 and
/// bf16; Tests/Fixtures/deepspeed, unchanged) train the tiny model through the command line with
/// `--deepspeed PATH` and DeepSpeed's own `--deepspeed_config=PATH`, and `validate` takes the flag too.
final class DeepSpeedCLITests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testExampleConfigsTrainUnchanged() throws {
        let dir = NSTemporaryDirectory() + "sf-ds-cli-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let recipe = dir + "/recipe.yaml"
        try Data("""
        model:
          init: {config: \(Self.root)/Recipes/models/quickstart/config.json, tokenizer: \(Self.root)/Tokenizers/smollm}
        data:
          train: {path: \(Self.root)/Recipes/data/quickstart_chat.jsonl, format: chat}
          max_seq_len: 64
          packing: true
        training: {max_steps: 2, micro_batch_size: 2, learning_rate: 1.0e-3}
        scheduler: {warmup_steps: 1}
        logging: {progress: none}
        output: {dir: \(dir)/out}

        """.utf8).write(to: URL(fileURLWithPath: recipe))
        for (file, precision, flag) in [("ds_config_zero2.json", "fp16", "--deepspeed"), ("ds_config_zero3.json", "fp16", "--deepspeed_config="),
                                        ("ds_config_zero2_bf16.json", "bf16", "--deepspeed_config"), ("ds_config_zero3_bf16.json", "bf16", "--deepspeed=")] {
            let ds = CLI.fixtures + "/deepspeed/" + file
            let out = dir + "/out-" + file
            let dsArgs = flag.hasSuffix("=") ? [flag + ds] : [flag, ds]
            let validate = try CLI.run(["validate", recipe] + dsArgs + ["engine.precision=\(precision)"])
            XCTAssertEqual(validate.status, 0, file + validate.stdout + validate.stderr)
            XCTAssertTrue(validate.stdout.contains("\(ds): no effect here") && validate.stdout.hasSuffix(": ok\n"), validate.stdout)
            let run = try CLI.run([recipe] + dsArgs + ["engine.precision=\(precision)", "output.dir=\(out)"])
            XCTAssertEqual(run.status, 0, file + run.stderr)
            XCTAssertTrue(run.stderr.contains("\(ds): no effect here"), run.stderr)
            XCTAssertTrue(run.stderr.contains("ZeRO-\(file.contains("zero3") ? 3 : 2)"), run.stderr)
            let steps = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains("\"loss\"") }
            XCTAssertEqual(steps.count, 2, file)
            XCTAssertEqual(steps.allSatisfy { $0.contains("\"loss_scale\"") }, precision == "fp16", "fp16's loss scaler runs: \(steps)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/final/config.json"), file)
        }
        let twice = try CLI.run([recipe, "--deepspeed", "a.json", "--deepspeed_config", "b.json"])
        XCTAssertNotEqual(twice.status, 0)
        XCTAssertTrue(twice.stderr.contains("two ds_configs given"), twice.stderr)
    }
}
