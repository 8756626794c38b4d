import Foundation
import XCTest

/// `swift-finetune validate` says "ok" exactly when training would start, and training stops at the
/// same lines `validate` prints.
final class ValidateCommandTests: XCTestCase {
    static let root = URL(fileURLWithPath: CLI.fixtures).deletingLastPathComponent().deletingLastPathComponent().path

    func testShippedRecipeIsOk() throws {
        let r = try CLI.run(["validate", "Recipes/quickstart_tiny.yaml"], cwd: Self.root)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertEqual(r.stdout, "Recipes/quickstart_tiny.yaml: ok\n")
    }

    func testEveryProblemOnceAndTrainingRefusesTheSame() throws {
        let dir = NSTemporaryDirectory() + "sf-validate-cli-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let outFile = dir + "/out"
        FileManager.default.createFile(atPath: outFile, contents: Data())
        let recipe = dir + "/recipe.yaml"
        try Data("""
        model:
          init: {config: \(Self.root)/Recipes/models/quickstart/config.json, tokenizer: \(Self.root)/Tokenizers/smollm}
        data:
          train: {path: \(dir), format: chat}
        training: {micro_batch_size: 2, train_batch_size: 4, learning_rate: .inf}
        engine: {pipeline: {stages: 2}, zero_stage: 3}
        lora: {r: 8}
        logging: {tensorboard_job_name: a/b}
        output: {dir: \(outFile)}
        deepspeed: ds_config.json

        """.utf8).write(to: URL(fileURLWithPath: recipe))
        let expected = [
            "\(recipe):4:17: data.train.path: '\(dir)' is a folder, expected a file",
            "\(recipe):5:51: training.train_batch_size: train_batch_size 4 ≠ micro_batch_size 2 × gradient_accumulation_steps 1 × 1 rank(s) = 2",
            "\(recipe):5:69: training.learning_rate: must be a finite number, got inf",
            "\(recipe):6:29: engine.pipeline.stages: pipeline parallelism composes only with ZeRO stage 0 or 1 (as in DeepSpeed: ZeRO-2 and ZeRO-3 reduce gradients during backward, across the pipeline's interleaved micro-batches), zero_stage is 3",
            "\(recipe):7:7: lora: needs a pretrained base model (model.path): an adapter over randomly initialised weights could not be loaded again",
            "\(recipe):8:33: logging.tensorboard_job_name: must be a folder name (not empty, no '/'), got 'a/b'",
            "\(recipe):9:15: output.dir: '\(outFile)' is a file, expected a folder (or a path where one can be created)",
            "\(recipe):10:12: deepspeed: ds_config.json: cannot read: no such file",
        ]
        let validate = try CLI.run(["validate", recipe])
        XCTAssertEqual(validate.status, 1)
        XCTAssertEqual(validate.stdout.split(separator: "\n").map(String.init).sorted(), expected.sorted(), validate.stdout)
        XCTAssertTrue(validate.stderr.contains("\(recipe): 8 problems"), validate.stderr)

        let train = try CLI.run([recipe])
        XCTAssertEqual(train.status, 1)
        for line in expected { XCTAssertTrue(train.stderr.contains(line), "\(line)\n---\n\(train.stderr)") }

        // The batch size is right for two ranks; the other seven problems remain.
        let two = try CLI.run(["validate", "--nproc", "2", recipe])
        XCTAssertFalse(two.stdout.contains("train_batch_size"), two.stdout)
        XCTAssertTrue(two.stderr.contains("7 problems"), two.stderr)
    }
}
