import Foundation
import XCTest
import Engine
import Formats
@testable import Recipes
@testable import Trainer

/// ds_config.json read as it is: the Hugging Face integration's example configs (Tests/Fixtures/deepspeed,
/// unchanged) merge with "auto" filled from the recipe; DeepSpeed's batch arithmetic, optimizer and
/// scheduler defaults; misspelt keys, missing features and recipe disagreements reported together, the
/// same by `validate` and the Trainer.
final class DeepSpeedConfigTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let fixtures = root + "/Tests/Fixtures/deepspeed"
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "sf-dsconfig-\(getpid())-\(name.hashValue)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func recipe(_ extra: String, training: String = "{max_steps: 3, micro_batch_size: 2, gradient_accumulation_steps: 2, learning_rate: 3.0e-4, max_grad_norm: 0.5}") throws -> String {
        let text = """
        model:
          init: {config: \(Self.root)/Recipes/models/quickstart/config.json, tokenizer: \(Self.root)/Tokenizers/smollm}
        data:
          train: {path: \(Self.root)/Recipes/data/quickstart_chat.jsonl, format: chat}
          max_seq_len: 64
        training: \(training)
        scheduler: {warmup_steps: 2}
        logging: {progress: none}
        output: {dir: \(dir)/out}
        \(extra)
        """
        let path = dir + "/recipe.yaml"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func dsConfig(_ json: String) throws -> String {
        let path = dir + "/ds_config.json"
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testHuggingFaceExampleConfigsMergeWithAutoFromTheRecipe() throws {
        for (file, stage, precision) in [("ds_config_zero2.json", 2, "fp16"), ("ds_config_zero3.json", 3, "fp16"),
                                         ("ds_config_zero2_bf16.json", 2, "bf16"), ("ds_config_zero3_bf16.json", 3, "bf16")] {
            let path = try recipe("engine: {precision: \(precision)}\ndeepspeed: \(Self.fixtures)/\(file)")
            let (loaded, problems) = Recipe.check(path: path)
            XCTAssertEqual(problems, [], file)
            let c = try XCTUnwrap(loaded?.configuration.validated(), file)
            XCTAssertNil(c.deepspeed, "merged")
            XCTAssertEqual(c.engine.zeroStage, stage, file)
            XCTAssertEqual(c.engine.precision.rawValue, precision, "fp16/bf16 enabled \"auto\": the recipe's")
            XCTAssertEqual(c.engine.offloadOptimizer.device, .cpu, file)
            XCTAssertEqual(c.engine.offloadParam.device, stage == 3 ? .cpu : EngineOptions.Offload.Device.none, file)
            // "auto": micro batch, accumulation, clipping, lr, betas, eps, weight decay, warmup from the recipe.
            XCTAssertEqual(c.training.microBatchSize, 2)
            XCTAssertEqual(c.training.gradientAccumulationSteps, 2)
            XCTAssertEqual(c.training.maxGradNorm, 0.5)
            XCTAssertEqual(c.training.learningRate, 3e-4)
            XCTAssertEqual(c.optimizer.type, .adamw)
            XCTAssertEqual(c.optimizer.betas, [0.9, 0.999])
            XCTAssertEqual(c.scheduler.type, .warmup_lr)
            XCTAssertEqual(c.scheduler.warmupSteps, 2)
            XCTAssertEqual(c.scheduler.warmupType, .log, "DeepSpeed's default warmup_type")
            XCTAssertEqual(c.logging.steps, 2000, "steps_per_print")
            XCTAssertFalse(c.logging.wallClockBreakdown)
            if precision == "fp16" {
                XCTAssertEqual(c.engine.lossScaler, EngineOptions.LossScaler(), "the example's values are DeepSpeed's defaults")
            }
            let noEffect = try XCTUnwrap(c.deepspeedImport?.noEffect)
            let expected = stage == 2
                ? ["zero_optimization.offload_optimizer.pin_memory", "zero_optimization.contiguous_gradients", "zero_optimization.overlap_comm",
                   "zero_optimization.reduce_scatter", "zero_optimization.reduce_bucket_size", "zero_optimization.allgather_partitions",
                   "zero_optimization.allgather_bucket_size"]
                : ["zero_optimization.offload_optimizer.pin_memory", "zero_optimization.offload_param.pin_memory",
                   "zero_optimization.contiguous_gradients", "zero_optimization.overlap_comm", "zero_optimization.reduce_bucket_size",
                   "zero_optimization.sub_group_size", "zero_optimization.stage3_prefetch_bucket_size",
                   "zero_optimization.stage3_param_persistence_threshold", "zero_optimization.stage3_max_live_parameters",
                   "zero_optimization.stage3_max_reuse_distance", "zero_optimization.stage3_gather_fp16_weights_on_model_save"]
            XCTAssertEqual(Set(noEffect), Set(expected), file)
            XCTAssertEqual(noEffect.count, expected.count, "each listed once: \(noEffect)")
            XCTAssertTrue(c.deepspeedImport?.note?.contains("no effect here") ?? false)
        }
    }

    func testEveryProblemAtOnceTheSameForValidateAndTrainer() throws {
        let ds = try dsConfig("""
        {"zero_optimisation": {"stage": 2},
         "zero_optimization": {"stage": 2, "overlap_com": true, "zero_quantized_weights": true},
         "optimizer": {"type": "OneBitAdam", "params": {"lr": 1e-3}},
         "scheduler": {"type": "WarmupLR", "params": {"warmup_num_step": 10}},
         "wandb": {"enabled": true}, "comms_logger": {"enabled": false},
         "train_batch_size": 7, "train_micro_batch_size_per_gpu": 2,
         "gradient_clipping": "one", "bf16": {"enabled": true}}
        """)
        let path = try recipe("engine: {zero_stage: 1}\ndeepspeed: \(ds)",
                              training: "{max_steps: 3, micro_batch_size: 2}")
        let (loaded, problems) = Recipe.check(path: path)
        let byKey = Dictionary(grouping: problems, by: \.path).mapValues { $0.map(\.message).joined(separator: " | ") }
        XCTAssertEqual(Set(byKey.keys), [
            "deepspeed.zero_optimisation", "deepspeed.zero_optimization.overlap_com", "deepspeed.zero_optimization.zero_quantized_weights",
            "deepspeed.zero_optimization.stage", "deepspeed.optimizer.type", "deepspeed.scheduler.params.warmup_num_step",
            "deepspeed.wandb", "deepspeed.train_batch_size", "deepspeed.gradient_clipping",
            // Absent params are DeepSpeed's defaults: warmup_num_steps 1000, which the recipe's warmup_steps 2 contradicts.
            "deepspeed.scheduler.params.warmup_num_steps",
        ], problems.map(\.description).joined(separator: "\n"))
        XCTAssertTrue(byKey["deepspeed.zero_optimisation"]!.contains("did you mean 'zero_optimization'?"), byKey.description)
        XCTAssertTrue(byKey["deepspeed.zero_optimization.overlap_com"]!.contains("did you mean 'overlap_comm'?"), byKey.description)
        XCTAssertTrue(byKey["deepspeed.scheduler.params.warmup_num_step"]!.contains("did you mean 'warmup_num_steps'?"), byKey.description)
        XCTAssertTrue(byKey["deepspeed.zero_optimization.stage"]!.contains("the recipe's engine.zero_stage says 1"), byKey.description)
        XCTAssertTrue(byKey["deepspeed.optimizer.type"]!.contains("1-bit"), byKey.description)
        XCTAssertTrue(byKey["deepspeed.wandb"]!.contains("not available"), byKey.description)
        XCTAssertTrue(byKey["deepspeed.train_batch_size"]!.contains("train_batch_size 7 ≠ train_micro_batch_size_per_gpu 2 × gradient_accumulation_steps 3 × 1 rank(s)"), byKey.description)
        XCTAssertTrue(byKey["deepspeed.gradient_clipping"]!.contains("expected a number"), byKey.description)
        XCTAssertTrue(problems.allSatisfy { $0.message.contains("(in \(ds))") }, "each names the file")
        XCTAssertTrue(problems.allSatisfy { $0.mark?.line == 11 }, "at the recipe's deepspeed line")
        // The Trainer throws the same problems (it merges the same way).
        XCTAssertThrowsError(try Trainer(configuration: try XCTUnwrap(loaded?.configuration), log: { _ in })) { error in
            XCTAssertEqual((error as? ConfigurationError)?.problems.map(\.description).sorted(),
                           problems.map { "\($0.path): \($0.message)" }.sorted())
        }
    }

    /// Configurations built in Swift (no recipe keys): a value other than the default counts as set.
    func swiftConfiguration(ds: String) -> TrainingConfiguration {
        var c = TrainingConfiguration(model: ModelSource(path: "unused"), data: DataOptions(train: .init(path: "unused")),
                                      output: OutputOptions(dir: dir + "/out"))
        c.deepspeed = ds
        return c
    }

    func testBatchSizesAnyTwoGiveTheThird() throws {
        for (json, worldSize, micro, gas, tbs) in [
            (#"{"train_batch_size": 16, "train_micro_batch_size_per_gpu": 2}"#, 2, 2, 4, 16),
            (#"{"train_batch_size": 16, "gradient_accumulation_steps": 2}"#, 2, 4, 2, 16),
            (#"{"train_micro_batch_size_per_gpu": 3, "gradient_accumulation_steps": 5}"#, 2, 3, 5, 30),
            (#"{"train_batch_size": 8}"#, 2, 4, 1, 8),
            (#"{"train_micro_batch_size_per_gpu": 3}"#, 1, 3, 1, 3),
        ] {
            let (c, problems) = swiftConfiguration(ds: try dsConfig(json)).mergingDeepSpeed(worldSize: worldSize)
            XCTAssertEqual(problems, [], json)
            XCTAssertEqual(c.training.microBatchSize, micro, json)
            XCTAssertEqual(c.training.gradientAccumulationSteps, gas, json)
            XCTAssertEqual(c.training.microBatchSize * c.training.gradientAccumulationSteps * worldSize, tbs, json)
        }
        let (_, problems) = swiftConfiguration(ds: try dsConfig(#"{"train_batch_size": 10, "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2}"#))
            .mergingDeepSpeed(worldSize: 2)
        XCTAssertEqual(problems.map(\.keyPath), ["deepspeed.train_batch_size"])
    }

    /// DeepSpeed's `pipeline` section: stages and partition by name, "auto"/"best" keep the recipe's,
    /// and the batch arithmetic counts D = world / P data-parallel replicas, as DeepSpeed's
    /// PipeDataParallelTopology does (train_batch_size = micro × accumulation × D).
    func testPipelineSectionMapsStagesPartitionAndCountsReplicas() throws {
        var (c, p) = swiftConfiguration(ds: try dsConfig(#"""
            {"train_batch_size": 16, "train_micro_batch_size_per_gpu": 2,
             "pipeline": {"stages": 2, "partition": "uniform", "seed_layers": false, "pipe_partitioned": true,
                          "grad_partitioned": true, "activation_checkpoint_interval": 1}}
            """#)).mergingDeepSpeed(worldSize: 4)
        XCTAssertEqual(p, [])
        XCTAssertEqual(c.engine.pipeline.stages, 2)
        XCTAssertEqual(c.engine.pipeline.partition, .uniform)
        XCTAssertTrue(c.engine.activationCheckpointing)
        XCTAssertEqual(c.training.microBatchSize, 2)
        XCTAssertEqual(c.training.gradientAccumulationSteps, 4, "16 = 2 × 4 × (4 ranks / 2 stages)")
        XCTAssertEqual(c.deepspeedImport?.noEffect, ["pipeline.seed_layers", "pipeline.pipe_partitioned", "pipeline.grad_partitioned"])
        // The recipe check (the model and data paths here are placeholders) agrees on 4 ranks, not on 3.
        let engineKeys = { (w: Int) in c.problems(worldSize: w).map(\.keyPath).filter { $0.hasPrefix("engine") || $0.hasPrefix("training") } }
        XCTAssertEqual(engineKeys(4), [])
        XCTAssertEqual(engineKeys(3), ["engine.pipeline.stages", "training.train_batch_size"])

        // DeepSpeed's defaults ("auto", "best") keep what the recipe says.
        var recipeSide = swiftConfiguration(ds: try dsConfig(#"{"pipeline": {"stages": "auto", "partition": "best"}, "gradient_accumulation_steps": 8}"#))
        recipeSide.engine.pipeline.stages = 2
        recipeSide.engine.pipeline.partition = .blocks([1, 1])
        (c, p) = recipeSide.mergingDeepSpeed(worldSize: 2)
        XCTAssertEqual(p, [])
        XCTAssertEqual(c.engine.pipeline, recipeSide.engine.pipeline)
        XCTAssertEqual(c.training.gradientAccumulationSteps, 8)

        // Disagreement with the recipe, a layer-type partition, a misspelling, an interval, a mismatched batch.
        var disagree = swiftConfiguration(ds: try dsConfig(#"""
            {"train_batch_size": 12, "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2,
             "pipeline": {"stages": 4, "partition": "type:transformer", "activation_checkpoint_interval": 2, "stage": 2}}
            """#))
        disagree.engine.pipeline.stages = 2
        (_, p) = disagree.mergingDeepSpeed(worldSize: 4)
        XCTAssertEqual(p.map(\.keyPath), ["deepspeed.pipeline.stages", "deepspeed.pipeline.partition",
                                          "deepspeed.pipeline.activation_checkpoint_interval", "deepspeed.pipeline.stage",
                                          "deepspeed.train_batch_size"])
        XCTAssertTrue(p[0].message.contains("the recipe's engine.pipeline.stages says 2"), p[0].message)
        XCTAssertTrue(p[3].message.contains("did you mean 'stages'"), p[3].message)
        XCTAssertTrue(p[4].message.contains("× 2 data-parallel replica(s) (4 ranks / 2 pipeline stages)"), p[4].message)
        (_, p) = swiftConfiguration(ds: try dsConfig(#"{"pipeline": {"stages": 0}}"#)).mergingDeepSpeed(worldSize: 2)
        XCTAssertEqual(p.map(\.keyPath), ["deepspeed.pipeline.stages"])
        XCTAssertTrue(p[0].message.contains("must be at least 1, got 0"), p[0].message)
    }

    func testOptimizerAndSchedulerSemantics() throws {
        // Adam with adam_w_mode false is L2 Adam: refused unless there is no weight decay to apply.
        var (c, p) = swiftConfiguration(ds: try dsConfig(#"{"optimizer": {"type": "Adam", "params": {"adam_w_mode": false, "weight_decay": 0.1}}}"#)).mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(p.map(\.keyPath), ["deepspeed.optimizer.params.adam_w_mode"])
        (c, p) = swiftConfiguration(ds: try dsConfig(#"{"optimizer": {"type": "Adam", "params": {"adam_w_mode": false, "lr": 0.01}}}"#)).mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(p, [])
        XCTAssertEqual(c.training.learningRate, 0.01)
        XCTAssertEqual(c.optimizer.weightDecay, 0, "FusedAdam's default")
        // torch_adam with AdamW is torch.optim.AdamW: its weight decay default is 0.01; absent params are DeepSpeed's.
        (c, p) = swiftConfiguration(ds: try dsConfig(#"{"optimizer": {"type": "AdamW", "params": {"torch_adam": true}}, "gradient_clipping": 0}"#)).mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(p, [])
        XCTAssertEqual(c.optimizer.weightDecay, 0.01)
        XCTAssertEqual(c.training.learningRate, 1e-3)
        XCTAssertEqual(c.training.maxGradNorm, 0)
        // No gradient_clipping: DeepSpeed does not clip.
        (c, _) = swiftConfiguration(ds: try dsConfig(#"{"steps_per_print": 5}"#)).mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(c.training.maxGradNorm, 0)
        XCTAssertEqual(c.logging.steps, 5)
        // WarmupDecayLR with DeepSpeed's defaults and its own total_num_steps; the Trainer's schedule uses them.
        (c, p) = swiftConfiguration(ds: try dsConfig(#"{"scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 50, "warmup_type": "linear", "warmup_num_steps": 10}}}"#)).mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(p, [])
        XCTAssertEqual(c.scheduler.type, .warmup_decay_lr)
        XCTAssertEqual(c.scheduler.totalNumSteps, 50)
        XCTAssertEqual(c.training.learningRate, 1e-3, "warmup_max_lr's default")
        let schedule = Trainer.schedule(c.scheduler, baseLR: c.training.learningRate, totalSteps: 20)
        XCTAssertEqual(schedule, .deepSpeedWarmup(baseLR: 1e-3, DeepSpeedWarmupConfig(warmupMinLR: 0, warmupMaxLR: 1e-3, warmupNumSteps: 10,
                                                                                      warmupType: .linear, totalNumSteps: 50)))
        (c, p) = swiftConfiguration(ds: try dsConfig(#"{"scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 40}}, "tensorboard": {"enabled": true, "output_path": "tb", "job_name": "run1"}, "flops_profiler": {"enabled": true, "profile_step": 3}, "wall_clock_breakdown": true}"#)).mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(p, [])
        XCTAssertEqual(c.scheduler.cosMinRatio, 1e-4)
        XCTAssertEqual(c.scheduler.warmupSteps, 1000, "DeepSpeed's warmup_num_steps default")
        XCTAssertEqual(c.logging.tensorboardDirectory(outputDir: "out"), "tb/run1")
        XCTAssertTrue(c.logging.tensorboard && c.logging.wallClockBreakdown && c.logging.flopsProfiler.enabled)
        XCTAssertEqual(c.logging.flopsProfiler.profileStep, 3)
        // The scheduler's warmup_max_lr sets the lr the optimizer section gave (DeepSpeed's order), no conflict;
        // a recipe value other than the default that the ds_config contradicts is one.
        (c, p) = swiftConfiguration(ds: try dsConfig(#"{"optimizer": {"type": "AdamW", "params": {"lr": 0.01}}, "scheduler": {"type": "WarmupLR", "params": {"warmup_max_lr": 0.02}}}"#)).mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(p, [])
        XCTAssertEqual(c.training.learningRate, 0.02)
        var set = swiftConfiguration(ds: try dsConfig(#"{"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "nvme", "nvme_path": "/nvme"}}}"#))
        set.engine.zeroStage = 1
        set.engine.offloadOptimizer.device = .cpu
        (_, p) = set.mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(p.map(\.message), ["the ds_config says 3, the recipe's engine.zero_stage says 1; make them agree or write \"auto\" (in \(dir)/ds_config.json)",
                                          "the ds_config says nvme at /nvme, the recipe's engine.offload_optimizer says cpu; make them agree or write \"auto\" (in \(dir)/ds_config.json)"])
        // Unknown optimizer and scheduler names, with suggestions.
        (_, p) = swiftConfiguration(ds: try dsConfig(#"{"optimizer": {"type": "AdamX"}, "scheduler": {"type": "WarmupLr"}}"#)).mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(p.map(\.keyPath), ["deepspeed.optimizer.type", "deepspeed.scheduler.type"])
        XCTAssertTrue(p[1].message.contains("did you mean 'WarmupLR'?"), "\(p)")
        // A file that is not there, and one that is not JSON.
        (_, p) = swiftConfiguration(ds: dir + "/missing.json").mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(p.map(\.keyPath), ["deepspeed"])
        XCTAssertTrue(p[0].message.contains("missing.json"), "\(p)")
        (_, p) = swiftConfiguration(ds: try dsConfig("{\"fp16\": ")).mergingDeepSpeed(worldSize: 1)
        XCTAssertEqual(p.map(\.keyPath), ["deepspeed"])
    }
}
