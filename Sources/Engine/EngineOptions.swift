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
            let c = try decoder.container(keyedBy: CodingKeys.self)
            device = try c.decodeIfPresent(Device.self, forKey: .device) ?? .none
            path = try c.decodeIfPresent(String.self, forKey: .path)
            bufferSize = try c.decodeIfPresent(Int.self, forKey: .buffer_size) ?? 64 << 20
        }
    }

    public struct Pipeline: Decodable, Sendable, Equatable {
        public enum Partition: String, Decodable, CaseIterable, Sendable { case parameters, uniform }
        public var stages: Int = 1
        public var partition: Partition = .parameters
        enum CodingKeys: String, CodingKey, CaseIterable { case stages, partition }
        public init() {}
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            stages = try c.decodeIfPresent(Int.self, forKey: .stages) ?? 1
            partition = try c.decodeIfPresent(Partition.self, forKey: .partition) ?? .parameters
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
            let c = try decoder.container(keyedBy: CodingKeys.self)
            lossScale = try c.decodeIfPresent(Double.self, forKey: .loss_scale) ?? 0
            initialScalePower = try c.decodeIfPresent(Int.self, forKey: .initial_scale_power) ?? 16
            lossScaleWindow = try c.decodeIfPresent(Int.self, forKey: .loss_scale_window) ?? 1000
            hysteresis = try c.decodeIfPresent(Int.self, forKey: .hysteresis) ?? 2
            consecutiveHysteresis = try c.decodeIfPresent(Bool.self, forKey: .consecutive_hysteresis) ?? false
            minLossScale = try c.decodeIfPresent(Double.self, forKey: .min_loss_scale) ?? 1
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
        let c = try decoder.container(keyedBy: CodingKeys.self)
        zeroStage = try c.decodeIfPresent(Int.self, forKey: .zero_stage) ?? 0
        precision = try c.decodeIfPresent(Precision.self, forKey: .precision) ?? .f32
        activationCheckpointing = try c.decodeIfPresent(Bool.self, forKey: .activation_checkpointing) ?? false
        offloadOptimizer = try c.decodeIfPresent(Offload.self, forKey: .offload_optimizer) ?? Offload()
        offloadParam = try c.decodeIfPresent(Offload.self, forKey: .offload_param) ?? Offload()
        pipeline = try c.decodeIfPresent(Pipeline.self, forKey: .pipeline) ?? Pipeline()
        lossScaler = try c.decodeIfPresent(LossScaler.self, forKey: .loss_scaler) ?? LossScaler()
    }
}
