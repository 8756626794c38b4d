import Distributed
import Engine
import Foundation
import Formats
import GGUF
import Kernels
import Models
import SafeTensors
import Tensors
import Tokenizers

public enum TrainerError: Error, CustomStringConvertible {
    case configuration(String)
    case noLabels(step: Int)
    /// A SIGINT or SIGTERM stopped the run after `step` (GracefulStop); `checkpoint` holds it.
    case interrupted(signal: Int32, step: Int, totalSteps: Int, checkpoint: String)

    public var description: String {
        switch self {
        case .configuration(let m): return m
        case .noLabels(let step): return "step \(step): no token of the step has a label (every target is -100); check the data format and max_seq_len"
        case .interrupted(let signal, let step, let total, let checkpoint):
            return "stopped by \(GracefulStop.name(signal)) after step \(step) of \(total); saved \(checkpoint); continue with resume=auto"
        }
    }
}

/// How a run ended.
public struct TrainingSummary: Sendable {
    public var steps: Int
    public var finalLoss: Double?
    public var finalEvalLoss: Double?
    public var stoppedEarly: Bool
    /// The exported Hugging Face folder of the final model.
    public var exportedModel: String
}

/// The training loop: batches from the data pipeline, the engine's micro-steps and optimizer steps, the
/// learning-rate schedule, evaluation, early stopping, logs, checkpoints and the final export. Built from
/// a `TrainingConfiguration` (a recipe or Swift code).
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let model: TransformerModel
    public let tokenizer: Tokenizer
    public let engine: TrainingEngine
    public let schedule: LRSchedule
    public let totalSteps: Int
    public private(set) var data: DataSplits
    public private(set) var loader: DataLoader
    public private(set) var globalStep = 0
    /// The job this process trains in (one rank when not launched by mpirun).
    public let communicator: Communicator
    /// Pipeline stages and the data-parallel group (the whole job without a pipeline).
    private let pipeline: PipelineTraining
    /// The ranks that hold different data: the job, or a pipeline stage's replicas.
    private var dataParallel: Communicator { pipeline.dataParallel }
    private var callbacks: [TrainerCallback] = []
    private let modelDirectory: String?
    private let tokenizerDirectory: String
    let log: (String) -> Void
    /// The step stopwatch behind `wall_clock_breakdown` and the FLOPs profiler (nil when neither is on).
    let stepTiming: StepTiming?
    /// Where the last optimizer step's time went (with `wall_clock_breakdown` or the profiler on).
    public private(set) var lastStepTimes: StepTimes?
    /// The FLOPs profile of `logging.flops_profiler.profile_step`, once taken.
    public internal(set) var lastProfile: FlopsProfile?
    /// sgemm's FLOP/s measured at start when the profiler is on (its MFU's denominator).
    let sgemmPeak: Double?

    public init(configuration given: TrainingConfiguration, communicator: Communicator = LocalCommunicator(),
                log: ((String) -> Void)? = nil) throws {
        // Every problem `swift-finetune validate` reports stops the run here, all of them in one error,
        // before anything is loaded; settings this build cannot honour are among them. A ds_config is
        // merged first (a recipe's is merged already).
        let c = try given.validated(worldSize: communicator.worldSize)
        var deferredFill: ((Range<Int>) throws -> Void)?
        configuration = c
        self.communicator = communicator
        // Only rank 0 talks; every rank reports its own errors through the launcher.
        let isMain = communicator.rank == 0
        self.log = log ?? { if isMain { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } }
        if let note = c.deepspeedImport?.note { self.log(note) }
        if let given = c.model.path {
            // A .gguf file is converted once into a cache folder and read from there (GGUFModelCache).
            let path = try GGUFModelCache.folder(for: given, log: self.log)
            if c.lora != nil {
                // The frozen base is read a layer group at a time into its own storage (the engine's).
                (model, deferredFill) = try TransformerModel.loadDeferred(directory: path)
            } else {
                model = try TransformerModel.load(directory: path)
            }
            modelDirectory = path
            tokenizerDirectory = path
        } else if let i = c.model.initialize, let t = i.tokenizer {
            let config = try ModelRegistry.config(path: i.config)
            try config.checkFitsInMemory(source: i.config)
            model = TransformerModel(config: config)
            let std = config.raw["initializer_range"]?.doubleValue ?? 0.02
            // Negative seeds are accepted, as for shuffling: the bits are the seed.
            model.initializeRandom(seed: UInt64(bitPattern: Int64(i.seed)), std: Float(std))
            modelDirectory = nil
            tokenizerDirectory = t
        } else {
            throw ConfigurationError(c.model.problems().under("model"))  // validate() above refused this already
        }
        if let lora = c.lora { model.adapter = try AdapterTraining.adapter(lora, model: model, seed: c.seed) }
        tokenizer = try Tokenizer.load(directory: tokenizerDirectory)
        try ChatPrompt.checkFits(tokenizer, vocabSize: model.config.vocabSize,
                                 tokenizerSource: (tokenizerDirectory as NSString).appendingPathComponent("tokenizer.json"))
        let template = try tokenizer.chatTemplateSource.map { try ChatTemplate(source: $0) }
        data = try DataPipeline.load(c.data, tokenizer: tokenizer, seed: c.seed, chatTemplate: template)
        let t = c.training
        pipeline = try PipelineTraining(options: c.engine, model: model, world: communicator)
        loader = try DataLoader(dataset: data.train, options: DataLoaderOptions(
            microBatchSize: t.microBatchSize, gradientAccumulationSteps: t.gradientAccumulationSteps,
            worldSize: pipeline.dataParallel.worldSize, rank: pipeline.dataParallel.rank,
            packing: c.data.packing, shuffle: c.data.shuffle, seed: c.seed))
        totalSteps = t.maxSteps ?? loader.totalSteps(epochs: t.epochs)
        guard totalSteps > 0 else { throw TrainerError.configuration("training: no optimizer step to take (empty data or max_steps 0)") }
        schedule = try Self.schedule(c.scheduler, baseLR: t.learningRate, totalSteps: totalSteps).validated()
        let o = c.optimizer
        let settings: OptimizerSettings = o.type == .adamw
            ? .adamw(beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weightDecay)
            : .sgd(momentum: o.momentum, dampening: 0, weightDecay: o.weightDecay, nesterov: o.nesterov)
        let timing = c.logging.wallClockBreakdown || c.logging.flopsProfiler.enabled ? StepTiming(communicator: TimedCommunicator(pipeline.dataParallel)) : nil
        stepTiming = timing
        let loaded: TransformerModel = model
        engine = try TrainingEngine(model: loaded, options: c.engine, optimizer: settings,
                                    frozenBaseDType: c.lora.map { AdapterTraining.baseDType($0, model: loaded) } ?? .f32,
                                    frozenBaseFill: deferredFill,
                                    maxTokens: t.microBatchSize * c.data.maxSeqLen,
                                    communicator: timing?.communicator ?? pipeline.dataParallel,
                                    pipeline: pipeline.placement)
        engine.dropoutSeed = UInt64(bitPattern: Int64(c.seed))
        engine.scheduleTimer = timing
        sgemmPeak = c.logging.flopsProfiler.enabled ? SgemmPeak.measure() : nil
        self.log(data.train.summary)
        // Pipeline stages hold different groups: the figure is the largest rank's, as estimate-memory's is.
        let ownState = Double(engine.modelStateBytes)
        let state = pipeline.placement == nil ? ownState : try communicator.allReduce(ownState, op: .max)
        self.log(String(format: "model state on each rank: %.1f MB (%@%@ parameters, ZeRO-%d, %d rank%@)",
                        state / 1e6, pipeline.placement == nil ? "" : String(format: "the largest stage; rank 0 %.1f MB; ", ownState / 1e6),
                        groupedDigits(model.parameterCount), c.engine.zeroStage,
                        communicator.worldSize, communicator.worldSize == 1 ? "" : "s"))
        if let note = pipeline.description { self.log(note) }
        if model.adapter != nil {
            // PEFT's print_trainable_parameters, plus where the frozen base lives.
            let trainable = engine.trainableLayout.totalCount
            self.log(String(format: "LoRA: trainable params: %@ || all params: %@ || trainable%%: %.4f; frozen base %.1f MB",
                            groupedDigits(trainable), groupedDigits(trainable + model.parameterCount),
                            100 * Double(trainable) / Double(trainable + model.parameterCount), Double(engine.frozenBaseBytes) / 1e6))
        }
        if let warning = try? ExampleTokenizer(tokenizer: tokenizer, chatTemplate: template).chatTemplateBOSWarning() { self.log(warning) }
    }

    public func addCallback(_ callback: TrainerCallback) { callbacks.append(callback) }

    /// Early stopping's memory, saved with checkpoints.
    private var stopper: EarlyStopping?

    /// What `engine_state.json` records: enough, with the optimizer-state files, to continue exactly.
    func checkpointState() -> JSONValue {
        // The engine records its own entries (steps taken, world size, stage, loss scaler); the file's
        // keys are written sorted, so its bytes do not depend on who adds which.
        var o = engine.checkpointState()
        o["global_step"] = .int(Int64(globalStep))
        o["total_steps"] = .int(Int64(totalSteps))
        o["data_position"] = .object(JSONObject([("epoch", .int(Int64(loader.position.epoch))), ("index", .int(Int64(loader.position.index)))]))
        o["seed"] = .int(Int64(configuration.seed))
        if let s = stopper {
            o["early_stopping"] = .object(JSONObject([("best", s.best.map { .double($0) } ?? .null), ("bad_evaluations", .int(Int64(s.badEvaluations)))]))
        }
        o["layout"] = .array(engine.trainableLayout.entries.map { e in
            .object(JSONObject([("name", .string(e.name)), ("shape", .array(e.shape.map { .int(Int64($0)) }))]))
        })
        return .object(o)
    }

    /// The checkpoint `resume` names: `auto` is the one `OUTPUT_DIR/latest` points to (nil when there is
    /// none yet: a fresh start), otherwise the folder given.
    func resumeDirectory() throws -> String? {
        guard let r = configuration.resume else { return nil }
        guard r == "auto" else { return r }
        return try OutputFolder.latestCheckpoint(in: configuration.output.dir)
    }

    /// Restores master weights, optimizer state, step counters, data position and early-stopping memory.
    public func resume(from directory: String) throws {
        let statePath = (directory as NSString).appendingPathComponent("engine_state.json")
        let state = try JSONValue.read(path: statePath)
        let names = state["layout"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        guard names == engine.trainableLayout.entries.map(\.name) else {
            let what = model.adapter == nil ? "the model's" : "this run's LoRA adapter's (lora: r, target_modules and modules_to_save must match the run that wrote it)"
            throw EngineCheckpointError.layoutMismatch(path: statePath, detail: "its parameter names differ from \(what)")
        }
        guard let step = state["global_step"]?.intValue, let epoch = state["data_position"]?["epoch"]?.intValue,
              let index = state["data_position"]?["index"]?.intValue else {
            throw EngineCheckpointError.missing(path: statePath, what: "global_step or data_position")
        }
        guard step >= 0, epoch >= 0, index >= 0 else {
            throw TrainerError.configuration("\(statePath): global_step and data_position must be non-negative, got global_step \(step), epoch \(epoch), index \(index)")
        }
        try engine.restore(from: directory, state: state, statePath: statePath)
        globalStep = step
        loader.restore(DataPosition(epoch: epoch, index: index))
        if let es = state["early_stopping"], let patience = configuration.training.earlyStopping {
            var s = EarlyStopping(patience: patience.patience, minDelta: patience.minDelta)
            s.restore(best: es["best"]?.doubleValue, badEvaluations: es["bad_evaluations"]?.intValue ?? 0)
            stopper = s
        }
    }

    /// transformers' schedule names and DeepSpeed's, with warmup from steps or a ratio of the total.
    static func schedule(_ s: SchedulerOptions, baseLR: Double, totalSteps: Int) -> LRSchedule {
        let warmup = s.warmupSteps > 0 ? s.warmupSteps : Int((Double(totalSteps) * s.warmupRatio).rounded(.up))
        let dsWarmupType: DeepSpeedWarmupType = s.warmupType == .log ? .log : .linear
        switch s.type {
        case .constant: return .constant(baseLR: baseLR, ConstantScheduleConfig(numWarmupSteps: warmup))
        case .linear: return .linear(baseLR: baseLR, LinearScheduleConfig(numWarmupSteps: warmup, numTrainingSteps: totalSteps))
        case .cosine: return .cosine(baseLR: baseLR, CosineScheduleConfig(numWarmupSteps: warmup, numTrainingSteps: totalSteps))
        case .warmup_lr:
            return .deepSpeedWarmup(baseLR: baseLR, DeepSpeedWarmupConfig(warmupMinLR: s.warmupMinLR, warmupMaxLR: baseLR,
                                                                          warmupNumSteps: max(warmup, 1), warmupType: dsWarmupType))
        case .warmup_decay_lr:
            return .deepSpeedWarmup(baseLR: baseLR, DeepSpeedWarmupConfig(warmupMinLR: s.warmupMinLR, warmupMaxLR: baseLR,
                                                                          warmupNumSteps: max(warmup, 1), warmupType: dsWarmupType,
                                                                          totalNumSteps: s.totalNumSteps ?? totalSteps))
        case .warmup_cosine_lr:
            return .deepSpeedWarmupCosine(baseLR: baseLR, DeepSpeedWarmupCosineConfig(
                totalNumSteps: s.totalNumSteps ?? totalSteps, warmupMinRatio: s.warmupMinRatio, warmupNumSteps: max(warmup, 1),
                cosMinRatio: s.cosMinRatio, warmupType: dsWarmupType))
        }
    }

    /// One optimizer step over the micro-batches of `step`: zero, accumulate, clip, update. Returns the
    /// step's mean token loss and what the optimizer did.
    public func optimizerStep(microBatches: [TokenBatch], labelCount: Int) throws -> (loss: Double, lr: Double, result: OptimizerStepResult) {
        guard labelCount > 0 else { throw TrainerError.noLabels(step: globalStep + 1) }
        stepTiming?.startStep()
        engine.zeroGradients()
        var lossSum = 0.0
        if pipeline.placement != nil {
            lossSum = try PipelineTraining.microSteps(engine: engine, model: model, microBatches: microBatches, normalizer: Float(labelCount))
        }
        // Every micro-batch goes to the engine, empty ones too: under ZeRO-2/3 each one is a round of
        // collectives every rank must join.
        for mb in microBatches where pipeline.placement == nil {
            let spans = mb.segments.map { AttentionSpan(qStart: $0.start, qLen: $0.length) }
            lossSum += try engine.microStep(tokens: mb.tokens, positions: mb.positions, spans: spans, targets: mb.targets,
                                            normalizer: Float(labelCount)).lossSum
        }
        // The step's loss over every rank's tokens (the normalizer already is global); every stage of a
        // pipeline already has its replica's.
        let loss = try dataParallel.allReduce(lossSum, op: .sum) / Double(labelCount)
        // Under a loss scaler a non-finite step is an overflow the engine skips, as DeepSpeed does.
        guard loss.isFinite || engine.lossScaler != nil else { throw EngineError.nonFiniteLoss(step: globalStep + 1, loss: loss) }
        // A skipped step does not advance the scheduler: the LR follows the optimizer steps taken.
        let lr = schedule.lr(step: engine.stepsTaken)
        let result: OptimizerStepResult
        stepTiming?.startOptimizer()
        do {
            result = try engine.step(lr: lr, maxGradNorm: configuration.training.maxGradNorm)
        } catch EngineError.stepFailed(_, let underlying) {
            // The other ranks may be waiting inside the step's collectives: no rank may return from
            // here, so the whole job stops with the cause (the launcher names the rank).
            communicator.abort(message: "optimizer step: \(underlying)", code: 1)
        } catch {
            communicator.abort(message: "optimizer step: \(error)", code: 1)
        }
        lastStepTimes = stepTiming?.finishStep()
        globalStep += 1
        return (loss, lr, result)
    }

    /// This rank's eval batches, packed once.
    private lazy var evalBatches: (batches: [TokenBatch], labelCount: Int)? = data.eval.map {
        DataLoader.evalBatches(dataset: $0, microBatchSize: configuration.training.microBatchSize, packing: configuration.data.packing,
                               worldSize: communicator.worldSize, rank: communicator.rank)
    }

    /// Mean token loss over the eval set, or nil without one.
    public func evaluate() throws -> EvalMetrics? {
        guard let (batches, labels) = evalBatches else { return nil }
        guard labels > 0 else { return nil }
        // Every rank evaluates its own batches with the whole model: a pipeline stage gathers it first.
        if pipeline.placement != nil { try engine.gatherFullParameters() }
        var sum = 0.0
        for b in batches {
            sum += try engine.evaluate(tokens: b.tokens, positions: b.positions,
                                   spans: b.segments.map { AttentionSpan(qStart: $0.start, qLen: $0.length) }, targets: b.targets).lossSum
        }
        return EvalMetrics(step: globalStep, evalLoss: try communicator.allReduce(sum, op: .sum) / Double(labels), evalTokens: labels)
    }

    public func train() throws -> TrainingSummary {
        let c = configuration
        let out = c.output.dir
        let isMain = communicator.rank == 0
        let resumedFrom = try resumeDirectory()
        if isMain {
            // Only names of ours are removed (OutputFolder): dead runs' staging folders, and with
            // output.overwrite the earlier run a fresh start replaces.
            let stale = OutputFolder.removeStaleStaging(in: out)
            if !stale.isEmpty { log("removed unfinished staging folders of an earlier run: \(stale.joined(separator: ", "))") }
            if resumedFrom == nil, c.output.overwrite { try OutputFolder.clearEarlierRun(in: out) }
        }
        try communicator.barrier()
        // Rank 0 writes the logs and draws progress; the others keep silent.
        let metrics = try MetricsLog(directory: out, jsonl: isMain && c.logging.jsonl, csv: isMain && c.logging.csv,
                                     tensorboardDirectory: isMain && c.logging.tensorboard ? c.logging.tensorboardDirectory(outputDir: out) : nil)
        let progress = ProgressDisplay(style: isMain ? ProgressDisplay.style(for: c.logging.progress) : .none, totalSteps: totalSteps)
        if stopper == nil { stopper = c.training.earlyStopping.map { EarlyStopping(patience: $0.patience, minDelta: $0.minDelta) } }
        if let dir = resumedFrom {
            try resume(from: dir)
            progress.note("resumed from \(dir) at step \(globalStep)")
        }
        let start = Date()
        let stepsPerEpoch = loader.stepCount(epoch: 0)
        var breakdown = c.logging.wallClockBreakdown ? WallClockBreakdown(every: c.logging.steps) : nil
        var lastLoss: Double?, lastEval: Double?, stoppedEarly = false
        if resumedFrom == nil {
            if let e = try evaluate() {
                metrics.log(e)
                progress.note(String(format: "eval before training: loss %.4f, perplexity %.2f", e.evalLoss, e.perplexity))
            }
            for (prompt, answer) in try samples() { progress.note("sample before training: \(prompt) -> \(answer)") }
        }
        while globalStep < totalSteps {
            let stepStart = Date()
            let dataStep = loader.nextStep()
            let lossScale = engine.lossScaler?.scale
            let (loss, lr, result) = try optimizerStep(microBatches: dataStep.microBatches, labelCount: dataStep.labelCount)
            let tokens = Int(try dataParallel.allReduce(Double(dataStep.microBatches.reduce(0) { $0 + $1.tokens.count }), op: .sum))
            let elapsed = Date().timeIntervalSince(start)
            var m = StepMetrics(step: globalStep, epoch: Double(globalStep) / Double(max(stepsPerEpoch, 1)),
                                loss: loss, learningRate: lr, gradNorm: result.gradNorm, tokens: tokens,
                                tokensPerSecond: Double(tokens) / max(Date().timeIntervalSince(stepStart), 1e-9),
                                lossScale: lossScale, skipped: result.skipped, elapsedSeconds: elapsed)
            lastLoss = loss
            try monitor(&m, microBatches: dataStep.microBatches, breakdown: &breakdown, progress: progress)
            metrics.log(m)
            progress.update(m, logEvery: c.logging.steps)
            callbacks.forEach { $0.trainer(didStep: m) }
            // Stopping is decided together: any rank's callback stops every rank.
            var stop = try communicator.any(callbacks.contains { $0.shouldStop(after: m) })
            if let every = c.training.evalSteps, globalStep % every == 0 || globalStep == totalSteps, let e = try evaluate() {
                lastEval = e.evalLoss
                metrics.log(e)
                progress.note(String(format: "step %d: eval loss %.4f, perplexity %.2f", globalStep, e.evalLoss, e.perplexity))
                callbacks.forEach { $0.trainer(didEvaluate: e) }
                if stopper?.record(evalLoss: e.evalLoss) == true {
                    progress.note("early stopping: eval loss has not improved for \(stopper!.patience) evaluations")
                    stop = true
                    stoppedEarly = true
                }
            }
            var saved: String?
            if let every = c.output.saveSteps, globalStep % every == 0, globalStep < totalSteps {
                let path = try saveCheckpoint()
                saved = path
                progress.note("saved \(path)")
                callbacks.forEach { $0.trainer(didSave: path, step: globalStep) }
            }
            // A stop signal on any rank stops every rank after this step, with a checkpoint to resume from.
            let signal = Int32(try communicator.allReduce(Double(GracefulStop.requested), op: .max))
            if signal != 0, globalStep < totalSteps {
                let path = try saved ?? saveCheckpoint()
                progress.finish()
                throw TrainerError.interrupted(signal: signal, step: globalStep, totalSteps: totalSteps, checkpoint: path)
            }
            if stop { break }
        }
        progress.finish()
        if lastEval == nil || c.training.evalSteps == nil, let e = try evaluate() {
            lastEval = e.evalLoss
            metrics.log(e)
            progress.note(String(format: "final eval loss %.4f, perplexity %.2f", e.evalLoss, e.perplexity))
        }
        let final = (out as NSString).appendingPathComponent("final")
        try engine.gatherFullParameters()  // ZeRO-3 keeps only shards; the export needs every weight
        if isMain {
            if let adapter = model.adapter {
                try AdapterTraining.write(adapter, baseModel: baseModelName, companionsFrom: tokenizerDirectory, to: final)
            } else {
                try HuggingFaceExport.write(model: model, dtype: exportDType, maxShardSize: try ShardSize.parse(c.output.maxShardSize),
                                            companionsFrom: modelDirectory ?? tokenizerDirectory, to: final)
            }
        }
        try communicator.barrier()
        progress.note(model.adapter == nil ? "exported the fine-tuned model to \(final)"
                      : "saved the LoRA adapter to \(final) (PEFT format; `swift-finetune export \(final) MERGED_DIR` merges it into the base)")
        // The run's curves, recipe and profile in one page; a finished run is not failed for it.
        if isMain && c.logging.jsonl {
            do { progress.note("report: \(try TrainingReport.write(outputDir: out))") } catch { self.log("report.html not written: \(error)") }
        }
        for (prompt, answer) in try samples() { progress.note("sample after training: \(prompt) -> \(answer)") }
        return TrainingSummary(steps: globalStep, finalLoss: lastLoss, finalEvalLoss: lastEval, stoppedEarly: stoppedEarly,
                               exportedModel: final)
    }

    /// Greedy answers to `logging.sample_prompts`, through the chat template when the tokenizer has one.
    public func samples() throws -> [(prompt: String, answer: String)] {
        let l = configuration.logging
        guard !l.samplePrompts.isEmpty else { return [] }
        // ZeRO-3 and mixed precision keep no full f32 weights between uses: gather the master weights
        // (collective; every rank calls this).
        try engine.gatherFullParameters()
        let stop = ChatPrompt.stopIds(config: model.config, tokenizer: tokenizer, directory: modelDirectory)
        return try l.samplePrompts.map { prompt in
            let ids = try ChatPrompt.ids(prompt, chat: tokenizer.chatTemplateSource != nil, tokenizer: tokenizer, source: tokenizerDirectory)
            let room = max(1, min(l.sampleMaxNewTokens, model.config.maxPositions - ids.count))
            let out = model.generate(prompt: ids.map(Int32.init), maxNewTokens: room, stopTokens: stop)
            let answer = try tokenizer.decode(out.map(Int.init), skipSpecialTokens: true)
            return (prompt, "\"" + answer.replacingOccurrences(of: "\n", with: "\\n") + "\"")
        }
    }

    /// adapter_config.json's base_model_name_or_path: the model folder as the recipe names it (a .gguf
    /// file's converted folder, which transformers can load).
    var baseModelName: String {
        guard let given = configuration.model.path, !given.lowercased().hasSuffix(".gguf") else { return modelDirectory ?? "" }
        return given
    }

    var exportDType: DType {
        switch configuration.output.dtype {
        case .f32: return .f32
        case .bf16: return .bf16
        case .f16: return .f16
        case nil: return model.config.exportDType
        }
    }

    /// `OUTPUT_DIR/global_stepN/` as a Hugging Face model folder plus `engine_state.json` and the rank's
    /// `zero_rank{R}_optim_states.safetensors` (fp32 master weights and optimizer state by name), built
    /// under a temporary name and renamed; `latest` names it and is written last; older checkpoints beyond
    /// `keep_last` are removed.
    @discardableResult
    public func saveCheckpoint() throws -> String {
        let out = configuration.output.dir
        let name = "global_step\(globalStep)"
        let path = (out as NSString).appendingPathComponent(name)
        // Every rank arrives here together. The model folder needs every weight: ZeRO-3 and mixed
        // precision keep none in full between uses, so they are gathered (collective) first.
        try engine.gatherFullParameters()
        defer { try? communicator.barrier() }
        guard communicator.rank == 0 else {
            // Rank 0 names the staging folder; each rank writes its own optimizer shard into it.
            let staging = try receiveStagingPath()
            try engine.saveState(to: staging)
            try communicator.barrier()
            return path
        }
        let engineState = { (staging: String) throws in
            try self.sendStagingPath(staging)
            try self.engine.saveState(to: staging)
            try self.checkpointState().write(to: (staging as NSString).appendingPathComponent("engine_state.json"))
            // The folder is renamed into place only once every rank's shard is in it.
            try self.communicator.barrier()
        }
        if let adapter = model.adapter {
            try AdapterTraining.write(adapter, baseModel: baseModelName, companionsFrom: tokenizerDirectory, to: path, alsoWrite: engineState)
        } else {
            try HuggingFaceExport.write(model: model, dtype: exportDType, maxShardSize: try ShardSize.parse(configuration.output.maxShardSize),
                                        companionsFrom: modelDirectory ?? tokenizerDirectory, to: path, alsoWrite: engineState)
        }
        try AtomicFile.write(Data((name + "\n").utf8), to: (out as NSString).appendingPathComponent("latest"))
        if let keep = configuration.output.keepLast {
            for old in OutputFolder.checkpointsBeyond(keep: keep, current: globalStep, in: out) {
                try? FileManager.default.removeItem(atPath: (out as NSString).appendingPathComponent(old))
            }
        }
        return path
    }

    private static let stagingPathBytes = 4096

    private func sendStagingPath(_ staging: String) throws {
        var bytes = Array(staging.utf8)
        guard bytes.count < Self.stagingPathBytes else { throw TrainerError.configuration("output.dir: the checkpoint path \(staging) is longer than \(Self.stagingPathBytes - 1) bytes") }
        bytes += [UInt8](repeating: 0, count: Self.stagingPathBytes - bytes.count)
        try bytes.withUnsafeMutableBytes { try communicator.broadcast($0.baseAddress!, bytes: Self.stagingPathBytes, root: 0) }
    }

    private func receiveStagingPath() throws -> String {
        var bytes = [UInt8](repeating: 0, count: Self.stagingPathBytes)
        try bytes.withUnsafeMutableBytes { try communicator.broadcast($0.baseAddress!, bytes: Self.stagingPathBytes, root: 0) }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}
