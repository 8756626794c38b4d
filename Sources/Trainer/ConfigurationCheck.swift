import Engine
import Foundation
import Models
import SafeTensors

extension TrainingConfiguration {
    /// Everything the Trainer would refuse before its first step that the configuration and the file
    /// system can tell, all at once: each section's own problems, the rules that span sections, and the
    /// files and folders it names. `swift-finetune validate` prints these (at their lines), and
    /// `Trainer.init` throws them, so the two can never disagree. What only reading the data or the
    /// weights can tell (a malformed JSONL line, a tokenizer larger than the vocabulary) is still found
    /// when the Trainer loads them. `worldSize` is the number of data-parallel ranks the run will have.
    public func problems(worldSize: Int = 1) -> [ConfigurationProblem] {
        // A ds_config not merged yet (a configuration built in Swift): its problems, then the merged run's.
        if deepspeed != nil {
            let (merged, dsProblems) = mergingDeepSpeed(worldSize: worldSize)
            return dsProblems + merged.problems(worldSize: worldSize)
        }
        var p = ProblemList()
        p.add(model.problems(), under: "model")
        p.add(data.problems(), under: "data")
        p.add(training.problems(), under: "training")
        p.add(optimizer.problems(), under: "optimizer")
        p.add(scheduler.problems(), under: "scheduler")
        p.add(engine.problems(), under: "engine")
        if let lora { p.add(lora.problems(), under: "lora") }
        p.add(output.problems(), under: "output")
        p.add(logging.problems(), under: "logging")

        let t = training
        // A pipeline's P stages of one replica read the same data: the batch counts the D = world / P replicas.
        let stages = engine.pipeline.stages
        var replicas = worldSize
        // One problem for the key at most: these only when the engine section has none for it.
        let pipelined = stages > 1 && !engine.problems().contains(where: { $0.keyPath == "pipeline.stages" })
        if pipelined {
            if worldSize % stages != 0 {
                p.add("engine.pipeline.stages", "\(stages) stages need a world of a multiple of \(stages) ranks (stages × data-parallel replicas; run under mpirun), the run has \(worldSize)")
            } else if lora != nil {
                p.add("engine.pipeline.stages", "pipeline parallelism with a LoRA adapter is not supported in this build")
            }
            replicas = Swift.max(1, worldSize / stages)
        }
        let tokens = t.microBatchSize.multipliedReportingOverflow(by: data.maxSeqLen)
        // Each count within its own bound can still multiply into too much (each out of bound is reported alone).
        if (1...ProblemList.Limit.microBatchSize).contains(t.microBatchSize), (2...ProblemList.Limit.sequenceTokens).contains(data.maxSeqLen),
           tokens.overflow || tokens.partialValue > ProblemList.Limit.microBatchTokens {
            p.add("training.micro_batch_size", "micro_batch_size \(t.microBatchSize) × data.max_seq_len \(data.maxSeqLen) tokens per micro-batch exceeds \(ProblemList.Limit.microBatchTokens)")
        }
        let perStep = t.microBatchSize.multipliedReportingOverflow(by: t.gradientAccumulationSteps).partialValue
            .multipliedReportingOverflow(by: replicas).partialValue
        if let tbs = t.trainBatchSize, tbs >= 1, t.microBatchSize >= 1, t.gradientAccumulationSteps >= 1, tbs != perStep {
            let ranks = pipelined ? "\(replicas) data-parallel replica(s) (\(worldSize) ranks / \(stages) stages)" : "\(worldSize) rank(s)"
            p.add("training.train_batch_size", "train_batch_size \(tbs) ≠ micro_batch_size \(t.microBatchSize) × gradient_accumulation_steps \(t.gradientAccumulationSteps) × \(ranks) = \(perStep)")
        }
        p.require(lora == nil || model.path != nil, "lora", "needs a pretrained base model (model.path): an adapter over randomly initialised weights could not be loaded again")
        if data.eval == nil {
            p.require(t.earlyStopping == nil, "training.early_stopping", "needs an eval set (data.eval)")
            p.require(t.evalSteps == nil, "training.eval_steps", "needs an eval set (data.eval)")
        } else {
            // The stopper only hears evaluations made during training.
            p.require(t.earlyStopping == nil || t.evalSteps != nil, "training.early_stopping", "needs training.eval_steps (evaluations to compare)")
        }
        return p.problems + fileProblems()
    }

    /// Throws every problem at once (`ConfigurationError`), as `Trainer.init` does.
    public func validate(worldSize: Int = 1) throws {
        try ConfigurationError.check(problems(worldSize: worldSize))
    }

    /// The configuration a run trains with: the ds_config merged in (when there is one), every problem
    /// thrown at once.
    public func validated(worldSize: Int = 1) throws -> TrainingConfiguration {
        let (merged, dsProblems) = mergingDeepSpeed(worldSize: worldSize)
        try ConfigurationError.check(dsProblems + merged.problems(worldSize: worldSize))
        return merged
    }

    /// The paths the run reads and writes: relative ones are relative to the working directory.
    func fileProblems() -> [ConfigurationProblem] {
        var p = ProblemList()
        func check(_ key: String, _ problem: String?) { if let problem { p.add(key, problem) } }
        if let path = model.path, model.initialize == nil, path.lowercased().hasSuffix(".gguf") {
            // A llama.cpp file: converted into a cache folder at start (its own errors name the tensor or key).
            check("model.path", PathCheck.file(path))
        } else if let path = model.path, model.initialize == nil {
            check("model.path", PathCheck.folder(path, holding: ["config.json"]) ?? PathCheck.modelConfig(path + "/config.json")
                ?? PathCheck.folder(path, holding: ["tokenizer.json"], purpose: "the tokenizer is read from the model folder")
                ?? PathCheck.folder(path, holdingOneOf: [CheckpointReader.singleFileName, CheckpointReader.indexFileName]))
        } else if let i = model.initialize, model.path == nil {
            check("model.init.config", PathCheck.file(i.config) ?? PathCheck.modelConfig(i.config))
            if let t = i.tokenizer { check("model.init.tokenizer", PathCheck.folder(t, holding: ["tokenizer.json"])) }
        }
        check("data.train.path", PathCheck.file(data.train.path))
        if let e = data.eval, e.split == nil, let path = e.path { check("data.eval.path", PathCheck.file(path)) }
        check("output.dir", PathCheck.writableFolder(output.dir)
            ?? OutputFolder.freshRunProblem(output.dir, resume: resume, overwrite: output.overwrite))
        if logging.tensorboard {
            check("logging.tensorboard_output_path", PathCheck.writableFolder(logging.tensorboardDirectory(outputDir: output.dir)))
        }
        for (key, offload) in [("engine.offload_optimizer.path", engine.offloadOptimizer), ("engine.offload_param.path", engine.offloadParam)]
            where offload.device == .nvme {
            if let path = offload.path { check(key, PathCheck.writableFolder(path)) }
        }
        if let dir = lora?.initAdapter {
            check("lora.init_adapter", PathCheck.folder(dir, holding: ["adapter_config.json", "adapter_model.safetensors"],
                                                        purpose: "a PEFT adapter folder"))
        }
        if let r = resume, r != "auto" {
            check("resume", PathCheck.folder(r, holding: ["engine_state.json"]).map { "must be 'auto' or a checkpoint folder: \($0)" })
        }
        return p.problems
    }
}

/// File-system rules, each returning what is wrong (nil when nothing is). Messages quote the path.
enum PathCheck {
    private static func kind(_ path: String) -> (exists: Bool, isFolder: Bool) {
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder)
        return (exists, isFolder.boolValue)
    }

    /// A file to read (not a folder).
    static func file(_ path: String) -> String? {
        let k = kind(path)
        if !k.exists { return "no such file '\(path)'" }
        if k.isFolder { return "'\(path)' is a folder, expected a file" }
        return FileManager.default.isReadableFile(atPath: path) ? nil : "'\(path)' is not readable"
    }

    /// A folder holding every one of `names` as files.
    static func folder(_ path: String, holding names: [String], purpose: String? = nil) -> String? {
        let k = kind(path)
        if k.exists && !k.isFolder { return "'\(path)' is a file, expected a folder" }
        if !k.exists { return "no such folder '\(path)'" + (purpose.map { " (\($0))" } ?? "") }
        for name in names {
            let f = kind((path as NSString).appendingPathComponent(name))
            if !f.exists || f.isFolder { return "no \(name) in '\(path)'" + (purpose.map { " (\($0))" } ?? "") }
        }
        return nil
    }

    /// A folder holding at least one of `names` (the weights: one file or an index of shards).
    static func folder(_ path: String, holdingOneOf names: [String]) -> String? {
        let found = names.contains { name in
            let f = kind((path as NSString).appendingPathComponent(name))
            return f.exists && !f.isFolder
        }
        return found ? nil : "no \(names.joined(separator: " or ")) in '\(path)'"
    }

    /// A config.json the model registry can build a model from (a supported model_type, sane sizes).
    static func modelConfig(_ path: String) -> String? {
        do { _ = try ModelRegistry.config(path: path); return nil } catch { return "\(error)" }
    }

    /// A folder the run may write into: an existing writable folder, or one that can be created (its
    /// nearest existing ancestor is a writable folder).
    static func writableFolder(_ path: String) -> String? {
        let k = kind(path)
        if k.exists {
            if !k.isFolder { return "'\(path)' is a file, expected a folder (or a path where one can be created)" }
            return FileManager.default.isWritableFile(atPath: path) ? nil : "the folder '\(path)' is not writable"
        }
        var ancestor = (path as NSString).deletingLastPathComponent
        while !ancestor.isEmpty && !kind(ancestor).exists { ancestor = (ancestor as NSString).deletingLastPathComponent }
        // A relative path with no existing part is created in the working directory.
        let parent = ancestor.isEmpty ? FileManager.default.currentDirectoryPath : ancestor
        let p = kind(parent)
        if !p.isFolder { return "cannot create '\(path)': '\(parent)' is a file" }
        return FileManager.default.isWritableFile(atPath: parent) ? nil : "cannot create '\(path)': '\(parent)' is not writable"
    }
}
