import Foundation
import Formats
import Models
import SafeTensors

/// A Hugging Face model (config.json, weights, tokenizer files) as the GGUF file llama.cpp's
/// convert_hf_to_gguf.py writes: llama.cpp's architecture name, `{arch}.*` keys and tensor names (all from
/// `GGUFArchitectureMapping`, the table import reads, run backwards), Q/K rows permuted into llama.cpp's
/// interleaved rotary layout for llama-layout families, Gemma's norm weights + 1 (llama.cpp's norm_shift),
/// keys transformers ignores but llama.cpp writes (`exportOnlyKeys`), the tokenizer and chat template in metadata
/// (`GGUFTokenizerExport`), and the tensors as F32/F16/BF16/Q8_0 with llama.cpp's rule for which stay F32
/// (norms and other 1-D tensors) and its F16 fallback for rows that are not whole Q8_0 blocks.
/// `GGUFToHuggingFace` of the result gives back the config and (for F32) the identical weights.
public struct GGUFFromHuggingFace {
    public let mapping: GGUFArchitectureMapping
    /// (GGUF name, Hugging Face name, PyTorch shape) in state-dict order.
    public let tensors: [(gguf: String, hf: String, shape: [Int])]
    /// Every metadata key except general.file_type, which depends on the type written.
    public let architectureMetadata: [(key: String, value: GGUFValue)]
    public let tokenizerMetadata: [(key: String, value: GGUFValue)]
    public let heads: Int
    public let kvHeads: Int

    /// llama.cpp stores these as f32 whatever config.json's JSON number looks like.
    static let floatKeys: Set<String> = ["rope.freq_base", "attention.layer_norm_rms_epsilon"]

    /// `config` is config.json (either transformers layout), `available` the source's tensors with their
    /// shapes, `tokenizerFolder` where tokenizer.json lives; `source` names the model in errors.
    public init(config: JSONObject, available: [String: [Int]], tokenizerFolder: String, source: String, name: String? = nil) throws {
        func fail(_ problem: String) -> GGUFError { .exportUnsupported(source: source, problem: problem) }
        let type = config["model_type"]?.stringValue ?? "none"
        guard let mapping = ModelRegistry.ggufFamily(modelType: type) else {
            throw fail("model_type '\(type)' has no GGUF export (supported: \(ModelRegistry.ggufFamilies.map(\.modelType).joined(separator: ", ")))")
        }
        self.mapping = mapping
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            if let v = config[key], !v.isNull {
                guard let i = v.intValue, i > 0 else { throw fail("config.json \(key) must be a positive integer, found \(v)") }
                return i
            }
            guard let d else { throw fail("config.json has no \(key)") }
            return d
        }
        let hidden = try int("hidden_size"), layers = try int("num_hidden_layers"), heads = try int("num_attention_heads")
        let kvHeads = try int("num_key_value_heads", default: heads), intermediate = try int("intermediate_size")
        let vocab = try int("vocab_size"), headDim = try int("head_dim", default: hidden / heads)
        guard heads % kvHeads == 0 else { throw fail("\(kvHeads) key/value heads do not divide \(heads) attention heads") }
        self.heads = heads
        self.kvHeads = kvHeads
        if let act = config["hidden_act"]?.stringValue, act != "silu" { throw fail("hidden_act '\(act)': llama.cpp's \(mapping.ggufArchitecture) uses silu") }
        for key in ["mlp_bias"] + (mapping.qkvBias ? [] : ["attention_bias"]) where config[key]?.boolValue == true {
            throw fail("\(key) is true: llama.cpp's \(mapping.ggufArchitecture) has no such biases")
        }
        // The head size transformers will build from the file: the file's where it reads one, else its
        // config class's default, else hidden / heads.
        if !mapping.configKeys.contains(where: { $0.hf == "head_dim" }) {
            let readBack = mapping.configDefaults.first { $0.0 == "head_dim" }?.1.intValue ?? hidden / heads
            if headDim != readBack {
                throw fail("head_dim \(headDim): transformers reads \(mapping.ggufArchitecture) GGUF files with head_dim \(readBack) (hidden_size / num_attention_heads or its config default), so the weights would not fit")
            }
        }
        if let refusal = mapping.exportRefusal?(config) { throw fail(refusal) }
        // rope_theta: transformers 4 keeps it at the top, 5 inside rope_parameters (or rope_scaling); Gemma's
        // global layers' (llama.cpp's `rope_parameters.get("full_attention", rope_parameters)`).
        let rope = config["rope_parameters"]?["full_attention"] ?? config["rope_parameters"] ?? config["rope_scaling"]
        if let ropeType = rope?["rope_type"]?.stringValue ?? rope?["type"]?.stringValue, ropeType != "default" {
            throw fail("rope_type '\(ropeType)' (scaled rotary embeddings) is not written to GGUF; only the default rotary embedding is")
        }
        let ropeTheta = config["rope_theta"]?.doubleValue ?? rope?["rope_theta"]?.doubleValue ?? 10000

        var resolved = config
        for (k, v) in mapping.exportDefaults where resolved[k] == nil || resolved[k]!.isNull { resolved[k] = v }
        resolved["rope_theta"] = .double(ropeTheta)
        resolved["num_key_value_heads"] = .int(Int64(kvHeads))
        resolved["head_dim"] = .int(Int64(headDim))
        let arch = mapping.ggufArchitecture
        var meta: [(String, GGUFValue)] = [("general.architecture", .string(arch)), ("general.type", .string("model"))]
        // A family told apart by general.name (transformers' Mistral rule) must be written with that name.
        let modelName = mapping.generalName ?? name ?? config["_model_name_or_path"]?.stringValue
        if let modelName, !modelName.isEmpty { meta.append(("general.name", .string(modelName))) }
        for (g, h) in mapping.configKeys + mapping.exportOnlyKeys {
            guard let v = resolved[h], !v.isNull else { continue }
            if Self.floatKeys.contains(g) {
                guard let d = v.doubleValue else { throw fail("config.json \(h) must be a number, found \(v)") }
                meta.append(("\(arch).\(g)", .float32(Float(d))))
            } else {
                guard let i = v.intValue, i >= 0, i <= Int(UInt32.max) else { throw fail("config.json \(h) must be an integer that fits in 32 bits, found \(v)") }
                meta.append(("\(arch).\(g)", .uint32(UInt32(i))))
            }
        }
        architectureMetadata = meta
        tokenizerMetadata = try GGUFTokenizerExport(folder: tokenizerFolder, config: config, vocabSize: vocab).metadata

        // The tensors the table names, each of the shape the config implies; nothing else may be there.
        // Without the key, the weights say: a separate head means untied (config classes disagree on the default).
        let tied = config["tie_word_embeddings"]?.boolValue ?? (available[GGUFArchitectureMapping.head.hf] == nil)
        let (q, kv) = (heads * headDim, kvHeads * headDim)
        func shape(_ hf: String) -> [Int] {
            GGUFArchitectureMapping.shape(of: hf, vocab: vocab, hidden: hidden, q: q, kv: kv, intermediate: intermediate, headDim: headDim)
        }
        var plan: [(gguf: String, hf: String, shape: [Int])] = []
        for (g, h) in mapping.tensorNames(layers: layers, tied: tied) {
            guard let s = available[h] else { throw fail("the weights have no '\(h)', which a \(type) model needs") }
            guard s == shape(h) else { throw fail("'\(h)' has shape \(s), config.json implies \(shape(h))") }
            plan.append((g, h, s))
        }
        let known = Set(plan.map(\.hf))
        if let extra = available.keys.sorted().first(where: { !known.contains($0) }) {
            throw fail("tensor '\(extra)' has no place in a \(arch) GGUF file")
        }
        tensors = plan
    }

    /// From a Hugging Face folder: config.json, model.safetensors (or shards), tokenizer files beside them.
    public init(folder: String) throws {
        let config = try JSONValue.read(path: (folder as NSString).appendingPathComponent("config.json"))
        guard let object = config.objectValue else { throw GGUFError.exportUnsupported(source: folder, problem: "config.json is not a JSON object") }
        let store = try CheckpointReader(path: folder)
        var available: [String: [Int]] = [:]
        for n in store.names { available[n] = store.info(n)!.shape }
        try self.init(config: object, available: available, tokenizerFolder: folder, source: folder)
    }

    /// The type a tensor is written as for a file of `type`: llama.cpp keeps 1-D tensors F32, and a row
    /// length that is not whole blocks falls back to F16.
    public static func tensorType(shape: [Int], requested type: GGMLType) -> GGMLType {
        if shape.count <= 1 { return .f32 }
        return shape.last! % type.blockSize == 0 ? type : .f16
    }

    /// Writes the file atomically. `read` fills a buffer with a tensor's f32 values by Hugging Face name.
    @discardableResult
    public func write(to path: String, type: GGMLType,
                      read: @escaping (_ hfName: String, _ into: UnsafeMutableBufferPointer<Float>) throws -> Void) throws -> [GGMLType: Int] {
        guard Quantize.writable.contains(type), let fileType = type.fileType else {
            throw GGUFError.exportUnsupported(source: path, problem: "\(type.name) is not a type export writes (F32, F16, BF16, Q8_0)")
        }
        var writer = GGUFWriter()
        for (k, v) in architectureMetadata { writer.add(k, v) }
        writer.add("general.file_type", .uint32(fileType))
        writer.add("general.quantization_version", .uint32(2))
        for (k, v) in tokenizerMetadata { writer.add(k, v) }
        var counts: [GGMLType: Int] = [:]
        for t in tensors {
            let tensorType = Self.tensorType(shape: t.shape, requested: type)
            counts[tensorType, default: 0] += t.shape.reduce(1, *)
            let permuteHeads: Int? = !mapping.permutesQK ? nil
                : t.gguf.contains(".attn_q.") ? heads : t.gguf.contains(".attn_k.") ? kvHeads : nil
            let (hf, shape) = (t.hf, t.shape)
            let shift = mapping.shift(ofGGUFTensor: t.gguf)
            try writer.addTensor(t.gguf, type: tensorType, shape: shape) { out in
                let count = shape.reduce(1, *)
                var values = [Float](repeating: 0, count: count)
                try values.withUnsafeMutableBufferPointer { try read(hf, $0) }
                if shift != 0 { for i in values.indices { values[i] += shift } }  // llama.cpp's norm_shift, in f32
                if let n = permuteHeads {
                    var permuted = [Float](repeating: 0, count: count)
                    values.withUnsafeBufferPointer { src in
                        permuted.withUnsafeMutableBufferPointer { QKPermutation.forward(src, heads: n, rows: shape[0], into: $0) }
                    }
                    values = permuted
                }
                values.withUnsafeBufferPointer { Quantize.quantize(tensorType, $0, into: out) }
            }
        }
        try writer.write(to: path)
        return counts
    }
}
