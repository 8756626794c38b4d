import Formats

/// The parameters of each learning-rate schedule, as plain Decodable structs whose keys are the names
/// transformers (`lr_scheduler_kwargs`, `warmup_steps`, `max_steps`) and DeepSpeed (`scheduler.params`
/// in ds_config.json) use, with their defaults (on the initialisers; `init(from:)` decodes over them).
/// The recipe layer maps YAML or ds_config onto these.

public enum LRScheduleError: Error, CustomStringConvertible, Equatable {
    case invalid(schedule: String, key: String, value: String, expected: String)

    public var description: String {
        switch self {
        case let .invalid(schedule, key, value, expected):
            return "\(schedule) scheduler: \(key) = \(value), expected \(expected)"
        }
    }
}

/// transformers `get_constant_schedule_with_warmup` (`constant` is this with no warmup).
public struct ConstantScheduleConfig: Decodable, Sendable, Equatable {
    public var numWarmupSteps: Int

    public init(numWarmupSteps: Int = 0) { self.numWarmupSteps = numWarmupSteps }

    enum CodingKeys: String, CodingKey { case numWarmupSteps = "num_warmup_steps" }

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try c.decodeIfPresent(&numWarmupSteps, forKey: .numWarmupSteps)
    }
}

/// transformers `get_linear_schedule_with_warmup`.
public struct LinearScheduleConfig: Decodable, Sendable, Equatable {
    public var numWarmupSteps: Int
    public var numTrainingSteps: Int

    public init(numWarmupSteps: Int = 0, numTrainingSteps: Int) {
        self.numWarmupSteps = numWarmupSteps; self.numTrainingSteps = numTrainingSteps
    }

    enum CodingKeys: String, CodingKey {
        case numWarmupSteps = "num_warmup_steps", numTrainingSteps = "num_training_steps"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(numTrainingSteps: try c.decode(Int.self, forKey: .numTrainingSteps))
        try c.decodeIfPresent(&numWarmupSteps, forKey: .numWarmupSteps)
    }
}

/// transformers `get_cosine_schedule_with_warmup` and, with `minLR` or `minLRRate`,
/// `get_cosine_with_min_lr_schedule_with_warmup` (min_lr_rate = min_lr / base lr; setting both is an error).
public struct CosineScheduleConfig: Decodable, Sendable, Equatable {
    public var numWarmupSteps: Int
    public var numTrainingSteps: Int
    public var numCycles: Double
    public var minLR: Double?
    public var minLRRate: Double?

    public init(numWarmupSteps: Int = 0, numTrainingSteps: Int, numCycles: Double = 0.5,
                minLR: Double? = nil, minLRRate: Double? = nil) {
        self.numWarmupSteps = numWarmupSteps; self.numTrainingSteps = numTrainingSteps
        self.numCycles = numCycles; self.minLR = minLR; self.minLRRate = minLRRate
    }

    enum CodingKeys: String, CodingKey {
        case numWarmupSteps = "num_warmup_steps", numTrainingSteps = "num_training_steps"
        case numCycles = "num_cycles", minLR = "min_lr", minLRRate = "min_lr_rate"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(numTrainingSteps: try c.decode(Int.self, forKey: .numTrainingSteps))
        try c.decodeIfPresent(&numWarmupSteps, forKey: .numWarmupSteps)
        try c.decodeIfPresent(&numCycles, forKey: .numCycles)
        minLR = try c.decodeIfPresent(Double.self, forKey: .minLR)
        minLRRate = try c.decodeIfPresent(Double.self, forKey: .minLRRate)
    }
}

/// DeepSpeed's `warmup_type`.
public enum DeepSpeedWarmupType: String, Decodable, Sendable, Equatable {
    case log, linear
}

/// DeepSpeed `WarmupLR` and, with `totalNumSteps`, `WarmupDecayLR`. `warmupMaxLR` nil means the
/// optimizer's lr (WarmupLR's default; WarmupDecayLR's own default is 0.001, which a ds_config
/// importer must fill in explicitly).
public struct DeepSpeedWarmupConfig: Decodable, Sendable, Equatable {
    public var warmupMinLR: Double
    public var warmupMaxLR: Double?
    public var warmupNumSteps: Int
    public var warmupType: DeepSpeedWarmupType
    /// Set for WarmupDecayLR: linear decay to 0 at this step.
    public var totalNumSteps: Int?

    public init(warmupMinLR: Double = 0, warmupMaxLR: Double? = nil, warmupNumSteps: Int = 1000,
                warmupType: DeepSpeedWarmupType = .log, totalNumSteps: Int? = nil) {
        self.warmupMinLR = warmupMinLR; self.warmupMaxLR = warmupMaxLR; self.warmupNumSteps = warmupNumSteps
        self.warmupType = warmupType; self.totalNumSteps = totalNumSteps
    }

    enum CodingKeys: String, CodingKey {
        case warmupMinLR = "warmup_min_lr", warmupMaxLR = "warmup_max_lr", warmupNumSteps = "warmup_num_steps"
        case warmupType = "warmup_type", totalNumSteps = "total_num_steps"
    }

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try c.decodeIfPresent(&warmupMinLR, forKey: .warmupMinLR)
        warmupMaxLR = try c.decodeIfPresent(Double.self, forKey: .warmupMaxLR)
        try c.decodeIfPresent(&warmupNumSteps, forKey: .warmupNumSteps)
        try c.decodeIfPresent(&warmupType, forKey: .warmupType)
        totalNumSteps = try c.decodeIfPresent(Int.self, forKey: .totalNumSteps)
    }
}

/// DeepSpeed `WarmupCosineLR` (ratios of the optimizer's lr).
public struct DeepSpeedWarmupCosineConfig: Decodable, Sendable, Equatable {
    public var totalNumSteps: Int
    public var warmupMinRatio: Double
    public var warmupNumSteps: Int
    public var cosMinRatio: Double
    public var warmupType: DeepSpeedWarmupType

    public init(totalNumSteps: Int, warmupMinRatio: Double = 0, warmupNumSteps: Int = 1000,
                cosMinRatio: Double = 0.0001, warmupType: DeepSpeedWarmupType = .log) {
        self.totalNumSteps = totalNumSteps; self.warmupMinRatio = warmupMinRatio
        self.warmupNumSteps = warmupNumSteps; self.cosMinRatio = cosMinRatio; self.warmupType = warmupType
    }

    enum CodingKeys: String, CodingKey {
        case totalNumSteps = "total_num_steps", warmupMinRatio = "warmup_min_ratio"
        case warmupNumSteps = "warmup_num_steps", cosMinRatio = "cos_min_ratio", warmupType = "warmup_type"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(totalNumSteps: try c.decode(Int.self, forKey: .totalNumSteps))
        try c.decodeIfPresent(&warmupMinRatio, forKey: .warmupMinRatio)
        try c.decodeIfPresent(&warmupNumSteps, forKey: .warmupNumSteps)
        try c.decodeIfPresent(&cosMinRatio, forKey: .cosMinRatio)
        try c.decodeIfPresent(&warmupType, forKey: .warmupType)
    }
}
