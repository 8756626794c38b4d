import Formats
import Kernels
import Tensors

/// A model family's rules: how its config.json decodes, which Hugging Face tensors it has and how they
/// group into layers, and (once bound to a layout) its block forward and backward. Each family lives in
/// one file under `Architectures/`; nothing outside those files and `ModelRegistry` names a model_type.
///
/// An architecture is a value decoded from config.json; `bind` resolves its tensor names to offsets once,
/// so the hot loop never looks a name up.
public protocol Architecture: Sendable {
    /// The parameter table in state-dict order; each block's tensors contiguous (one layer group each:
    /// 0 embeddings, 1...L blocks, L+1 final norm and untied head).
    func layout(_ c: TransformerConfig) -> ParameterLayout
    /// The layout's name for a tensor name found in a file; nil for buffers a file may carry that are not
    /// parameters. Identity for families whose files always use the current names.
    func canonicalName(_ fileName: String) -> String?
    /// Module paths of `nn.LayerNorm` instances: transformers' decay grouping excludes them by type, which
    /// names alone cannot tell (see `DecayPolicy`).
    func layerNormModules(_ c: TransformerConfig) -> Set<String>
    /// The value transformers initialises a 1-D weight to (norm weights 1, or 0 where the norm scales by
    /// 1 + w); biases are always 0.
    func initialNormWeight(_ name: String) -> Float?
    /// Highest position + 1 the model can embed (learned positions); nil when positions are rotary and so
    /// unbounded by the weights.
    func positionLimit(_ c: TransformerConfig) -> Int?
    /// Per-token widths of what one block keeps for its backward, in the order of its binding's slots,
    /// and which of them are per-row statistics (kept f32 under mixed precision).
    func activationSlots(_ c: TransformerConfig) -> [ActivationSlot]
    /// The file's keys in the transformers-4 layout, which transformers 4 and 5 both read (dtype keys are
    /// set by the caller).
    func transformers4Keys(_ raw: JSONObject) -> JSONObject
    /// Resolves the layout's names to offsets and builds the rotary tables: the object the forward and
    /// backward run on.
    func bind(_ c: TransformerConfig, layout: ParameterLayout) -> BoundArchitecture
}

extension Architecture {
    public func canonicalName(_ fileName: String) -> String? { fileName }

    /// transformers 5's one `rope_parameters` object back into top-level `rope_theta` and `rope_scaling`.
    public func transformers4Keys(_ raw: JSONObject) -> JSONObject {
        var o = raw
        if let rp = o["rope_parameters"]?.objectValue {
            o["rope_parameters"] = nil
            if let theta = rp["rope_theta"] { o["rope_theta"] = theta }
            var scaling = rp
            scaling["rope_theta"] = nil
            let type = scaling["rope_type"]?.stringValue ?? "default"
            o["rope_scaling"] = type == "default" ? .null : .object(scaling)
        }
        return o
    }
    public func layerNormModules(_ c: TransformerConfig) -> Set<String> { [] }
    public func positionLimit(_ c: TransformerConfig) -> Int? { nil }
    public func initialNormWeight(_ name: String) -> Float? {
        name.hasSuffix("norm.weight") || name.hasSuffix("layernorm.weight") ? 1 : nil
    }
}

/// An architecture bound to one parameter layout: the model's math as the block schedule calls it.
/// Every method reads weights (and adds gradients) through the context's base pointers, so the same
/// binding serves f32 weights, ZeRO-3's gathered groups and mixed precision's widened copies.
public protocol BoundArchitecture: AnyObject {
    /// Offset of the LM head's weight [V, H] (the embedding's when tied).
    var headWeight: Int { get }
    /// Final-logit soft-capping (Gemma): logits = cap · tanh(z / cap); nil for none.
    var logitSoftcap: Float? { get }
    /// Every projection of the blocks with its layer group, in layout order: where LoRA attaches.
    var projections: [(group: Int, piece: Linear)] { get }

    /// residual[N, H] from the tokens (and learned positions).
    func embedForward(_ ctx: BlockContext, out: UnsafeMutablePointer<Float>)
    /// Adds the embedding gradients from dres[N, H] (the gradient of the embedding output).
    func embedBackward(_ ctx: BlockContext, dout: UnsafeMutablePointer<Float>)
    /// Block `l`: out[N, H] from x[N, H] (out may equal x), keeping what backward needs in `a`.
    func blockForward(_ l: Int, _ ctx: BlockContext, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                      a: BlockActivations, s: BlockScratch)
    /// Backward of block `l` from its activations `a` and input x: on entry s.dres is the gradient of the
    /// block's output, on exit of its input; weight gradients are added into ctx.grads.
    func blockBackward(_ l: Int, _ ctx: BlockContext, x: UnsafePointer<Float>, a: BlockActivations, s: BlockScratch)
    /// The final norm over N rows, stats saved for backward.
    func finalNormForward(_ ctx: BlockContext, inp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, stats: NormStatistics)
    /// dinp += the final norm's input gradient; its weight gradients added.
    func finalNormBackward(_ ctx: BlockContext, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                           inp: UnsafePointer<Float>, stats: NormStatistics)
    /// Grows rotary tables to positions 0..<n.
    func reserveRotary(positions n: Int)
}

/// Model families by config.json `model_type`: the one place that maps a type name to its file.
public enum ModelRegistry {
    public typealias Decoder = (_ json: JSONValue, _ source: String) throws -> TransformerConfig

    nonisolated(unsafe) static var families: [String: Decoder] = [
        "llama": LlamaArchitecture.decode,
        "mistral": LlamaArchitecture.decode,
        "qwen2": LlamaArchitecture.decode,
        "gpt2": GPT2Architecture.decode,
        "qwen3": Qwen3Architecture.decode,
        "phi3": Phi3Architecture.decode,
        "gemma3_text": Gemma3Architecture.decode,
    ]

    public static var supportedTypes: [String] { families.keys.sorted() }

    public static func config(json: JSONValue, source: String) throws -> TransformerConfig {
        let type = json["model_type"]?.stringValue
        guard let type, let decode = families[type] else {
            throw ModelConfigError.unsupportedModelType(file: source, found: type, supported: supportedTypes)
        }
        return try decode(json, source)
    }

    public static func config(path: String) throws -> TransformerConfig {
        try config(json: JSONValue.read(path: path), source: path)
    }

    /// The families llama.cpp's GGUF files can hold, from their architecture files.
    public static let ggufFamilies: [GGUFArchitectureMapping] =
        LlamaArchitecture.ggufFamilies + Qwen3Architecture.ggufFamilies + Phi3Architecture.ggufFamilies + Gemma3Architecture.ggufFamilies

    /// The family of a GGUF file: its `general.architecture`, and among families sharing that name the
    /// one whose `general.name` rule matches (transformers' Mistral rule), else the name's owner.
    public static func ggufFamily(architecture: String, name: String?) -> GGUFArchitectureMapping? {
        let candidates = ggufFamilies.filter { $0.ggufArchitecture == architecture }
        return candidates.first { $0.generalName != nil && $0.generalName == name } ?? candidates.first { $0.generalName == nil }
    }

    /// The GGUF family of a Hugging Face `model_type` (for export).
    public static func ggufFamily(modelType: String) -> GGUFArchitectureMapping? {
        ggufFamilies.first { $0.modelType == modelType }
    }

    public static var ggufArchitectures: [String] { Array(Set(ggufFamilies.map(\.ggufArchitecture))).sorted() }

    /// The parameter table of a config's architecture: Hugging Face names, shapes and layer groups.
    public static func layout(for config: TransformerConfig) -> ParameterLayout {
        config.architecture.layout(config)
    }
}
