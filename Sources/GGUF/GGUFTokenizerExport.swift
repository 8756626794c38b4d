import Foundation
import Formats
import Models

/// A Hugging Face tokenizer (tokenizer.json, tokenizer_config.json, chat_template.jinja) as the
/// `tokenizer.*` metadata llama.cpp's convert_hf_to_gguf.py writes for it, chosen so that
/// `GGUFTokenizerImport` (transformers' GGUF tokenizer conversion) rebuilds the same tokenizer.json:
/// - byte-level BPE → `gpt2`: tokens by id, types (3 control = special added token, 4 user-defined = other
///   added token, 1 normal, 5 unused for ids the tokenizer lacks, spelled `[PADn]` as llama.cpp does), merges,
///   and `tokenizer.ggml.pre` from the pre-tokenizer (the split regexes import knows, `gpt-2` for plain ByteLevel,
///   `smollm` for individual digits then ByteLevel);
/// - byte-fallback BPE with Metaspace (SentencePiece-style) → `llama`: tokens, types (2 unknown, 6 byte),
///   merges (which transformers prefers) and scores (−rank of the merge making the token, for llama.cpp's
///   SentencePiece tokenizer that merges by score).
/// Special token ids come from tokenizer_config.json, then config.json (SpecialVocab's order); add_bos/add_eos
/// from the post-processor's template.
public struct GGUFTokenizerExport {
    public let metadata: [(key: String, value: GGUFValue)]

    /// `folder` holds tokenizer.json (and optionally tokenizer_config.json, chat_template.jinja);
    /// `config` is the model's config.json, `vocabSize` its embedding rows.
    public init(folder: String, config: JSONObject, vocabSize: Int) throws {
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        let tokenizerPath = path("tokenizer.json")
        guard FileManager.default.fileExists(atPath: tokenizerPath) else {
            throw GGUFError.exportUnsupported(source: folder, problem: "no tokenizer.json: a GGUF file must carry its tokenizer")
        }
        let tj = try JSONValue.read(path: tokenizerPath)
        let tc = FileManager.default.fileExists(atPath: path("tokenizer_config.json")) ? try JSONValue.read(path: path("tokenizer_config.json")) : nil
        func bad(_ problem: String) -> GGUFError { .invalidTokenizer(path: tokenizerPath, problem: problem) }

        guard let model = tj["model"], model["type"]?.stringValue == "BPE",
              let vocab = model["vocab"]?.objectValue, let mergeList = model["merges"]?.arrayValue else {
            throw GGUFError.exportUnsupported(source: tokenizerPath, problem: "only BPE tokenizers (byte-level or SentencePiece-style) can be written to GGUF, found model type \(tj["model"]?["type"]?.stringValue ?? "none")")
        }
        let byteFallback = model["byte_fallback"]?.boolValue ?? false
        let pre = tj["pre_tokenizer"]
        let preName: String?
        var spacePrefix = false
        if byteFallback {
            // The three ways transformers spells a SentencePiece vocabulary (GGUFTokenizerImport's styles).
            switch Self.sentencePieceStyle(normalizer: tj["normalizer"], pre: pre) {
            case .metaspace?: spacePrefix = ["first", "always"].contains(pre?["prepend_scheme"]?.stringValue ?? "always")
            case .prependNormalizer?: spacePrefix = true
            case .gemma?: spacePrefix = false
            case nil:
                throw GGUFError.exportUnsupported(source: tokenizerPath, problem: "a byte-fallback BPE needs a Metaspace pre-tokenizer, a Prepend(▁)+Replace normalizer or Gemma's Replace normalizer with a space split to be a SentencePiece (llama) vocabulary, found pre-tokenizer \(pre?["type"]?.stringValue ?? "none") and normalizer \(tj["normalizer"]?["type"]?.stringValue ?? "none")")
            }
            preName = nil
        } else {
            preName = try Self.preTokenizerName(pre, path: tokenizerPath)
        }

        // Tokens by id: the model vocabulary, then added tokens (which win, as in tokenizers).
        var tokens = [String?](repeating: nil, count: vocabSize)
        func place(_ token: String, _ id: Int) throws {
            guard id >= 0 && id < vocabSize else { throw bad("token '\(token)' has id \(id), outside the model's \(vocabSize) embedding rows") }
            tokens[id] = token
        }
        for (t, v) in vocab {
            guard let id = v.intValue else { throw bad("vocab entry '\(t)' has no integer id") }
            try place(t, id)
        }
        var addedSpecial: [Int: Bool] = [:]
        for a in tj["added_tokens"]?.arrayValue ?? [] {
            guard let id = a["id"]?.intValue, let content = a["content"]?.stringValue else { throw bad("an added token without id or content") }
            try place(content, id)
            addedSpecial[id] = a["special"]?.boolValue ?? false
        }
        let names = tokens.enumerated().map { $1 ?? "[PAD\($0)]" }
        var idOf: [String: Int] = [:]
        for (i, t) in names.enumerated() where tokens[i] != nil && idOf[t] == nil { idOf[t] = i }

        // Named special tokens: tokenizer_config.json, else config.json.
        func named(_ key: String, configKey: String) throws -> Int? {
            if let v = tc?[key], !v.isNull {
                guard let text = v.stringValue ?? v["content"]?.stringValue else { throw bad("tokenizer_config.json \(key) is neither a string nor an added-token object") }
                guard let id = idOf[text] else { throw bad("tokenizer_config.json \(key) '\(text)' is not in the vocabulary") }
                return id
            }
            let c = config[configKey]
            return c?.intValue ?? c?.arrayValue?.first?.intValue
        }
        let bos = try named("bos_token", configKey: "bos_token_id")
        let eos = try named("eos_token", configKey: "eos_token_id")
        let unk = try named("unk_token", configKey: "unk_token_id")
        let pad = try named("pad_token", configKey: "pad_token_id")
        let (addBOS, addEOS) = Self.templateAdds(tj["post_processor"], bos: bos.map { names[$0] }, eos: eos.map { names[$0] })

        var merges: [String] = []
        merges.reserveCapacity(mergeList.count)
        for (i, m) in mergeList.enumerated() {
            if let s = m.stringValue { merges.append(s); continue }
            guard let pair = m.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue else {
                throw bad("merges[\(i)] is neither \"a b\" nor a pair of strings")
            }
            guard !a.unicodeScalars.contains(" ") && !b.unicodeScalars.contains(" ") else { throw bad("merges[\(i)] ('\(a)', '\(b)') contains a space, which GGUF's \"a b\" merges cannot hold") }
            merges.append(a + " " + b)
        }

        var types: [GGUFValue] = []
        types.reserveCapacity(vocabSize)
        for (i, t) in tokens.enumerated() {
            let type: Int32
            if t == nil { type = 5 }
            else if let special = addedSpecial[i] { type = i == unk && byteFallback ? 2 : special ? 3 : 4 }
            else if i == unk && byteFallback { type = 2 }
            else if byteFallback && Self.isByteToken(t!) { type = 6 }
            else { type = 1 }
            types.append(.int32(type))
        }

        var m: [(String, GGUFValue)] = []
        m.append(("tokenizer.ggml.model", .string((byteFallback ? GGUFTokenizerImport.Kind.sentencePiece : .byteLevelBPE).rawValue)))
        if let preName { m.append(("tokenizer.ggml.pre", .string(preName))) }
        m.append(("tokenizer.ggml.tokens", .array(elementType: .string, values: names.map { .string($0) })))
        if byteFallback {
            // −rank of the merge that makes a token; tokens no merge makes (bytes, single characters,
            // specials) rank below every merge so llama.cpp's score-ordered merging follows the BPE ranks.
            var score = [Float](repeating: -Float(merges.count), count: vocabSize)
            for (rank, merge) in merges.enumerated().reversed() {
                if let id = idOf[merge.replacingOccurrences(of: " ", with: "")] { score[id] = -Float(rank) }
            }
            m.append(("tokenizer.ggml.scores", .array(elementType: .float32, values: score.map { .float32($0) })))
        }
        m.append(("tokenizer.ggml.token_type", .array(elementType: .int32, values: types)))
        m.append(("tokenizer.ggml.merges", .array(elementType: .string, values: merges.map { .string($0) })))
        for (key, id) in [("bos_token_id", bos), ("eos_token_id", eos), ("unknown_token_id", unk), ("padding_token_id", pad)] {
            if let id {
                guard id >= 0 && id < vocabSize else { throw bad("\(key) \(id) is outside the vocabulary of \(vocabSize)") }
                m.append(("tokenizer.ggml.\(key)", .uint32(UInt32(id))))
            }
        }
        m.append(("tokenizer.ggml.add_bos_token", .bool(addBOS)))
        m.append(("tokenizer.ggml.add_eos_token", .bool(addEOS)))
        if byteFallback {
            m.append(("tokenizer.ggml.add_space_prefix", .bool(spacePrefix)))
        } else {
            m.append(("tokenizer.ggml.add_space_prefix", .bool(Self.byteLevel(in: pre)?["add_prefix_space"]?.boolValue ?? false)))
        }
        if let template = try Self.chatTemplate(folder: folder, config: tc) { m.append(("tokenizer.chat_template", .string(template))) }
        metadata = m
    }

    /// llama.cpp's `tokenizer.ggml.pre` for a byte-level pre-tokenizer, from the same split table import reads.
    static func preTokenizerName(_ pre: JSONValue?, path: String) throws -> String {
        let parts = pre?["type"]?.stringValue == "Sequence" ? pre?["pretokenizers"]?.arrayValue ?? [] : pre.map { [$0] } ?? []
        let kinds = parts.map { $0["type"]?.stringValue ?? "?" }
        if kinds == ["ByteLevel"], parts[0]["use_regex"]?.boolValue ?? true { return "gpt-2" }
        if kinds == ["Digits", "ByteLevel"], parts[0]["individual_digits"]?.boolValue == true, parts[1]["use_regex"]?.boolValue ?? true {
            return "smollm"
        }
        if kinds == ["Split", "ByteLevel"], parts[1]["use_regex"]?.boolValue == false,
           let regex = parts[0]["pattern"]?["Regex"]?.stringValue,
           let name = GGUFTokenizerImport.canonicalPreNames.first(where: { $0.split == regex })?.name {
            return name
        }
        throw GGUFError.exportUnsupported(source: path, problem: "pre-tokenizer \(kinds.joined(separator: " → ")) has no llama.cpp pre-tokenizer type (known: ByteLevel, Digits → ByteLevel, and the llama3/qwen2/gpt-4o/tekken splits)")
    }

    /// Which SentencePiece layout a byte-fallback tokenizer.json has, if any.
    static func sentencePieceStyle(normalizer: JSONValue?, pre: JSONValue?) -> GGUFArchitectureMapping.SentencePieceStyle? {
        func isReplaceSpace(_ v: JSONValue?) -> Bool {
            v?["type"]?.stringValue == "Replace" && v?["pattern"]?["String"]?.stringValue == " " && v?["content"]?.stringValue == "\u{2581}"
        }
        if pre?["type"]?.stringValue == "Metaspace" { return .metaspace }
        let parts = normalizer?["type"]?.stringValue == "Sequence" ? normalizer?["normalizers"]?.arrayValue ?? [] : []
        if pre == nil || pre!.isNull, parts.count == 2, parts[0]["type"]?.stringValue == "Prepend",
           parts[0]["prepend"]?.stringValue == "\u{2581}", isReplaceSpace(parts[1]) {
            return .prependNormalizer
        }
        if pre?["type"]?.stringValue == "Split", pre?["pattern"]?["String"]?.stringValue == " ", isReplaceSpace(normalizer) { return .gemma }
        return nil
    }

    static func byteLevel(in pre: JSONValue?) -> JSONValue? {
        if pre?["type"]?.stringValue == "ByteLevel" { return pre }
        return pre?["pretokenizers"]?.arrayValue?.first { $0["type"]?.stringValue == "ByteLevel" }
    }

    /// Whether the post-processor's single-sequence template starts with BOS / ends with EOS.
    static func templateAdds(_ post: JSONValue?, bos: String?, eos: String?) -> (Bool, Bool) {
        var template = post
        if post?["type"]?.stringValue == "Sequence" {
            template = post?["processors"]?.arrayValue?.first { $0["type"]?.stringValue == "TemplateProcessing" }
        }
        guard template?["type"]?.stringValue == "TemplateProcessing", let single = template?["single"]?.arrayValue else { return (false, false) }
        func special(_ v: JSONValue?) -> String? { v?["SpecialToken"]?["id"]?.stringValue }
        let first = special(single.first), last = special(single.last)
        return (first != nil && first == bos, last != nil && last == eos && single.count > 1)
    }

    static func isByteToken(_ t: String) -> Bool {
        let u = Array(t.utf8)
        guard u.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">") else { return false }
        return u[3...4].allSatisfy { (48...57).contains($0) || (65...70).contains($0) }
    }

    /// tokenizer_config.json's chat_template (a string, or transformers' list of named templates: the
    /// default one), else chat_template.jinja.
    static func chatTemplate(folder: String, config: JSONValue?) throws -> String? {
        if let t = config?["chat_template"] {
            if let s = t.stringValue { return s }
            if let list = t.arrayValue {
                return list.first { $0["name"]?.stringValue == "default" }?["template"]?.stringValue ?? list.first?["template"]?.stringValue
            }
        }
        let jinja = (folder as NSString).appendingPathComponent("chat_template.jinja")
        guard let data = FileManager.default.contents(atPath: jinja) else { return nil }
        guard let s = String(data: data, encoding: .utf8) else {
            throw GGUFError.invalidTokenizer(path: jinja, problem: "is not UTF-8")
        }
        return s
    }
}
