import Foundation
import Formats
import Models
import SafeTensors

/// A GGUF model file as the Hugging Face folder transformers 5.23 makes of it
/// (`from_pretrained(dir, gguf_file=...)`): config.json, f32 weights with llama.cpp's Q/K permutation
/// undone, generation_config.json, tokenizer.json and tokenizer_config.json (chat template inline).
/// Stricter than transformers where it is silent: a tensor that has no place in the model, or a model
/// tensor missing from the file, is an error instead of being dropped or left random.
public struct GGUFToHuggingFace {
    public let file: GGUFFile
    public let mapping: GGUFArchitectureMapping
    /// config.json as transformers writes it (keys sorted when written).
    public let config: JSONObject
    /// (GGUF name, Hugging Face name, PyTorch shape) in state-dict order.
    public let tensors: [(gguf: String, hf: String, shape: [Int])]
    public let heads: Int
    public let kvHeads: Int

    public static let transformersVersion = "5.23.0"

    public init(file: GGUFFile) throws {
        self.file = file
        let path = file.path
        let arch = try file.architecture()
        let name = try file.optionalString("general.name")
        guard let mapping = ModelRegistry.ggufFamily(architecture: arch, name: name) else {
            throw GGUFError.unsupportedArchitecture(path: path, architecture: arch, supported: ModelRegistry.ggufArchitectures)
        }
        self.mapping = mapping

        func value(_ key: String) throws -> JSONValue? {
            guard let v = file[key] else { return nil }
            switch v {
            case .bool(let b): return .bool(b)
            case .string(let s): return .string(s)
            case .float32, .float64: return .double(v.double!)
            case .array: throw GGUFError.wrongValueType(path: path, key: key, expected: "a single value", found: v.summary)
            default:
                guard let i = v.int else { throw GGUFError.invalidValue(path: path, key: key, problem: "\(v.summary) does not fit in 64 bits") }
                return .int(Int64(i))
            }
        }
        for key in mapping.requiredKeys where file["\(arch).\(key)"] == nil {
            throw GGUFError.missingKey(path: path, key: "\(arch).\(key)", expected: "needed to build the model")
        }
        var c = JSONObject()
        for (k, v) in mapping.configDefaults { c[k] = v }
        if let name { c["_model_name_or_path"] = .string(name) }
        for (g, h) in mapping.configKeys { if let v = try value("\(arch).\(g)") { c[h] = v } }
        for (g, h) in [("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                       ("unknown_token_id", "unk_token_id"), ("padding_token_id", "pad_token_id")] {
            if let v = try value("tokenizer.ggml.\(g)") { c[h] = v }
        }
        if c["vocab_size"] == nil {
            guard case .array(_, let tokens)? = file["tokenizer.ggml.tokens"] else {
                throw GGUFError.missingKey(path: path, key: "\(arch).vocab_size", expected: "the vocabulary size, or tokenizer.ggml.tokens to count")
            }
            c["vocab_size"] = .int(Int64(tokens.count))
        }
        func positive(_ key: String, _ limit: Int = 1 << 24) throws -> Int {
            guard let v = c[key]?.intValue else { throw GGUFError.invalidModel(path: path, problem: "config \(key) must be an integer, found \(c[key].map { "\($0)" } ?? "nothing")") }
            guard v > 0 && v <= limit else { throw GGUFError.invalidModel(path: path, problem: "config \(key) = \(v) is out of range (1...\(limit))") }
            return v
        }
        let layers = try positive("num_hidden_layers")
        let hidden = try positive("hidden_size")
        let heads = try positive("num_attention_heads")
        if c["num_key_value_heads"] == nil { c["num_key_value_heads"] = .int(Int64(heads)) }
        let kvHeads = try positive("num_key_value_heads")
        let intermediate = try positive("intermediate_size")
        let vocab = try positive("vocab_size", 1 << 26)
        // Each block has the family's tensors: a block count the file cannot hold is corrupt, not a model.
        let perBlock = mapping.blockTensors.count
        guard layers * perBlock <= file.tensors.count else {
            throw GGUFError.invalidModel(path: path, problem: "\(arch).block_count \(layers) needs at least \(layers * perBlock) tensors, the file has \(file.tensors.count)")
        }
        guard heads % kvHeads == 0 else {
            throw GGUFError.invalidModel(path: path, problem: "\(kvHeads) key/value heads do not divide \(heads) attention heads")
        }
        // head_dim: from the file where transformers reads it, else its config class's default (Qwen3's 128,
        // Gemma's 256), else hidden / heads.
        var headDim = hidden / heads
        if c["head_dim"] != nil || mapping.configKeys.contains(where: { $0.hf == "head_dim" }) {
            if c["head_dim"] == nil { c["head_dim"] = .int(Int64(headDim)) }
            headDim = try positive("head_dim")
        }
        if !mapping.configKeys.contains(where: { $0.gguf == "attention.key_length" }),
           let keyLength = try file.optionalInt("\(arch).attention.key_length"), keyLength != headDim {
            throw GGUFError.invalidValue(path: path, key: "\(arch).attention.key_length",
                                         problem: "\(keyLength), but transformers \(Self.transformersVersion) does not read it for \(arch) and builds heads of \(headDim): the weights would not fit")
        }
        // A padding id past the vocabulary (Phi3Config's default 32000 when the file names none) cannot index the embedding.
        if let pad = c["pad_token_id"]?.intValue, pad >= vocab {
            throw GGUFError.invalidModel(path: path, problem: "pad_token_id \(pad) (\(file["tokenizer.ggml.padding_token_id"] == nil ? "transformers' default: the file has no tokenizer.ggml.padding_token_id" : "tokenizer.ggml.padding_token_id")) is outside the vocabulary of \(vocab)")
        }
        guard headDim % 2 == 0 else { throw GGUFError.invalidModel(path: path, problem: "head size \(headDim) must be even for rotary embeddings") }
        self.heads = heads
        self.kvHeads = kvHeads

        let rope = c["rope_theta"] ?? .double(10000)
        c["rope_theta"] = nil
        c["rope_parameters"] = .object(JSONObject([("rope_theta", rope), ("rope_type", .string("default"))]))
        if let ropeKeys = mapping.ropeKeys {
            for (k, v) in ropeKeys(rope, layers) { c[k] = v }
        } else if mapping.listsLayerTypes {
            c["layer_types"] = .array(Array(repeating: .string("full_attention"), count: layers))
        }
        let tied = file.info(GGUFArchitectureMapping.head.gguf) == nil
        c["tie_word_embeddings"] = .bool(tied)
        c["model_type"] = .string(mapping.modelType)
        c["architectures"] = .array([.string(mapping.hfClass)])
        c["dtype"] = .string("float32")
        c["transformers_version"] = .string(Self.transformersVersion)
        config = c

        // Every tensor the model needs, with the shape the config implies; nothing else may be in the file.
        let (q, kv) = (heads * headDim, kvHeads * headDim)
        func shape(_ hf: String) -> [Int] {
            GGUFArchitectureMapping.shape(of: hf, vocab: vocab, hidden: hidden, q: q, kv: kv, intermediate: intermediate, headDim: headDim)
        }
        var plan: [(gguf: String, hf: String, shape: [Int])] = []
        for (g, h) in mapping.tensorNames(layers: layers, tied: tied) {
            guard let info = file.info(g) else { throw GGUFError.missingTensor(path: path, tensor: g) }
            guard info.shape == shape(h) else { throw GGUFError.tensorShapeMismatch(path: path, tensor: g, expected: shape(h), found: info.shape) }
            plan.append((g, h, info.shape))
        }
        let known = Set(plan.map(\.gguf))
        if let extra = file.tensors.first(where: { !known.contains($0.name) }) {
            if extra.name == "rope_freqs.weight" {
                throw GGUFError.invalidModel(path: path, problem: "rope_freqs.weight (per-dimension rotary factors, Llama 3.1-style rope scaling) is not supported")
            }
            throw GGUFError.unexpectedTensor(path: path, tensor: extra.name, architecture: arch)
        }
        tensors = plan
    }

    /// The tensor as Hugging Face holds it, f32: dequantized, for Q and K of a llama-layout file with
    /// the rotary permutation undone, and for Gemma's norms with llama.cpp's +1 taken off (in f32, as
    /// transformers does: (w + 1) − 1 need not be w).
    public func readTensor(_ t: (gguf: String, hf: String, shape: [Int]), into out: UnsafeMutableBufferPointer<Float>) throws {
        let permuteHeads: Int? = !mapping.permutesQK ? nil
            : t.gguf.contains(".attn_q.") ? heads : t.gguf.contains(".attn_k.") ? kvHeads : nil
        guard let n = permuteHeads else {
            try file.readFloats(t.gguf, into: out)
            let shift = mapping.shift(ofGGUFTensor: t.gguf)
            if shift != 0 { for i in out.indices { out[i] -= shift } }
            return
        }
        var raw = [Float](repeating: 0, count: out.count)
        try raw.withUnsafeMutableBufferPointer { try file.readFloats(t.gguf, into: $0) }
        QKPermutation.reverse(raw, heads: n, rows: t.shape[0], into: out)
    }

    /// generation_config.json as `GenerationConfig.from_model_config(config).save_pretrained` writes it.
    public var generationConfig: JSONValue {
        var g = JSONObject()
        g["_from_model_config"] = .bool(true)
        for k in ["bos_token_id", "eos_token_id", "pad_token_id"] {
            if let v = config[k], !v.isNull { g[k] = v }
        }
        g["output_attentions"] = .bool(false)
        g["output_hidden_states"] = .bool(false)
        g["transformers_version"] = .string(Self.transformersVersion)
        g["use_cache"] = .bool(true)
        return .object(g)
    }

    /// Writes the folder atomically: built under a temporary name beside `directory`, then renamed. An
    /// existing folder is replaced, unless `replaceExisting` is false: then one that appeared meanwhile
    /// (another process converting the same file into a cache) is kept and ours discarded.
    public func write(to directory: String, replaceExisting: Bool = true) throws {
        let fm = FileManager.default
        let tokenizer = try GGUFTokenizerImport(file: file, mapping: mapping)
        let parent = (directory as NSString).deletingLastPathComponent
        try fm.createDirectory(atPath: parent.isEmpty ? "." : parent, withIntermediateDirectories: true)
        let staging = directory + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: staging)
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        do {
            var writer = SafeTensorsWriter()
            for t in tensors {
                let count = t.shape.reduce(1, *)
                try writer.add(t.hf, dtype: .f32, shape: t.shape, source: .floatProducer(count: count) { emit in
                    var buffer = [Float](repeating: 0, count: count)
                    try buffer.withUnsafeMutableBufferPointer { b in
                        try self.readTensor(t, into: b)
                        try emit(UnsafeBufferPointer(b))
                    }
                })
            }
            try writer.writeCheckpoint(to: staging)
            func path(_ name: String) -> String { (staging as NSString).appendingPathComponent(name) }
            try JSONValue.object(config).write(to: path("config.json"))
            try generationConfig.write(to: path("generation_config.json"))
            // tokenizers' own layout (serde pretty-printing: indent 2, ": ", UTF-8 as is).
            try tokenizer.tokenizerJSON.write(to: path("tokenizer.json"), writer: JSONWriter(indent: 2, pythonSeparators: true), trailingNewline: false)
            try tokenizer.tokenizerConfig.write(to: path("tokenizer_config.json"), writer: JSONWriter(indent: 2, sortKeys: true, pythonSeparators: true))
            if fm.fileExists(atPath: directory) && !replaceExisting {
                try? fm.removeItem(atPath: staging)
            } else {
                try AtomicFile.replaceDirectory(directory, with: staging)
            }
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
    }
}

/// llama.cpp stores Q and K rows of each head as interleaved rotary pairs (x0, x_{d/2}, x1, x_{d/2+1}, …);
/// Hugging Face's rotate-half layout has the two halves apart. Row `h·d + 2j + t` of the GGUF tensor is row
/// `h·d + t·d/2 + j` of the Hugging Face one (llama.cpp's `permute`; transformers' `reverse_permute`).
public enum QKPermutation {
    /// GGUF rows → Hugging Face rows.
    public static func reverse(_ src: [Float], heads: Int, rows: Int, into dst: UnsafeMutableBufferPointer<Float>) {
        let cols = src.count / rows, d = rows / heads, half = d / 2
        src.withUnsafeBufferPointer { s in
            for h in 0..<heads {
                for j in 0..<half {
                    for t in 0..<2 {
                        let from = (h * d + 2 * j + t) * cols, to = (h * d + t * half + j) * cols
                        for c in 0..<cols { dst[to + c] = s[from + c] }
                    }
                }
            }
        }
    }

    /// Hugging Face rows → GGUF rows (for export).
    public static func forward(_ src: UnsafeBufferPointer<Float>, heads: Int, rows: Int, into dst: UnsafeMutableBufferPointer<Float>) {
        let cols = src.count / rows, d = rows / heads, half = d / 2
        for h in 0..<heads {
            for j in 0..<half {
                for t in 0..<2 {
                    let to = (h * d + 2 * j + t) * cols, from = (h * d + t * half + j) * cols
                    for c in 0..<cols { dst[to + c] = src[from + c] }
                }
            }
        }
    }
}
