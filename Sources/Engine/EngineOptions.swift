import Formats

/// The `engine:` section of a recipe: how DeepSpeed-style machinery runs the model. Every field has the
/// default a user gets when the key is absent.
public struct EngineOptions: Decodable, Sendable, Equatable {
    public enum Precision: String, Decodable, CaseIterable, Sendable { case f32, bf16, fp16 }

    public struct Offload: Decodable, Sendable, Equatable {
        public enum Device: String, Decodable, CaseIterable, Sendable { case none, cpu, nvme }
        /// `nvme` keeps state in files under `path`; `cpu` is accepted for DeepSpeed configs and means
        /// "in memory" here (there is no GPU to offload from).
        public var device: Device = .none
        public var path: String?
        /// Bytes streamed per chunk through the bounded buffer.
        public var bufferSize: Int = 64 << 20

        enum CodingKeys: String, CodingKey, CaseIterable { case device, path, buffer_size }
        public init() {}
        public init(from decoder: Decoder) throws {
            self.init()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            try c.decodeIfPresent(&device, forKey: .device)
            path = try c.decodeIfPresent(String.self, forKey: .path)
            try c.decodeIfPresent(&bufferSize, forKey: .buffer_size)
        }
    }

    public struct Pipeline: Decodable, Sendable, Equatable {
        /// How blocks are split over stages (DeepSpeed's `partition_method`): balance parameter counts,
        /// balance block counts, or a list of blocks per stage.
        public enum Partition: Decodable, Sendable, Equatable {
            case parameters, uniform
            case blocks([Int])

            public init(from decoder: Decoder) throws {
                if let counts = try? [Int](from: decoder) {
                    self = .blocks(counts)
                    return
                }
                let name = try decoder.singleValueContainer().decode(String.self)
                switch name {
                case "parameters": self = .parameters
                case "uniform": self = .uniform
                default:
                    throw DecodingError.dataCorrupted(DecodingError.Context(
                        codingPath: decoder.codingPath,
                        debugDescription: "is \(name), expected parameters, uniform or a list of block counts per stage"))
                }
            }
        }
        public var stages: Int = 1
        public var partition: Partition = .parameters
        enum CodingKeys: String, CodingKey, CaseIterable { case stages, partition }
        public init() {}
        public init(from decoder: Decoder) throws {
            self.init()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            try c.decodeIfPresent(&stages, forKey: .stages)
            try c.decodeIfPresent(&partition, forKey: .partition)
        }
    }

    /// fp16's dynamic loss scaler, with DeepSpeed's parameter names and defaults. `loss_scale` > 0 is a
    /// static scale.
    public struct LossScaler: Decodable, Sendable, Equatable {
        public var lossScale: Double = 0
        public var initialScalePower: Int = 16
        public var lossScaleWindow: Int = 1000
        public var hysteresis: Int = 2
        public var consecutiveHysteresis: Bool = false
        public var minLossScale: Double = 1
        enum CodingKeys: String, CodingKey, CaseIterable {
            case loss_scale, initial_scale_power, loss_scale_window, hysteresis, consecutive_hysteresis, min_loss_scale
        }
        public init() {}
        public init(from decoder: Decoder) throws {
            self.init()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            try c.decodeIfPresent(&lossScale, forKey: .loss_scale)
            try c.decodeIfPresent(&initialScalePower, forKey: .initial_scale_power)
            try c.decodeIfPresent(&lossScaleWindow, forKey: .loss_scale_window)
            try c.decodeIfPresent(&hysteresis, forKey: .hysteresis)
            try c.decodeIfPresent(&consecutiveHysteresis, forKey: .consecutive_hysteresis)
            try c.decodeIfPresent(&minLossScale, forKey: .min_loss_scale)
        }
    }

    public var zeroStage: Int = 0
    public var precision: Precision = .f32
    public var activationCheckpointing: Bool = false
    public var offloadOptimizer = Offload()
    public var offloadParam = Offload()
    public var pipeline = Pipeline()
    public var lossScaler = LossScaler()

    enum CodingKeys: String, CodingKey, CaseIterable {
        case zero_stage, precision, activation_checkpointing, offload_optimizer, offload_param, pipeline, loss_scaler
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try c.decodeIfPresent(&zeroStage, forKey: .zero_stage)
        try c.decodeIfPresent(&precision, forKey: .precision)
        try c.decodeIfPresent(&activationCheckpointing, forKey: .activation_checkpointing)
        try c.decodeIfPresent(&offloadOptimizer, forKey: .offload_optimizer)
        try c.decodeIfPresent(&offloadParam, forKey: .offload_param)
        try c.decodeIfPresent(&pipeline, forKey: .pipeline)
        try c.decodeIfPresent(&lossScaler, forKey: .loss_scaler)
    }
}

extension EngineOptions {
    /// What the engine refuses, with keys relative to the `engine` section. `TrainingEngine.init` throws
    /// these and the Trainer and `validate` report them, so a setting is refused by the same rule
    /// whichever door it comes through. Paths are not looked at here (see the Trainer's file checks).
    public func problems() -> [ConfigurationProblem] {
        var p = ProblemList()
        p.require((0...3).contains(zeroStage), "zero_stage", "must be 0, 1, 2 or 3, got \(zeroStage)")
        p.count(pipeline.stages, atLeast: 1, "pipeline.stages")
        // One problem for the key at most: the first rule a pipeline breaks.
        if pipeline.stages > 1 {
            if zeroStage > 1 {
                // DeepSpeed's PipelineEngine asserts zero_stage < 2: ZeRO-2/3 reduce (and gather) per layer
                // group during backward, which the pipeline's interleaved micro-batches do not fit.
                p.add("pipeline.stages", "pipeline parallelism composes only with ZeRO stage 0 or 1 (as in DeepSpeed: ZeRO-2 and ZeRO-3 reduce gradients during backward, across the pipeline's interleaved micro-batches), zero_stage is \(zeroStage)")
            } else if offloadOptimizer.device == .nvme || offloadParam.device != .none {
                p.add("pipeline.stages", "pipeline parallelism does not combine with offload in this build")
            }
            if case .blocks(let counts) = pipeline.partition {
                p.require(counts.count == pipeline.stages, "pipeline.partition",
                          "lists \(counts.count) block counts for \(pipeline.stages) stages")
                p.require(counts.allSatisfy { $0 >= 1 }, "pipeline.partition", "every stage needs at least one block, got \(counts)")
            }
        }
        p.require(offloadOptimizer.device != .nvme || offloadOptimizer.path != nil, "offload_optimizer", "device nvme needs a path")
        p.count(offloadOptimizer.bufferSize, atLeast: 1, "offload_optimizer.buffer_size")
        if offloadParam.device != .none && zeroStage != 3 {
            p.add("offload_param", "parameter offload needs zero_stage 3 (as in DeepSpeed), got zero_stage \(zeroStage)")
        } else if offloadParam.device == .nvme && offloadParam.path == nil && offloadOptimizer.path == nil {
            p.add("offload_param", "device nvme needs a path (its own or offload_optimizer's)")
        }
        p.count(offloadParam.bufferSize, atLeast: 1, "offload_param.buffer_size")
        if precision == .fp16 { p.add(lossScalerProblems(), under: "loss_scaler") }
        return p.problems
    }

    /// The loss scaler's own check (DeepSpeed's fp16 validators), as problems.
    private func lossScalerProblems() -> [ConfigurationProblem] {
        do {
            try Engine.LossScaler.validate(lossScaler)
            return []
        } catch LossScalerError.invalidOption(let key, let value, let expected) {
            return [ConfigurationProblem(key, "is \(value), expected \(expected)")]
        } catch {
            return [ConfigurationProblem("", "\(error)")]
        }
    }

    /// Throws every problem at once, keys under `engine.`.
    public func validate() throws {
        try ConfigurationError.check(problems().under("engine"))
    }
}
