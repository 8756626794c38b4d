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
    /// Checks the invariants the kernels rely on, naming the key at fault.
    func validated(source: String) throws -> TransformerConfig {
        func check(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw ModelConfigError.invalid(file: source, key: key, message: message) }
        }
        try check(vocabSize > 0, "vocab_size", "must be positive, got \(vocabSize)")
        try check(hiddenSize > 0, "hidden_size", "must be positive, got \(hiddenSize)")
        try check(numLayers > 0, "num_hidden_layers", "must be positive, got \(numLayers)")
        try check(numHeads > 0, "num_attention_heads", "must be positive, got \(numHeads)")
        try check(numKVHeads > 0 && numHeads % numKVHeads == 0, "num_key_value_heads",
                  "must divide num_attention_heads (\(numHeads)), got \(numKVHeads)")
        try check(headDim > 0 && headDim % 2 == 0, "head_dim", "must be a positive even number, got \(headDim)")
        try check(intermediateSize > 0, "intermediate_size", "must be positive, got \(intermediateSize)")
        return self
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
