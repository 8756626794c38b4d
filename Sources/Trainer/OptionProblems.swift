import Engine
import SafeTensors

// What each section of a `TrainingConfiguration` refuses on its own, with keys relative to the section.
// `TrainingConfiguration.problems` prefixes the section names and adds the rules that span sections and
// the file system. A setting this build cannot honour yet is refused by the type that owns its key, in
// one line, so the line goes when the feature lands.

extension ModelSource {
    public func problems() -> [ConfigurationProblem] {
        var p = ProblemList()
        switch (path, initialize) {
        case (nil, nil): p.add("", "needs either 'path' (a Hugging Face model folder) or 'init' (a config.json and a seed)")
        case (.some, .some): p.add("", "give 'path' or 'init', not both")
        case (nil, .some(let i)):
            p.require(i.tokenizer != nil, "init", "a freshly initialised model needs 'tokenizer' (a folder with tokenizer.json)")
        case (.some, nil): break
        }
        return p.problems
    }
}

extension DataOptions {
    public func problems() -> [ConfigurationProblem] {
        var p = ProblemList()
        if let e = eval {
            switch (e.split, e.path) {
            case (nil, nil): p.add("eval", "needs 'split' (a fraction of the training data) or 'path'")
            case (.some, .some): p.add("eval", "give 'split' or 'path', not both")
            case (.some(let s), nil): p.require(s > 0 && s < 1, "eval.split", "must be between 0 and 1 (exclusive), got \(s)")
            case (nil, .some): break
            }
        }
        p.count(maxSeqLen, atLeast: 2, atMost: ProblemList.Limit.sequenceTokens, "max_seq_len")
        return p.problems
    }
}

extension LoopOptions {
    public func problems() -> [ConfigurationProblem] {
        var p = ProblemList()
        p.count(epochs, atLeast: 1, "epochs")
        p.count(maxSteps, atLeast: 1, "max_steps")
        p.count(microBatchSize, atLeast: 1, atMost: ProblemList.Limit.microBatchSize, "micro_batch_size")
        p.count(gradientAccumulationSteps, atLeast: 1, "gradient_accumulation_steps")
        p.count(trainBatchSize, atLeast: 1, "train_batch_size")
        p.number(learningRate, .positive, "learning_rate")
        p.number(maxGradNorm, .nonNegative, "max_grad_norm")
        p.count(evalSteps, atLeast: 1, "eval_steps")
        if let e = earlyStopping {
            // Patience 0 would stop at the first evaluation whatever it shows.
            p.count(e.patience, atLeast: 1, "early_stopping.patience")
            p.number(e.minDelta, .nonNegative, "early_stopping.min_delta")
        }
        return p.problems
    }
}

extension OptimizerOptions {
    public func problems() -> [ConfigurationProblem] {
        var p = ProblemList()
        p.require(betas.count == 2 && betas.allSatisfy { $0.isFinite && $0 >= 0 && $0 < 1 }, "betas",
                  "must be two numbers in [0, 1), got \(betas)")
        p.number(eps, .positive, "eps")
        p.number(weightDecay, .nonNegative, "weight_decay")
        p.number(momentum, .nonNegative, "momentum")
        // PyTorch's SGD raises "Nesterov momentum requires a momentum".
        p.require(!nesterov || momentum > 0, "nesterov", "needs a momentum above 0, got momentum \(momentum)")
        return p.problems
    }
}

extension SchedulerOptions {
    public func problems() -> [ConfigurationProblem] {
        var p = ProblemList()
        p.count(warmupSteps, atLeast: 0, "warmup_steps")
        p.number(warmupRatio, .fraction, "warmup_ratio")
        p.number(warmupMinLR, .nonNegative, "warmup_min_lr")
        p.number(warmupMinRatio, .unit, "warmup_min_ratio")
        p.number(cosMinRatio, .unit, "cos_min_ratio")
        p.count(totalNumSteps, atLeast: 1, "total_num_steps")
        return p.problems
    }
}

extension LoRAOptions {
    public func problems() -> [ConfigurationProblem] {
        var p = ProblemList()
        if initAdapter == nil {
            p.require(r != nil, "r", "is required for a fresh adapter (or name an existing PEFT adapter with init_adapter)")
        }
        p.count(r, atLeast: 1, "r")
        if let alpha { p.number(alpha, .positive, "alpha") }
        p.number(dropout, .fraction, "dropout")
        if let t = targetModules {
            p.require(!t.isEmpty, "target_modules", "must name at least one module, or be all-linear")
            p.require(!t.contains("all-linear") || t.count == 1, "target_modules", "all-linear stands alone, not in a list of names")
        }
        return p.problems
    }
}

extension OutputOptions {
    public func problems() -> [ConfigurationProblem] {
        var p = ProblemList()
        p.require(!dir.isEmpty, "dir", "must not be empty")
        p.count(saveSteps, atLeast: 1, "save_steps")
        p.count(keepLast, atLeast: 1, "keep_last")
        // Read only at the final export; a typo must not cost a whole run.
        do { _ = try ShardSize.parse(maxShardSize) } catch { p.add("max_shard_size", "\(error)") }
        return p.problems
    }
}

extension LoggingOptions {
    public func problems() -> [ConfigurationProblem] {
        var p = ProblemList()
        p.count(steps, atLeast: 1, "steps")
        p.require(!tensorboardJobName.isEmpty && !tensorboardJobName.contains("/"), "tensorboard_job_name",
                  "must be a folder name (not empty, no '/'), got '\(tensorboardJobName)'")
        if flopsProfiler.enabled {
            p.count(flopsProfiler.profileStep, atLeast: 1, "flops_profiler.profile_step")
            p.require(flopsProfiler.moduleDepth >= -1, "flops_profiler.module_depth", "must be -1 (every depth) or at least 0, got \(flopsProfiler.moduleDepth)")
            p.count(flopsProfiler.topModules, atLeast: 1, "flops_profiler.top_modules")
        }
        p.count(sampleMaxNewTokens, atLeast: 1, atMost: ProblemList.Limit.generatedTokens, "sample_max_new_tokens")
        return p.problems
    }
}
