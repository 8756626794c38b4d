import Engine

/// The sections of a recipe the Trainer reads, as plain `Decodable` values: the YAML recipe and the
/// Swift API build the same structs. Absent keys take the defaults written here (transformers' and
/// DeepSpeed's where they have one).
public struct ModelSource: Decodable, Sendable, Equatable {
    /// A Hugging Face model folder.
    public var path: String?
    /// Or a fresh model: a config.json and an initialisation seed.
    public var initialize: Initialize?
    public struct Initialize: Decodable, Sendable, Equatable {
        public var config: String
        public var seed: Int = 0
        public var tokenizer: String?
        enum CodingKeys: String, CodingKey, CaseIterable { case config, seed, tokenizer }
        public init(config: String, seed: Int = 0, tokenizer: String? = nil) {
            self.config = config
            self.seed = seed
            self.tokenizer = tokenizer
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            config = try c.decode(String.self, forKey: .config)
            seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? 0
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
        public var format: Format = .text
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
            path = try c.decode(String.self, forKey: .path)
            format = try c.decodeIfPresent(Format.self, forKey: .format) ?? .text
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
    public var maxSeqLen: Int = 1024
    public var packing: Bool = false
    public var shuffle: Bool = true
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
        train = try c.decode(Source.self, forKey: .train)
        eval = try c.decodeIfPresent(Eval.self, forKey: .eval)
        maxSeqLen = try c.decodeIfPresent(Int.self, forKey: .max_seq_len) ?? 1024
        packing = try c.decodeIfPresent(Bool.self, forKey: .packing) ?? false
        shuffle = try c.decodeIfPresent(Bool.self, forKey: .shuffle) ?? true
        trainOnPrompt = try c.decodeIfPresent(Bool.self, forKey: .train_on_prompt) ?? false
    }
}

public struct LoopOptions: Decodable, Sendable, Equatable {
    public struct EarlyStopping: Decodable, Sendable, Equatable {
        public var patience: Int
        public var minDelta: Double = 0
        enum CodingKeys: String, CodingKey, CaseIterable { case patience, min_delta }
        public init(patience: Int, minDelta: Double = 0) {
            self.patience = patience
            self.minDelta = minDelta
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            patience = try c.decode(Int.self, forKey: .patience)
            minDelta = try c.decodeIfPresent(Double.self, forKey: .min_delta) ?? 0
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
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? 1
        maxSteps = try c.decodeIfPresent(Int.self, forKey: .max_steps)
        microBatchSize = try c.decodeIfPresent(Int.self, forKey: .micro_batch_size) ?? 1
        gradientAccumulationSteps = try c.decodeIfPresent(Int.self, forKey: .gradient_accumulation_steps) ?? 1
        trainBatchSize = try c.decodeIfPresent(Int.self, forKey: .train_batch_size)
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learning_rate) ?? 2e-5
        maxGradNorm = c.contains(.max_grad_norm) ? try c.decodeIfPresent(Double.self, forKey: .max_grad_norm) : 1.0
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
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decodeIfPresent(Kind.self, forKey: .type) ?? .adamw
        betas = try c.decodeIfPresent([Double].self, forKey: .betas) ?? [0.9, 0.999]
        eps = try c.decodeIfPresent(Double.self, forKey: .eps) ?? 1e-8
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weight_decay) ?? 0
        momentum = try c.decodeIfPresent(Double.self, forKey: .momentum) ?? 0
        nesterov = try c.decodeIfPresent(Bool.self, forKey: .nesterov) ?? false
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

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type, warmup_steps, warmup_ratio, warmup_min_lr, warmup_type, warmup_min_ratio, cos_min_ratio
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decodeIfPresent(Kind.self, forKey: .type) ?? .constant
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmup_steps) ?? 0
        warmupRatio = try c.decodeIfPresent(Double.self, forKey: .warmup_ratio) ?? 0
        warmupMinLR = try c.decodeIfPresent(Double.self, forKey: .warmup_min_lr) ?? 0
        warmupType = try c.decodeIfPresent(WarmupType.self, forKey: .warmup_type) ?? .log
        warmupMinRatio = try c.decodeIfPresent(Double.self, forKey: .warmup_min_ratio) ?? 0
        cosMinRatio = try c.decodeIfPresent(Double.self, forKey: .cos_min_ratio) ?? 0.0001
    }
}

public struct LoRAOptions: Decodable, Sendable, Equatable {
    public var r: Int
    public var alpha: Double
    public var dropout: Double = 0
    public var targetModules: [String] = ["q_proj", "v_proj"]
    public var rslora: Bool = false
    enum CodingKeys: String, CodingKey, CaseIterable { case r, alpha, dropout, target_modules, rslora }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        r = try c.decode(Int.self, forKey: .r)
        alpha = try c.decodeIfPresent(Double.self, forKey: .alpha) ?? Double(r)
        dropout = try c.decodeIfPresent(Double.self, forKey: .dropout) ?? 0
        targetModules = try c.decodeIfPresent([String].self, forKey: .target_modules) ?? ["q_proj", "v_proj"]
        rslora = try c.decodeIfPresent(Bool.self, forKey: .rslora) ?? false
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
    enum CodingKeys: String, CodingKey, CaseIterable { case dir, save_steps, keep_last, dtype, max_shard_size }
    public init(dir: String) { self.dir = dir }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dir = try c.decode(String.self, forKey: .dir)
        saveSteps = try c.decodeIfPresent(Int.self, forKey: .save_steps)
        keepLast = try c.decodeIfPresent(Int.self, forKey: .keep_last)
        dtype = try c.decodeIfPresent(DTypeName.self, forKey: .dtype)
        maxShardSize = try c.decodeIfPresent(String.self, forKey: .max_shard_size) ?? "5GB"
    }
}

public struct LoggingOptions: Decodable, Sendable, Equatable {
    public enum Progress: String, Decodable, CaseIterable, Sendable { case auto, bar, plain, none }
    public var steps: Int = 10
    public var jsonl: Bool = true
    public var csv: Bool = false
    public var tensorboard: Bool = false
    public var progress: Progress = .auto
    /// Prompts answered greedily before and after training (through the chat template when there is one).
    public var samplePrompts: [String] = []
    public var sampleMaxNewTokens: Int = 32
    enum CodingKeys: String, CodingKey, CaseIterable {
        case steps, jsonl, csv, tensorboard, progress, sample_prompts, sample_max_new_tokens
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? 10
        jsonl = try c.decodeIfPresent(Bool.self, forKey: .jsonl) ?? true
        csv = try c.decodeIfPresent(Bool.self, forKey: .csv) ?? false
        tensorboard = try c.decodeIfPresent(Bool.self, forKey: .tensorboard) ?? false
        progress = try c.decodeIfPresent(Progress.self, forKey: .progress) ?? .auto
        samplePrompts = try c.decodeIfPresent([String].self, forKey: .sample_prompts) ?? []
        sampleMaxNewTokens = try c.decodeIfPresent(Int.self, forKey: .sample_max_new_tokens) ?? 32
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
    /// A DeepSpeed ds_config.json whose settings are merged under this recipe's.
    public var deepspeed: String?

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
        model = try c.decode(ModelSource.self, forKey: .model)
        data = try c.decode(DataOptions.self, forKey: .data)
        training = try c.decodeIfPresent(LoopOptions.self, forKey: .training) ?? LoopOptions()
        optimizer = try c.decodeIfPresent(OptimizerOptions.self, forKey: .optimizer) ?? OptimizerOptions()
        scheduler = try c.decodeIfPresent(SchedulerOptions.self, forKey: .scheduler) ?? SchedulerOptions()
        engine = try c.decodeIfPresent(EngineOptions.self, forKey: .engine) ?? EngineOptions()
        lora = try c.decodeIfPresent(LoRAOptions.self, forKey: .lora)
        output = try c.decode(OutputOptions.self, forKey: .output)
        logging = try c.decodeIfPresent(LoggingOptions.self, forKey: .logging) ?? LoggingOptions()
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? 42
        resume = try c.decodeIfPresent(String.self, forKey: .resume)
        deepspeed = try c.decodeIfPresent(String.self, forKey: .deepspeed)
    }
}
