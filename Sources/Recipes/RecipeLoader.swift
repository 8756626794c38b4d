import Engine
import Foundation
import Formats
import Trainer

/// A recipe: YAML decoded into `TrainingConfiguration`, with `key.path=value` overrides and `${a.b}`
/// references applied first, unknown keys and wrong types reported with file:line, and then the checks
/// that span several keys. `validate` reports every problem at once instead of stopping at the first.
public struct Recipe {
    public let path: String
    public let configuration: TrainingConfiguration
    /// The resolved document (overrides applied), saved beside checkpoints.
    public let node: YAMLNode

    public static func load(path: String, overrides: [String] = []) throws -> Recipe {
        let (recipe, problems) = check(path: path, overrides: overrides)
        guard let recipe, problems.isEmpty else { throw YAMLError(problems) }
        return recipe
    }

    /// Every problem of the recipe: syntax, unknown keys, types, then cross-key rules (only when the
    /// document decoded, since they need its values).
    public static func check(path: String, overrides: [String] = []) -> (Recipe?, [YAMLProblem]) {
        let loaded = YAMLLoader.load(TrainingConfiguration.self, path: path, overrides: overrides)
        guard let config = loaded.value, let node = loaded.node else { return (nil, loaded.problems) }
        let problems = loaded.problems + RecipeRules(config: config, node: node).problems()
        return (Recipe(path: path, configuration: config, node: node), problems)
    }
}

/// Rules that involve more than one key or the file system, each reported at the key's line.
/// Relative paths are relative to the working directory, as in torchtune.
struct RecipeRules {
    let config: TrainingConfiguration
    let node: YAMLNode

    func problem(_ path: String, _ message: String) -> YAMLProblem {
        let keys = path.split(separator: ".").map(String.init)
        return YAMLProblem(mark: node.node(at: keys)?.mark ?? node.node(at: Array(keys.dropLast()))?.mark, path: path, message: message)
    }

    func problems() -> [YAMLProblem] {
        var out: [YAMLProblem] = []
        func require(_ ok: Bool, _ path: String, _ message: String) { if !ok { out.append(problem(path, message)) } }
        let fm = FileManager.default
        let c = config

        switch (c.model.path, c.model.initialize) {
        case (nil, nil): out.append(problem("model", "needs either 'path' (a Hugging Face model folder or a .gguf file) or 'init' (a config.json and a seed)"))
        case (.some, .some): out.append(problem("model", "give 'path' or 'init', not both"))
        case (.some(let p), nil) where p.lowercased().hasSuffix(".gguf"):
            require(fm.fileExists(atPath: p), "model.path", "no such file '\(p)'")
        case (.some(let p), nil):
            require(fm.fileExists(atPath: (p as NSString).appendingPathComponent("config.json")), "model.path", "no config.json in '\(p)'")
        case (nil, .some(let i)):
            require(fm.fileExists(atPath: i.config), "model.init.config", "no such file '\(i.config)'")
            if c.model.initialize?.tokenizer == nil {
                out.append(problem("model.init", "a freshly initialised model needs 'tokenizer' (a folder with tokenizer.json)"))
            }
        }
        require(fm.fileExists(atPath: c.data.train.path), "data.train.path", "no such file '\(c.data.train.path)'")
        if let e = c.data.eval {
            switch (e.split, e.path) {
            case (nil, nil): out.append(problem("data.eval", "needs 'split' (a fraction of the training data) or 'path'"))
            case (.some, .some): out.append(problem("data.eval", "give 'split' or 'path', not both"))
            case (.some(let s), nil): require(s > 0 && s < 1, "data.eval.split", "must be between 0 and 1 (exclusive), got \(s)")
            case (nil, .some(let p)): require(fm.fileExists(atPath: p), "data.eval.path", "no such file '\(p)'")
            }
        }
        require(c.data.maxSeqLen >= 2, "data.max_seq_len", "must be at least 2, got \(c.data.maxSeqLen)")

        let t = c.training
        require(t.epochs >= 1, "training.epochs", "must be at least 1, got \(t.epochs)")
        require(t.maxSteps.map { $0 >= 1 } ?? true, "training.max_steps", "must be at least 1")
        require(t.microBatchSize >= 1, "training.micro_batch_size", "must be at least 1, got \(t.microBatchSize)")
        require(t.gradientAccumulationSteps >= 1, "training.gradient_accumulation_steps", "must be at least 1, got \(t.gradientAccumulationSteps)")
        require(t.learningRate > 0, "training.learning_rate", "must be positive, got \(t.learningRate)")
        require((t.maxGradNorm ?? 0) >= 0, "training.max_grad_norm", "must be non-negative")
        require(t.evalSteps.map { $0 >= 1 } ?? true, "training.eval_steps", "must be at least 1")
        if t.earlyStopping != nil && c.data.eval == nil {
            out.append(problem("training.early_stopping", "needs an eval set (data.eval)"))
        }
        require(c.optimizer.betas.count == 2 && c.optimizer.betas.allSatisfy { $0 >= 0 && $0 < 1 }, "optimizer.betas",
                "must be two numbers in [0, 1), got \(c.optimizer.betas)")
        require(c.optimizer.eps > 0, "optimizer.eps", "must be positive")
        require(c.optimizer.weightDecay >= 0, "optimizer.weight_decay", "must be non-negative")
        require(c.scheduler.warmupSteps >= 0, "scheduler.warmup_steps", "must be non-negative")
        require(c.scheduler.warmupRatio >= 0 && c.scheduler.warmupRatio < 1, "scheduler.warmup_ratio", "must be in [0, 1)")

        let e = c.engine
        require((0...3).contains(e.zeroStage), "engine.zero_stage", "must be 0, 1, 2 or 3, got \(e.zeroStage)")
        require(e.pipeline.stages >= 1, "engine.pipeline.stages", "must be at least 1")
        if e.pipeline.stages > 1 && e.zeroStage > 1 {
            out.append(problem("engine.pipeline.stages", "pipeline parallelism composes only with ZeRO stage 0 or 1 (as in DeepSpeed), zero_stage is \(e.zeroStage)"))
        }
        if e.offloadOptimizer.device == .nvme && e.offloadOptimizer.path == nil {
            out.append(problem("engine.offload_optimizer", "device nvme needs a 'path'"))
        }
        if e.offloadParam.device != .none && e.zeroStage != 3 {
            out.append(problem("engine.offload_param", "parameter offload needs zero_stage 3 (as in DeepSpeed)"))
        }
        if let l = c.lora {
            require(l.r >= 1, "lora.r", "must be at least 1, got \(l.r)")
            require(l.dropout >= 0 && l.dropout < 1, "lora.dropout", "must be in [0, 1)")
            require(!l.targetModules.isEmpty, "lora.target_modules", "must name at least one module")
        }
        require(!c.output.dir.isEmpty, "output.dir", "must not be empty")
        require(c.output.saveSteps.map { $0 >= 1 } ?? true, "output.save_steps", "must be at least 1")
        require(c.output.keepLast.map { $0 >= 1 } ?? true, "output.keep_last", "must be at least 1")
        require(c.logging.steps >= 1, "logging.steps", "must be at least 1")
        if let r = c.resume, r != "auto" {
            require(fm.fileExists(atPath: r), "resume", "must be 'auto' or an existing checkpoint folder, got '\(r)'")
        }
        if let d = c.deepspeed { require(fm.fileExists(atPath: d), "deepspeed", "no such file '\(d)'") }
        return out
    }
}
