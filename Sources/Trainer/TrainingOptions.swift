import Engine
import Formats
import Foundation
import Models

/// The sections of a recipe the Trainer reads, as plain `Decodable` values: the YAML recipe and the
/// Swift API build the same structs. Absent keys take the defaults written here (transformers' and
/// DeepSpeed's where they have one), each once: on the property, or on the initialiser's parameter when
/// the initialiser takes it; `init(from:)` starts from those and decodes over them.
public struct ModelSource: Decodable, Sendable, Equatable {
    /// A Hugging Face model folder.
    public var path: String?
    /// Or a fresh model: a config.json and an initialisation seed.
    public var initialize: Initialize?
    public struct Initialize: Decodable, Sendable, Equatable {
        public var config: String
        public var seed: Int
        public var tokenizer: String?
        enum CodingKeys: String, CodingKey, CaseIterable { case config, seed, tokenizer }
        public init(config: String, seed: Int = 0, tokenizer: String? = nil) {
            self.config = config
            self.seed = seed
            self.tokenizer = tokenizer
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(config: try c.decode(String.self, forKey: .config))
            try c.decodeIfPresent(&seed, forKey: .seed)
            tokenizer = try c.decodeIfPresent(String.self, forKey: .tokenizer)
        }
    }
    enum CodingKeys: String, CodingKey, CaseIterable { case path, initialize = "init" }
    public init(path: String? = nil, initialize: Initialize? = nil) {
        self.path = path
        self.initialize = initialize
    }
}

public struct DataOptions: Decodable, Sendable, Equatable {
    public enum Format: String, Decodable, CaseIterable, Sendable { case text, prompt_completion, alpaca, chat, sharegpt }

    public struct Source: Decodable, Sendable, Equatable {
        public var path: String
        public var format: Format
        /// For archives: the member to read (default: every .jsonl member in order).
        public var member: String?
        enum CodingKeys: String, CodingKey, CaseIterable { case path, format, member }
        public init(path: String, format: Format = .text, member: String? = nil) {
            self.path = path
            self.format = format
            self.member = member
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(path: try c.decode(String.self, forKey: .path))
            try c.decodeIfPresent(&format, forKey: .format)
            member = try c.decodeIfPresent(String.self, forKey: .member)
        }
    }

    /// Either a held-out fraction of the training data or a file of its own.
    public struct Eval: Decodable, Sendable, Equatable {
        public var split: Double?
        public var path: String?
        public var format: Format?
        enum CodingKeys: String, CodingKey, CaseIterable { case split, path, format }
        public init(split: Double? = nil, path: String? = nil, format: Format? = nil) {
            self.split = split
            self.path = path
            self.format = format
        }
    }

    public var train: Source
    public var eval: Eval?
    public var maxSeqLen: Int
    public var packing: Bool
    public var shuffle: Bool
    /// Loss on the prompt tokens too (prompt_completion, alpaca, chat); off as in TRL's completion-only training.
    public var trainOnPrompt: Bool = false

    enum CodingKeys: String, CodingKey, CaseIterable { case train, eval, max_seq_len, packing, shuffle, train_on_prompt }

    public init(train: Source, eval: Eval? = nil, maxSeqLen: Int = 1024, packing: Bool = false, shuffle: Bool = true) {
        self.train = train
        self.eval = eval
        self.maxSeqLen = maxSeqLen
        self.packing = packing
        self.shuffle = shuffle
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(train: try c.decode(Source.self, forKey: .train), eval: try c.decodeIfPresent(Eval.self, forKey: .eval))
        try c.decodeIfPresent(&maxSeqLen, forKey: .max_seq_len)
        try c.decodeIfPresent(&packing, forKey: .packing)
        try c.decodeIfPresent(&shuffle, forKey: .shuffle)
        try c.decodeIfPresent(&trainOnPrompt, forKey: .train_on_prompt)
    }
}

public struct LoopOptions: Decodable, Sendable, Equatable {
    public struct EarlyStopping: Decodable, Sendable, Equatable {
        public var patience: Int
        public var minDelta: Double
        enum CodingKeys: String, CodingKey, CaseIterable { case patience, min_delta }
        public init(patience: Int, minDelta: Double = 0) {
            self.patience = patience
            self.minDelta = minDelta
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(patience: try c.decode(Int.self, forKey: .patience))
            try c.decodeIfPresent(&minDelta, forKey: .min_delta)
        }
    }

    public var epochs: Int = 1
    /// Stops after this many optimizer steps (overrides epochs when set).
    public var maxSteps: Int?
    public var microBatchSize: Int = 1
    public var gradientAccumulationSteps: Int = 1
    /// DeepSpeed's train_batch_size = micro × accumulation × data-parallel ranks; any two give the third.
    public var trainBatchSize: Int?
    public var learningRate: Double = 2e-5
    /// Global-norm clipping; 0 or null disables it.
    public var maxGradNorm: Double? = 1.0
    public var evalSteps: Int?
    public var earlyStopping: EarlyStopping?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case epochs, max_steps, micro_batch_size, gradient_accumulation_steps, train_batch_size, learning_rate,
             max_grad_norm, eval_steps, early_stopping
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try c.decodeIfPresent(&epochs, forKey: .epochs)
        maxSteps = try c.decodeIfPresent(Int.self, forKey: .max_steps)
        try c.decodeIfPresent(&microBatchSize, forKey: .micro_batch_size)
        try c.decodeIfPresent(&gradientAccumulationSteps, forKey: .gradient_accumulation_steps)
        trainBatchSize = try c.decodeIfPresent(Int.self, forKey: .train_batch_size)
        try c.decodeIfPresent(&learningRate, forKey: .learning_rate)
        // An explicit null disables clipping; an absent key keeps the default.
        if c.contains(.max_grad_norm) { maxGradNorm = try c.decodeIfPresent(Double.self, forKey: .max_grad_norm) }
        evalSteps = try c.decodeIfPresent(Int.self, forKey: .eval_steps)
        earlyStopping = try c.decodeIfPresent(EarlyStopping.self, forKey: .early_stopping)
    }
}

public struct OptimizerOptions: Decodable, Sendable, Equatable {
    public enum Kind: String, Decodable, CaseIterable, Sendable { case adamw, sgd }
    public var type: Kind = .adamw
    public var betas: [Double] = [0.9, 0.999]
    public var eps: Double = 1e-8
    public var weightDecay: Double = 0
    public var momentum: Double = 0
    public var nesterov: Bool = false

    enum CodingKeys: String, CodingKey, CaseIterable { case type, betas, eps, weight_decay, momentum, nesterov }
    public init() {}
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try c.decodeIfPresent(&type, forKey: .type)
        try c.decodeIfPresent(&betas, forKey: .betas)
        try c.decodeIfPresent(&eps, forKey: .eps)
        try c.decodeIfPresent(&weightDecay, forKey: .weight_decay)
        try c.decodeIfPresent(&momentum, forKey: .momentum)
        try c.decodeIfPresent(&nesterov, forKey: .nesterov)
    }
}

public struct SchedulerOptions: Decodable, Sendable, Equatable {
    public enum Kind: String, Decodable, CaseIterable, Sendable {
        case constant, linear, cosine, warmup_lr, warmup_decay_lr, warmup_cosine_lr
    }
    public enum WarmupType: String, Decodable, CaseIterable, Sendable { case linear, log }
    public var type: Kind = .constant
    public var warmupSteps: Int = 0
    /// Warmup as a fraction of the total steps (transformers' warmup_ratio); used when warmup_steps is 0.
    public var warmupRatio: Double = 0
    /// DeepSpeed's schedulers.
    public var warmupMinLR: Double = 0
    public var warmupType: WarmupType = .log
    public var warmupMinRatio: Double = 0
    public var cosMinRatio: Double = 0.0001
    /// DeepSpeed's `total_num_steps` for WarmupDecayLR and WarmupCosineLR; default: the run's steps.
    public var totalNumSteps: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type, warmup_steps, warmup_ratio, warmup_min_lr, warmup_type, warmup_min_ratio, cos_min_ratio, total_num_steps
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try c.decodeIfPresent(&type, forKey: .type)
        try c.decodeIfPresent(&warmupSteps, forKey: .warmup_steps)
        try c.decodeIfPresent(&warmupRatio, forKey: .warmup_ratio)
        try c.decodeIfPresent(&warmupMinLR, forKey: .warmup_min_lr)
        try c.decodeIfPresent(&warmupType, forKey: .warmup_type)
        try c.decodeIfPresent(&warmupMinRatio, forKey: .warmup_min_ratio)
        try c.decodeIfPresent(&cosMinRatio, forKey: .cos_min_ratio)
        totalNumSteps = try c.decodeIfPresent(Int.self, forKey: .total_num_steps)
    }
}

/// The `lora:` section (PEFT's LoraConfig): train a low-rank adapter at the named projections with the
/// base frozen. Without `init_adapter`, `r` is required and the adapter starts fresh (PEFT's init);
/// with it, the folder's adapter_config.json defines the adapter and `r`, `alpha`, `target_modules`,
/// `rslora` and `modules_to_save` may only repeat its values.
public struct LoRAOptions: Decodable, Sendable, Equatable {
    /// Where the frozen base weights are kept: `auto` is the checkpoint's dtype (config.json's
    /// torch_dtype: an f32 checkpoint stays exact, a bf16 one costs 2 bytes a weight).
    public enum BaseDType: String, Decodable, CaseIterable, Sendable { case auto, f32, bf16, f16 }
    public var r: Int?
    public var alpha: Double?
    public var dropout: Double = 0
    /// Module names (the last path component, or a dotted suffix), or ["all-linear"].
    public var targetModules: [String]?
    public var rslora: Bool?
    public var modulesToSave: [String]?
    public var initAdapter: String?
    public var baseDType: BaseDType = .auto
    enum CodingKeys: String, CodingKey, CaseIterable {
        case r, alpha, dropout, target_modules, rslora, modules_to_save, init_adapter, base_dtype
    }
    public init(r: Int?, alpha: Double? = nil, targetModules: [String]? = nil) {
        self.r = r
        self.alpha = alpha
        self.targetModules = targetModules
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        r = try c.decodeIfPresent(Int.self, forKey: .r)
        alpha = try c.decodeIfPresent(Double.self, forKey: .alpha)
        try c.decodeIfPresent(&dropout, forKey: .dropout)
        // PEFT takes a list, or one string ("all-linear", or a single module name).
        targetModules = try c.decodeIfPresent(StringOrList.self, forKey: .target_modules)?.values
        rslora = try c.decodeIfPresent(Bool.self, forKey: .rslora)
        modulesToSave = try c.decodeIfPresent([String].self, forKey: .modules_to_save)
        initAdapter = try c.decodeIfPresent(String.self, forKey: .init_adapter)
        try c.decodeIfPresent(&baseDType, forKey: .base_dtype)
    }

    /// PEFT's defaults for a fresh adapter: lora_alpha 8, target_modules q_proj and v_proj (what PEFT's
    /// table gives the Llama-style families).
    public static let defaultAlpha = 8.0
    public static let defaultTargets = ["q_proj", "v_proj"]

    /// The settings of a fresh adapter (nil r: validation has refused it already).
    public var freshSettings: LoRASettings? {
        guard let r else { return nil }
        let targets = targetModules ?? Self.defaultTargets
        return LoRASettings(r: r, alpha: alpha ?? Self.defaultAlpha, dropout: dropout, rslora: rslora ?? false,
                            targets: LoRASettings.Targets(targets), modulesToSave: modulesToSave ?? [])
    }
}

public struct OutputOptions: Decodable, Sendable, Equatable {
    public enum DTypeName: String, Decodable, CaseIterable, Sendable { case f32, bf16, f16 }
    public var dir: String
    public var saveSteps: Int?
    public var keepLast: Int?
    /// The dtype of exported weights; default: the source model's.
    public var dtype: DTypeName?
    public var maxShardSize: String = "5GB"
    /// A fresh run into a folder holding an earlier run deletes that run's checkpoints, `latest`, `final`
    /// and metrics first (OutputFolder); without it such a run is refused.
    public var overwrite: Bool = false
    enum CodingKeys: String, CodingKey, CaseIterable { case dir, save_steps, keep_last, dtype, max_shard_size, overwrite }
    public init(dir: String) { self.dir = dir }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(dir: try c.decode(String.self, forKey: .dir))
        saveSteps = try c.decodeIfPresent(Int.self, forKey: .save_steps)
        keepLast = try c.decodeIfPresent(Int.self, forKey: .keep_last)
        dtype = try c.decodeIfPresent(DTypeName.self, forKey: .dtype)
        try c.decodeIfPresent(&maxShardSize, forKey: .max_shard_size)
        try c.decodeIfPresent(&overwrite, forKey: .overwrite)
    }
}

public struct LoggingOptions: Decodable, Sendable, Equatable {
    public enum Progress: String, Decodable, CaseIterable, Sendable { case auto, bar, plain, none }
    /// `debug`: every rank prints its own wall-clock breakdown (rank 0 alone at `info`).
    public enum Level: String, Decodable, CaseIterable, Sendable { case info, debug }

    /// DeepSpeed's `flops_profiler` section, with its keys and defaults.
    public struct FlopsProfiler: Decodable, Sendable, Equatable {
        public var enabled: Bool = false
        /// The global step profiled (1-based, as DeepSpeed counts).
        public var profileStep: Int = 1
        /// How deep the per-module table goes (-1: every depth).
        public var moduleDepth: Int = -1
        /// The modules listed per depth, largest latency first.
        public var topModules: Int = 1
        /// The per-module table (false: the totals only).
        public var detailed: Bool = true
        /// Where the profile is written (default: the log, and OUTPUT_DIR/flops_profile.json always).
        public var outputFile: String?
        enum CodingKeys: String, CodingKey, CaseIterable { case enabled, profile_step, module_depth, top_modules, detailed, output_file }
        public init() {}
        public init(from decoder: Decoder) throws {
            self.init()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            try c.decodeIfPresent(&enabled, forKey: .enabled)
            try c.decodeIfPresent(&profileStep, forKey: .profile_step)
            try c.decodeIfPresent(&moduleDepth, forKey: .module_depth)
            try c.decodeIfPresent(&topModules, forKey: .top_modules)
            try c.decodeIfPresent(&detailed, forKey: .detailed)
            outputFile = try c.decodeIfPresent(String.self, forKey: .output_file)
        }
    }

    public var steps: Int = 10
    public var jsonl: Bool = true
    public var csv: Bool = false
    public var tensorboard: Bool = false
    /// TensorBoard events go to `tensorboard_output_path/tensorboard_job_name/` (DeepSpeed's
    /// `tensorboard.output_path` and `job_name`); the path defaults to output.dir.
    public var tensorboardOutputPath: String?
    public var tensorboardJobName: String = "DeepSpeedJobName"
    /// DeepSpeed's `wall_clock_breakdown`: every `steps` steps, the median forward, backward,
    /// communication and optimizer-step times.
    public var wallClockBreakdown: Bool = false
    public var flopsProfiler = FlopsProfiler()
    public var progress: Progress = .auto
    public var level: Level = .info
    /// Prompts answered greedily before and after training (through the chat template when there is one).
    public var samplePrompts: [String] = []
    public var sampleMaxNewTokens: Int = 32
    enum CodingKeys: String, CodingKey, CaseIterable {
        case steps, jsonl, csv, tensorboard, tensorboard_output_path, tensorboard_job_name, wall_clock_breakdown,
             flops_profiler, progress, level, sample_prompts, sample_max_new_tokens
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try c.decodeIfPresent(&steps, forKey: .steps)
        try c.decodeIfPresent(&jsonl, forKey: .jsonl)
        try c.decodeIfPresent(&csv, forKey: .csv)
        try c.decodeIfPresent(&tensorboard, forKey: .tensorboard)
        tensorboardOutputPath = try c.decodeIfPresent(String.self, forKey: .tensorboard_output_path)
        try c.decodeIfPresent(&tensorboardJobName, forKey: .tensorboard_job_name)
        try c.decodeIfPresent(&wallClockBreakdown, forKey: .wall_clock_breakdown)
        try c.decodeIfPresent(&flopsProfiler, forKey: .flops_profiler)
        try c.decodeIfPresent(&progress, forKey: .progress)
        try c.decodeIfPresent(&level, forKey: .level)
        try c.decodeIfPresent(&samplePrompts, forKey: .sample_prompts)
        try c.decodeIfPresent(&sampleMaxNewTokens, forKey: .sample_max_new_tokens)
    }

    /// Where TensorBoard events go for a run writing into `outputDir`.
    public func tensorboardDirectory(outputDir: String) -> String {
        ((tensorboardOutputPath.flatMap { $0.isEmpty ? nil : $0 } ?? outputDir) as NSString).appendingPathComponent(tensorboardJobName)
    }
}

/// A whole training run: what a recipe describes, or what Swift code builds directly.
public struct TrainingConfiguration: Decodable, Sendable, Equatable {
    public var model: ModelSource
    public var data: DataOptions
    public var training = LoopOptions()
    public var optimizer = OptimizerOptions()
    public var scheduler = SchedulerOptions()
    public var engine = EngineOptions()
    public var lora: LoRAOptions?
    public var output: OutputOptions
    public var logging = LoggingOptions()
    public var seed: Int = 42
    /// `auto` (the newest checkpoint under output.dir, if any) or a checkpoint folder.
    public var resume: String?
    /// A DeepSpeed ds_config.json read as it is and merged with this recipe (`mergingDeepSpeed`).
    public var deepspeed: String?
    /// The key paths a YAML recipe sets itself (nil for a configuration built in Swift, where a value
    /// other than the default counts as set): a ds_config value may replace a default, not a choice.
    public var recipeKeys: Set<String>?
    /// Set once the ds_config is merged (then `deepspeed` is nil): where it came from, what had no effect.
    public var deepspeedImport: DeepSpeedImport?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, data, training, optimizer, scheduler, engine, lora, output, logging, seed, resume, deepspeed
    }

    public init(model: ModelSource, data: DataOptions, output: OutputOptions) {
        self.model = model
        self.data = data
        self.output = output
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(model: try c.decode(ModelSource.self, forKey: .model), data: try c.decode(DataOptions.self, forKey: .data),
                  output: try c.decode(OutputOptions.self, forKey: .output))
        try c.decodeIfPresent(&training, forKey: .training)
        try c.decodeIfPresent(&optimizer, forKey: .optimizer)
        try c.decodeIfPresent(&scheduler, forKey: .scheduler)
        try c.decodeIfPresent(&engine, forKey: .engine)
        lora = try c.decodeIfPresent(LoRAOptions.self, forKey: .lora)
        try c.decodeIfPresent(&logging, forKey: .logging)
        try c.decodeIfPresent(&seed, forKey: .seed)
        resume = try c.decodeIfPresent(String.self, forKey: .resume)
        deepspeed = try c.decodeIfPresent(String.self, forKey: .deepspeed)
    }
}
