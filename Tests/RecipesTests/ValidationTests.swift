import Foundation
import XCTest
import Engine
import Formats
@testable import Recipes
import Trainer

/// `validate` and training refuse the same recipes with the same words: every problem `Recipe.check`
/// reports at a line is one `Trainer.init` throws, and the other way round.
final class ValidationTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "sf-validation-\(getpid())-\(name.hashValue)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A recipe that trains, with the sections a case changes given whole, and `extra` lines at the end.
    func recipe(training: String = "{max_steps: 2, micro_batch_size: 2}", logging: String = "{progress: none}",
                output: String? = nil, train: String? = nil, extra: String = "") throws -> String {
        let text = """
        model:
          init: {config: \(Self.root)/Recipes/models/quickstart/config.json, tokenizer: \(Self.root)/Tokenizers/smollm}
        data:
          train: {path: \(train ?? Self.root + "/Recipes/data/quickstart_chat.jsonl"), format: chat}
          max_seq_len: 64
        training: \(training)
        logging: \(logging)
        output: \(output ?? "{dir: \(dir)/out}")
        \(extra)
        """
        let path = dir + "/recipe.yaml"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The problems `validate` prints, and the Trainer's error for the same recipe, line by line.
    func bothVerdicts(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> (validate: [YAMLProblem], trainer: [String]) {
        let (recipe, problems) = Recipe.check(path: path)
        let configuration = try XCTUnwrap(recipe?.configuration, "\(problems)", file: file, line: line)
        var trainer: [String] = []
        XCTAssertThrowsError(try Trainer(configuration: configuration, log: { _ in }), file: file, line: line) { error in
            guard let e = error as? ConfigurationError else { return XCTFail("not a ConfigurationError: \(error)", file: file, line: line) }
            trainer = e.problems.map(\.description)
            XCTAssertEqual("\(e)", trainer.joined(separator: "\n"), file: file, line: line)
        }
        return (problems, trainer)
    }

    func testEachRefusalIsTheSameInValidateAndTraining() throws {
        let regularFile = dir + "/a-file"
        FileManager.default.createFile(atPath: regularFile, contents: Data("x".utf8))
        let cases: [(name: String, path: () throws -> String, key: String, says: String, line: Int)] = [
            ("lora over random init", { try self.recipe(extra: "lora: {r: 8}") }, "lora", "needs a pretrained base model (model.path)", 9),
            ("tensorboard job", { try self.recipe(logging: "{progress: none, tensorboard: true, tensorboard_job_name: ''}") },
             "logging.tensorboard_job_name", "must be a folder name", 7),
            ("deepspeed", { try self.recipe(extra: "deepspeed: ds_config.json") }, "deepspeed", "ds_config.json: cannot read", 9),
            ("pipeline on one process", { try self.recipe(extra: "engine: {pipeline: {stages: 2}}") }, "engine.pipeline.stages",
             "2 stages need a world of a multiple of 2 ranks", 9),
            ("output file", { try self.recipe(output: "{dir: \(regularFile)}") }, "output.dir", "'\(regularFile)' is a file, expected a folder", 8),
            ("data folder", { try self.recipe(train: self.dir) }, "data.train.path", "'\(self.dir)' is a folder, expected a file", 4),
            ("train_batch_size", { try self.recipe(training: "{max_steps: 2, micro_batch_size: 2, train_batch_size: 8}") },
             "training.train_batch_size", "train_batch_size 8 ≠ micro_batch_size 2 × gradient_accumulation_steps 1 × 1 rank(s) = 2", 6),
            ("infinite lr", { try self.recipe(training: "{max_steps: 2, learning_rate: .inf}") }, "training.learning_rate", "must be a finite number, got inf", 6),
            ("huge micro batch", { try self.recipe(training: "{max_steps: 2, micro_batch_size: 1000000000000}") },
             "training.micro_batch_size", "must be at most 65536, got 1000000000000", 6),
            ("huge sample tokens", { try self.recipe(logging: "{progress: none, sample_max_new_tokens: 9223372036854775807}") },
             "logging.sample_max_new_tokens", "must be at most 1048576, got 9223372036854775807", 7),
            ("negative sample tokens", { try self.recipe(logging: "{progress: none, sample_max_new_tokens: -1}") },
             "logging.sample_max_new_tokens", "must be at least 1, got -1", 7),
        ]
        for c in cases {
            let (validate, trainer) = try bothVerdicts(try c.path())
            XCTAssertEqual(validate.map(\.path), [c.key], "\(c.name): \(validate)")
            XCTAssertTrue(validate.first?.message.contains(c.says) ?? false, "\(c.name): \(validate)")
            XCTAssertEqual(validate.first?.mark?.line, c.line, "\(c.name): \(validate)")
            XCTAssertTrue(validate.first?.description.hasPrefix(dir + "/recipe.yaml:\(c.line):") ?? false, "\(c.name): \(validate)")
            // The Trainer has no file to point into; the rest of the line is the same.
            XCTAssertEqual(trainer, validate.map { "\($0.path): \($0.message)" }, c.name)
        }
    }

    func testSeveralProblemsAreReportedTogetherByBoth() throws {
        let path = try recipe(training: "{max_steps: 2, micro_batch_size: 2, train_batch_size: 3, learning_rate: .nan}",
                              logging: "{tensorboard_job_name: a/b, sample_max_new_tokens: -1}",
                              output: "{dir: \(dir)/out, max_shard_size: 5 bananas}",
                              train: dir + "/missing.jsonl",
                              extra: """
                              optimizer: {betas: [0.9, .inf], eps: -1.0e-8}
                              engine: {zero_stage: 2, offload_param: {device: nvme, path: \(dir)}, pipeline: {stages: 2}}
                              lora: {r: 0, alpha: 16}
                              """)
        let (validate, trainer) = try bothVerdicts(path)
        XCTAssertEqual(validate.map(\.path).sorted(), [
            "data.train.path", "training.train_batch_size", "training.learning_rate", "optimizer.betas", "optimizer.eps",
            "engine.offload_param", "engine.pipeline.stages", "lora", "lora.r", "output.max_shard_size",
            "logging.tensorboard_job_name", "logging.sample_max_new_tokens",
        ].sorted(), validate.map(\.description).joined(separator: "\n"))
        XCTAssertTrue(validate.allSatisfy { $0.mark != nil }, "\(validate)")
        XCTAssertEqual(trainer, validate.map { "\($0.path): \($0.message)" })
        let pipeline = validate.first { $0.path == "engine.pipeline.stages" }
        XCTAssertTrue(pipeline?.message.contains("composes only with ZeRO stage 0 or 1") ?? false, "one problem per key: \(validate)")
    }

    func testWorldSizeDecidesTrainBatchSize() throws {
        let path = try recipe(training: "{max_steps: 2, micro_batch_size: 2, train_batch_size: 4}")
        XCTAssertEqual(Recipe.check(path: path, worldSize: 1).1.map(\.path), ["training.train_batch_size"])
        XCTAssertEqual(Recipe.check(path: path, worldSize: 2).1, [])
        XCTAssertThrowsError(try Recipe.loadForTraining(path: path, worldSize: 1)) {
            XCTAssertTrue("\($0)".contains("recipe.yaml:6:"), "\($0)")
        }
        XCTAssertNoThrow(try Recipe.loadForTraining(path: path, worldSize: 2))
    }

    func testShippedRecipeValidates() throws {
        let cwd = FileManager.default.currentDirectoryPath
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        // Its paths are relative to the repository, as its launch line assumes.
        FileManager.default.changeCurrentDirectoryPath(Self.root)
        let (recipe, problems) = Recipe.check(path: "Recipes/quickstart_tiny.yaml")
        XCTAssertNotNil(recipe)
        XCTAssertEqual(problems, [])
        // A valid recipe plus one broken file reference is refused for exactly that.
        let (_, broken) = Recipe.check(path: "Recipes/quickstart_tiny.yaml", overrides: ["model.init.tokenizer=Recipes"])
        XCTAssertEqual(broken.map(\.path), ["model.init.tokenizer"], "\(broken)")
        XCTAssertEqual(broken.first?.message, "no tokenizer.json in 'Recipes'")
    }

    /// Decoding an empty section gives exactly what Swift code gets from the initialiser: one default each.
    func testDecodedDefaultsEqualSwiftDefaults() throws {
        func decoded<T: Decodable>(_ type: T.Type, _ yaml: String) throws -> T {
            try YAMLLoader.load(T.self, text: yaml).get()
        }
        XCTAssertEqual(try decoded(LoopOptions.self, "{}"), LoopOptions())
        XCTAssertEqual(try decoded(OptimizerOptions.self, "{}"), OptimizerOptions())
        XCTAssertEqual(try decoded(SchedulerOptions.self, "{}"), SchedulerOptions())
        XCTAssertEqual(try decoded(LoggingOptions.self, "{}"), LoggingOptions())
        XCTAssertEqual(try decoded(EngineOptions.self, "{}"), EngineOptions())
        XCTAssertEqual(try decoded(EngineOptions.self, "{offload_optimizer: {}, offload_param: {}, pipeline: {}, loss_scaler: {}}"), EngineOptions())
        XCTAssertEqual(try decoded(OutputOptions.self, "{dir: o}"), OutputOptions(dir: "o"))
        XCTAssertEqual(try decoded(DataOptions.self, "{train: {path: t}}"), DataOptions(train: .init(path: "t")))
        XCTAssertEqual(try decoded(ModelSource.Initialize.self, "{config: c}"), ModelSource.Initialize(config: "c"))
        XCTAssertEqual(try decoded(LoopOptions.EarlyStopping.self, "{patience: 2}"), LoopOptions.EarlyStopping(patience: 2))
        XCTAssertEqual(try decoded(TrainingConfiguration.self, "{model: {path: m}, data: {train: {path: t}}, output: {dir: o}}"),
                       TrainingConfiguration(model: ModelSource(path: "m"), data: DataOptions(train: .init(path: "t")), output: OutputOptions(dir: "o")))
        XCTAssertEqual(try decoded(CosineScheduleConfig.self, "{num_training_steps: 9}"), CosineScheduleConfig(numTrainingSteps: 9))
        XCTAssertEqual(try decoded(DeepSpeedWarmupConfig.self, "{}"), DeepSpeedWarmupConfig())
        XCTAssertEqual(try decoded(DeepSpeedWarmupCosineConfig.self, "{total_num_steps: 9}"), DeepSpeedWarmupCosineConfig(totalNumSteps: 9))
        // An explicit null still disables clipping, unlike an absent key.
        XCTAssertNil(try decoded(LoopOptions.self, "{max_grad_norm: null}").maxGradNorm)
    }

    /// The engine's own rules, as a Swift caller building `EngineOptions` meets them: all at once, keyed.
    func testEngineOptionsReportEveryProblem() {
        var o = EngineOptions()
        o.zeroStage = 4
        o.offloadOptimizer.device = .nvme
        o.offloadParam.device = .nvme
        o.offloadParam.bufferSize = 0
        o.precision = .fp16
        o.lossScaler.lossScaleWindow = 0
        let problems = o.problems()
        XCTAssertEqual(problems.map(\.keyPath), ["zero_stage", "offload_optimizer", "offload_param", "offload_param.buffer_size",
                                                 "loss_scaler.loss_scale_window"], "\(problems)")
        XCTAssertThrowsError(try o.validate()) {
            let e = $0 as? ConfigurationError
            XCTAssertEqual(e?.problems.map(\.keyPath).first, "engine.zero_stage")
            XCTAssertEqual(e?.problems.count, 5)
        }
        XCTAssertEqual(EngineOptions().problems(), [])
    }
}

extension ValidationTests {
    func testSizesThatMultiplyIntoTooManyTokensAreRefused() throws {
        var c = try XCTUnwrap(Recipe.check(path: try recipe()).0?.configuration)
        c.training.microBatchSize = 65536
        c.data.maxSeqLen = 1 << 20
        XCTAssertEqual(c.problems().map(\.description), [
            "training.micro_batch_size: micro_batch_size 65536 × data.max_seq_len 1048576 tokens per micro-batch exceeds 4194304"])
        c.data.maxSeqLen = 1 << 40
        XCTAssertEqual(c.problems().map(\.description), ["data.max_seq_len: must be at most 1048576, got 1099511627776"])
        c.training.gradientAccumulationSteps = Int.max  // no overflow trap in the train_batch_size rule
        c.training.trainBatchSize = 8
        XCTAssertTrue(c.problems().contains { $0.keyPath == "training.train_batch_size" })
    }
}
