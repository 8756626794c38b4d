import Foundation
import Formats
import Kernels
import Tensors

/// The architecture-independent description every kernel call is planned from, plus the family's own
/// rules (`architecture`). Each architecture file decodes its config.json into this; `raw` keeps the
/// file's other keys so an exported config.json carries everything the user's had.
public struct TransformerConfig: Sendable {
    public enum Positions: Sendable { case rotary(theta: Float, scaling: RotaryEmbedding.Scaling), learned(max: Int) }

    /// The file's `model_type`, for display and export only: behaviour comes from `architecture`.
    public var modelType: String
    public var architecture: any Architecture
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var maxPositions: Int
    public var normEps: Float
    public var positions: Positions
    public var tieWordEmbeddings: Bool
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]
    /// nn.Embedding's padding_idx (transformers passes pad_token_id for the Llama-style families): that
    /// row gets no gradient from the embedding lookup.
    public var paddingIndex: Int?
    public var torchDtype: DType?
    public var raw: JSONObject

    public var attentionShape: AttentionShape { AttentionShape(heads: numHeads, kvHeads: numKVHeads, headDim: headDim) }

    /// The dtype an export keeps when none is asked for: the model's own (`torch_dtype`/`dtype`) when it
    /// is a float format we write, else f32.
    public var exportDType: DType { torchDtype.flatMap { [.f32, .bf16, .f16].contains($0) ? $0 : nil } ?? .f32 }
}

public enum ModelConfigError: Error, CustomStringConvertible {
    case unsupportedModelType(file: String, found: String?, supported: [String])
    case invalid(file: String, key: String, message: String)
    case unsupported(file: String, key: String, message: String)

    public var description: String {
        switch self {
        case .unsupportedModelType(let file, let found, let supported):
            let what = found.map { "model_type '\($0)' is not supported" } ?? "no model_type key"
            return "\(file): \(what); supported: \(supported.joined(separator: ", "))"
        case .invalid(let file, let key, let message): return "\(file): \(key): \(message)"
        case .unsupported(let file, let key, let message): return "\(file): \(key): \(message) is not supported"
        }
    }
}

extension TransformerConfig {
    /// Upper bounds on the sizes a config.json may give, far above any released model (the largest
    /// vocabularies are ~260k, hidden sizes ~16k): beyond them a file is corrupt or hostile, and its sizes
    /// would overflow the layout's arithmetic or ask for terabytes before any weight is read.
    public enum Limits {
        public static let vocabSize = 1 << 24
        public static let hiddenSize = 1 << 17
        public static let intermediateSize = 1 << 20
        public static let layers = 1 << 12
        public static let heads = 1 << 12
        public static let headDim = 1 << 12
        public static let positions = 1 << 24
    }

    /// Checks the invariants the kernels rely on, naming the key at fault: sizes within `Limits`, and
    /// the numbers the math divides by or takes powers of (norm eps, rope theta and factors) finite and
    /// positive, since anything else turns every loss into NaN.
    func validated(source: String) throws -> TransformerConfig {
        func check(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw ModelConfigError.invalid(file: source, key: key, message: message) }
        }
        func size(_ value: Int, _ key: String, _ limit: Int) throws {
            try check(value > 0, key, "must be positive, got \(value)")
            try check(value <= limit, key, "must be at most \(limit), got \(value)")
        }
        // GPT-2's files name the same sizes differently.
        func name(_ key: String, gpt2: String) -> String { raw[gpt2] != nil ? gpt2 : key }
        func positive(_ value: Float, _ key: String) throws {
            try check(value.isFinite && value > 0, key, "must be a positive finite number, got \(value)")
        }
        try size(vocabSize, "vocab_size", Limits.vocabSize)
        try size(hiddenSize, name("hidden_size", gpt2: "n_embd"), Limits.hiddenSize)
        try size(numLayers, name("num_hidden_layers", gpt2: "n_layer"), Limits.layers)
        try size(numHeads, name("num_attention_heads", gpt2: "n_head"), Limits.heads)
        try check(numKVHeads > 0 && numHeads % numKVHeads == 0, "num_key_value_heads",
                  "must divide num_attention_heads (\(numHeads)), got \(numKVHeads)")
        try check(headDim > 0 && headDim % 2 == 0 && headDim <= Limits.headDim, "head_dim",
                  "must be a positive even number up to \(Limits.headDim), got \(headDim)")
        try size(intermediateSize, name("intermediate_size", gpt2: "n_inner"), Limits.intermediateSize)
        try size(maxPositions, name("max_position_embeddings", gpt2: "n_positions"), Limits.positions)
        // A config written as 1e-50 is zero in f32, which is what the kernels compute in.
        try positive(normEps, name("rms_norm_eps", gpt2: "layer_norm_epsilon"))
        if case .rotary(let theta, let scaling) = positions {
            try positive(theta, "rope_theta")
            switch scaling {
            case .none: break
            case .linear(let factor): try positive(factor, "rope_scaling.factor")
            case .llama3(let factor, let low, let high, let original):
                try positive(factor, "rope_scaling.factor")
                try positive(low, "rope_scaling.low_freq_factor")
                try positive(high, "rope_scaling.high_freq_factor")
                try check(high > low, "rope_scaling.high_freq_factor", "must be greater than low_freq_factor (\(low)), got \(high)")
                try check(original > 0, "rope_scaling.original_max_position_embeddings", "must be positive, got \(original)")
            }
        }
        return self
    }

    /// Bytes of the f32 parameters this config describes.
    public var parameterBytes: Int { architecture.layout(self).totalCount * 4 }

    /// Refuses a model whose f32 parameters alone exceed this machine's memory, before allocating them
    /// (the allocation would otherwise fail with a crash, not an error).
    public func checkFitsInMemory(source: String) throws {
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        let needed = parameterBytes
        guard needed <= physical else {
            throw ModelConfigError.invalid(file: source, key: "vocab_size/hidden_size/intermediate_size/num_hidden_layers",
                                           message: String(format: "the model's f32 parameters need %.1f GB, more than this machine's %.1f GB of memory",
                                                           Double(needed) / 1e9, Double(physical) / 1e9))
        }
    }

    /// config.json in the transformers-4 layout (`torch_dtype`, top-level `rope_theta`/`rope_scaling`),
    /// which transformers 4 and 5 both read; every other key of the original file is kept.
    public func transformers4JSON(dtype: DType) -> JSONValue {
        var o = architecture.transformers4Keys(raw)
        o["dtype"] = nil
        o["torch_dtype"] = .string(dtype.torchName)
        if o["transformers_version"] == nil { o["transformers_version"] = .string("4.57.1") }
        return .object(o)
    }
}
