import Formats
import Models
import Tokenizers

/// Rebuilds a Hugging Face tokenizer (tokenizer.json and tokenizer_config.json) from a GGUF file's
/// `tokenizer.ggml.*` metadata, exactly as transformers 5.23 does (`get_gguf_tokenizer`,
/// `convert_gguf_tokenizer` and the TokenizersBackend it feeds), so the ids are transformers' ids:
/// - `gpt2` (byte-level BPE): tokens not written in the byte alphabet are respelled through it, merges come
///   from the file, ByteLevel pre-tokenizer (or the file's `pre` split regex) and decoder;
/// - `llama` (SentencePiece): tokens as spelled, merges from the file or recovered from the scores
///   (`generate_merges`), byte fallback, Metaspace pre-tokenizer and the Replace/ByteFallback/Fuse/Strip decoder.
/// Control tokens and the named special tokens become special added tokens, user-defined ones plain added
/// tokens; the post-processor adds BOS/EOS as `add_bos_token`/`add_eos_token` say (SentencePiece files
/// add BOS unless they say otherwise).
public struct GGUFTokenizerImport {
    public let tokenizerJSON: JSONValue
    public let tokenizerConfig: JSONValue

    /// `tokenizer.ggml.model`: llama.cpp's tokenizer kind (named after the models that introduced
    /// them; not a model_type).
    public enum Kind: String, CaseIterable, Sendable {
        case byteLevelBPE = "gpt2"
        case sentencePiece = "llama"
    }
    public static let supportedModels = Kind.allCases.map(\.rawValue)

    /// The split regexes transformers applies for `tokenizer.ggml.pre` (GGUF_PRE_TOKENIZER_SPLITS).
    static let llama3Split = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Split = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let tekkenSplit = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt4oSplit = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// The name export writes for each split (one llama.cpp pre-tokenizer type per regex).
    static let canonicalPreNames: [(name: String, split: String)] = [
        ("llama-bpe", llama3Split), ("qwen2", qwen2Split), ("gpt-4o", gpt4oSplit), ("tekken", tekkenSplit),
    ]
    static let preSplits: [String: String] = {
        var m: [String: String] = [:]
        for p in ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe"] { m[p] = llama3Split }
        for p in ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"] { m[p] = qwen2Split }
        for p in ["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"] { m[p] = gpt4oSplit }
        m["tekken"] = tekkenSplit
        return m
    }()

    public init(file: GGUFFile, mapping: GGUFArchitectureMapping) throws {
        let path = file.path
        let model = try file.string("tokenizer.ggml.model", expected: "the tokenizer kind: gpt2 or llama")
        guard let kind = Kind(rawValue: model) else {
            throw GGUFError.unsupportedTokenizer(path: path, model: model, supported: Self.supportedModels)
        }
        guard var tokens = try file.optionalArray("tokenizer.ggml.tokens", of: "strings", \.string) else {
            throw GGUFError.missingKey(path: path, key: "tokenizer.ggml.tokens", expected: "the vocabulary")
        }
        let style: GGUFArchitectureMapping.SentencePieceStyle? = kind == .sentencePiece ? mapping.sentencePieceStyle : nil
        // Gemma files spell all-space tokens with real spaces; GemmaTokenizer looks them up as ▁s.
        if style == .gemma { tokens = tokens.map(Self.gemmaSpelling) }
        let types = try file.optionalArray("tokenizer.ggml.token_type", of: "integers", \.int) ?? []
        let merges = try file.optionalArray("tokenizer.ggml.merges", of: "strings", \.string)
        func tokenId(_ key: String) throws -> Int? {
            guard let id = try file.optionalInt("tokenizer.ggml.\(key)") else { return nil }
            guard id >= 0 && id < tokens.count else {
                throw GGUFError.invalidValue(path: path, key: "tokenizer.ggml.\(key)", problem: "\(id) is not a token id (the vocabulary has \(tokens.count))")
            }
            return id
        }
        let special = try [("bos_token", tokenId("bos_token_id")), ("eos_token", tokenId("eos_token_id")),
                           ("unk_token", tokenId("unknown_token_id")), ("pad_token", tokenId("padding_token_id"))]
        let addBOS = try file.optionalBool("tokenizer.ggml.add_bos_token") ?? (kind == .sentencePiece)
        let addEOS = try file.optionalBool("tokenizer.ggml.add_eos_token") ?? false

        // The vocabulary: a Python dict {token: index}, so a repeated token keeps its last index.
        let byteLevel = kind == .byteLevelBPE
        let spelled = byteLevel ? tokens.map(Self.byteLevelSpelling) : tokens
        var vocab = ExactDictionary()
        for (i, t) in spelled.enumerated() { vocab[t] = i }

        var mergePairs: [(String, String)]
        if let merges {
            mergePairs = try merges.enumerated().map { i, m in
                // Split on the space scalar, as Python does: a space followed by a combining mark is one
                // Swift Character, which a Character split would not see.
                let parts = m.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw GGUFError.invalidTokenizer(path: path, problem: "tokenizer.ggml.merges[\(i)] '\(m)' is not two tokens separated by one space")
                }
                return (String(String.UnicodeScalarView(parts[0])), String(String.UnicodeScalarView(parts[1])))
            }
        } else if style == .gemma {
            // Gemma's scores do not follow its merge order; transformers ranks by file position instead.
            mergePairs = MergeRecovery.merges(tokens: spelled, vocab: vocab, scores: spelled.indices.map { -Double($0) })
        } else {
            guard let scores = try file.optionalArray("tokenizer.ggml.scores", of: "floats", \.double) else {
                throw GGUFError.missingKey(path: path, key: "tokenizer.ggml.merges", expected: "the BPE merges, or tokenizer.ggml.scores to recover them from")
            }
            guard scores.count == tokens.count else {
                throw GGUFError.invalidTokenizer(path: path, problem: "\(scores.count) scores for \(tokens.count) tokens")
            }
            mergePairs = MergeRecovery.merges(tokens: spelled, vocab: vocab, scores: scores)
        }

        // Added tokens: control tokens (for a byte-level vocabulary only those written in its alphabet;
        // others are llama.cpp mislabels), the named special tokens, then user-defined ones as plain tokens.
        var added: [Int: Bool] = [:]  // id → special
        for (i, t) in tokens.enumerated() where i < types.count && types[i] == 4 {
            if let id = vocab[t] { added[id] = false }
        }
        for (i, t) in tokens.enumerated() where i < types.count && types[i] == 3 {
            if !byteLevel || Self.isByteLevelSpelled(t), let id = vocab[t] { added[id] = true }
        }
        // The named ones are added by their text as the file spells it; one outside a byte-level alphabet
        // would get a new id past the model's vocabulary, so it is refused rather than invented.
        for (name, id) in special {
            guard let id else { continue }
            guard let v = vocab[tokens[id]] else {
                throw GGUFError.invalidTokenizer(path: path, problem: "\(name) '\(tokens[id])' (id \(id)) is not spelled in the byte-level alphabet, so transformers would add it past the vocabulary")
            }
            added[v] = true
        }
        // GemmaTokenizer adds its own special tokens by name; one the vocabulary lacks would get an id past it.
        if style == .gemma {
            for name in Self.gemmaSpecials {
                guard let id = vocab[name] else {
                    throw GGUFError.invalidTokenizer(path: path, problem: "'\(name)' is not in the vocabulary: transformers' GemmaTokenizer would add it past the model's embedding rows")
                }
                added[id] = true
            }
        }

        var o = JSONObject()
        o["version"] = .string("1.0")
        o["truncation"] = .null
        o["padding"] = .null
        o["added_tokens"] = .array(added.keys.sorted().map { id in
            .object(JSONObject([("id", .int(Int64(id))), ("content", .string(spelled[id])), ("single_word", .bool(false)),
                                ("lstrip", .bool(false)), ("rstrip", .bool(false)), ("normalized", .bool(false)),
                                ("special", .bool(added[id]!))]))
        })
        let space = JSONValue.object(JSONObject([("String", .string(" "))]))
        let replaceSpace = JSONValue.object(JSONObject([("type", .string("Replace")), ("pattern", space), ("content", .string("\u{2581}"))]))
        switch style {
        case .prependNormalizer?:
            o["normalizer"] = .object(JSONObject([("type", .string("Sequence")), ("normalizers", .array([
                .object(JSONObject([("type", .string("Prepend")), ("prepend", .string("\u{2581}"))])), replaceSpace]))]))
        case .gemma?: o["normalizer"] = replaceSpace
        default: o["normalizer"] = .null
        }
        let pre = try file.optionalString("tokenizer.ggml.pre")
        if let pre, let split = Self.preSplits[pre] {
            o["pre_tokenizer"] = .object(JSONObject([("type", .string("Sequence")), ("pretokenizers", .array([
                .object(JSONObject([("type", .string("Split")), ("pattern", .object(JSONObject([("Regex", .string(split))]))),
                                    ("behavior", .string("Isolated")), ("invert", .bool(false))])),
                Self.byteLevel(addPrefixSpace: false, useRegex: false),
            ]))]))
        } else if byteLevel {
            o["pre_tokenizer"] = Self.byteLevel(addPrefixSpace: false, useRegex: true)
        } else if style == .prependNormalizer {
            o["pre_tokenizer"] = .null
        } else if style == .gemma {
            o["pre_tokenizer"] = .object(JSONObject([("type", .string("Split")), ("pattern", space),
                                                     ("behavior", .string("MergedWithPrevious")), ("invert", .bool(false))]))
        } else {
            o["pre_tokenizer"] = .object(JSONObject([("type", .string("Metaspace")), ("replacement", .string("\u{2581}")),
                                                     ("prepend_scheme", .string("first")), ("split", .bool(false))]))
        }
        let bos = special[0].1.map { tokens[$0] }, eos = special[1].1.map { tokens[$0] }
        o["post_processor"] = Self.template(bos: addBOS ? bos.map { ($0, vocab[$0]!) } : nil,
                                            eos: addEOS ? eos.map { ($0, vocab[$0]!) } : nil)
        if byteLevel {
            o["decoder"] = Self.byteLevel(addPrefixSpace: true, useRegex: true)
        } else {
            o["decoder"] = .object(JSONObject([("type", .string("Sequence")), ("decoders", .array([
                .object(JSONObject([("type", .string("Replace")), ("pattern", .object(JSONObject([("String", .string("\u{2581}"))]))), ("content", .string(" "))])),
                .object(JSONObject([("type", .string("ByteFallback"))])),
                .object(JSONObject([("type", .string("Fuse"))])),
            ] + (style == .gemma ? [] : [
                .object(JSONObject([("type", .string("Strip")), ("content", .string(" ")), ("start", .int(1)), ("stop", .int(0))])),
            ])))]))
        }
        var m = JSONObject()
        m["type"] = .string("BPE")
        m["dropout"] = .null
        m["unk_token"] = style == .gemma ? .string("<unk>") : .null
        m["continuing_subword_prefix"] = byteLevel ? .string("") : .null
        m["end_of_word_suffix"] = byteLevel ? .string("") : .null
        m["fuse_unk"] = .bool(!byteLevel)
        m["byte_fallback"] = .bool(!byteLevel)
        m["ignore_merges"] = .bool(false)
        var v = JSONObject()
        for (t, id) in vocab.inInsertionOrder { v[t] = .int(Int64(id)) }
        m["vocab"] = .object(v)
        m["merges"] = .array(mergePairs.map { .array([.string($0.0), .string($0.1)]) })
        o["model"] = .object(m)
        tokenizerJSON = .object(o)

        var c = JSONObject()
        c["backend"] = .string("tokenizers")
        for (name, id) in special { c[name] = id.map { .string(tokens[$0]) } ?? .null }
        c["tokenizer_class"] = .string(mapping.tokenizerClass)
        for (k, value) in mapping.tokenizerConfigExtras { c[k] = value }
        if let template = try file.optionalString("tokenizer.chat_template") { c["chat_template"] = .string(template) }
        tokenizerConfig = .object(c)
    }

    /// GemmaTokenizer's own special tokens (its unk, bos, eos, pad and mask defaults).
    static let gemmaSpecials = ["<unk>", "<bos>", "<eos>", "<pad>", "<mask>"]

    /// transformers' Gemma respelling: a token of spaces and other whitespace, holding at least one space,
    /// becomes as many ▁ as it has characters (`"\u2581" * len(t) if " " in t and not t.strip()`).
    static func gemmaSpelling(_ token: String) -> String {
        let scalars = token.unicodeScalars
        guard scalars.contains(" "), scalars.allSatisfy(isPythonWhitespace) else { return token }
        return String(repeating: "\u{2581}", count: scalars.count)
    }

    /// Python's str.isspace for one code point: Unicode White_Space plus the four ASCII separators 0x1C-0x1F.
    static func isPythonWhitespace(_ s: Unicode.Scalar) -> Bool {
        s.properties.isWhitespace || (0x1C...0x1F).contains(s.value)
    }

    static func byteLevel(addPrefixSpace: Bool, useRegex: Bool) -> JSONValue {
        .object(JSONObject([("type", .string("ByteLevel")), ("add_prefix_space", .bool(addPrefixSpace)),
                            ("trim_offsets", .bool(true)), ("use_regex", .bool(useRegex))]))
    }

    /// transformers' `update_post_processor`: `[bos:0] $A:0 [eos:0]`, and for pairs `[bos:1] $B:1 [eos:1]` after.
    static func template(bos: (String, Int)?, eos: (String, Int)?) -> JSONValue {
        func special(_ t: String, _ typeId: Int) -> JSONValue {
            .object(JSONObject([("SpecialToken", .object(JSONObject([("id", .string(t)), ("type_id", .int(Int64(typeId)))])))]))
        }
        func sequence(_ s: String, _ typeId: Int) -> JSONValue {
            .object(JSONObject([("Sequence", .object(JSONObject([("id", .string(s)), ("type_id", .int(Int64(typeId)))])))]))
        }
        var single: [JSONValue] = [], pair: [JSONValue] = []
        if let bos { single.append(special(bos.0, 0)) }
        single.append(sequence("A", 0))
        if let eos { single.append(special(eos.0, 0)) }
        pair = single
        if let bos { pair.append(special(bos.0, 1)) }
        pair.append(sequence("B", 1))
        if let eos { pair.append(special(eos.0, 1)) }
        var tokens = JSONObject()
        for (t, id) in [bos, eos].compactMap({ $0 }).sorted(by: { JSONWriter.pythonKeyOrder($0.0, $1.0) }) {
            tokens[t] = .object(JSONObject([("id", .string(t)), ("ids", .array([.int(Int64(id))])), ("tokens", .array([.string(t)]))]))
        }
        return .object(JSONObject([("type", .string("TemplateProcessing")), ("single", .array(single)),
                                   ("pair", .array(pair)), ("special_tokens", .object(tokens))]))
    }

    /// A byte-level vocabulary entry as transformers keys it: unchanged when every character is in the byte
    /// alphabet, else its UTF-8 bytes respelled through it (`bytes_to_unicode`).
    static func byteLevelSpelling(_ token: String) -> String {
        if isByteLevelSpelled(token) { return token }
        var s = String.UnicodeScalarView()
        for b in token.utf8 { s.append(Unicode.Scalar(ByteLevelMap.byteToScalar[Int(b)])!) }
        return String(s)
    }

    static func isByteLevelSpelled(_ token: String) -> Bool {
        token.unicodeScalars.allSatisfy { $0.value < 324 && ByteLevelMap.scalarToByte[Int($0.value)] >= 0 }
    }
}

extension GGUFFile {
    public func optionalString(_ key: String) throws -> String? {
        guard let v = self[key] else { return nil }
        guard let s = v.string else { throw GGUFError.wrongValueType(path: path, key: key, expected: "a string", found: v.summary) }
        return s
    }
}

/// A String-keyed dictionary comparing keys by their exact Unicode scalars, as Python does (Swift's String
/// equality is canonical equivalence, under which distinct tokens such as "é" and "e\u{301}" collide),
/// remembering the order keys were first inserted (a Python dict's order).
struct ExactDictionary {
    private var index: [[UInt32]: Int] = [:]
    private var keys: [String] = []
    private var values: [Int] = []

    subscript(key: String) -> Int? {
        get { index[key.unicodeScalars.map(\.value)].map { values[$0] } }
        set {
            let k = key.unicodeScalars.map(\.value)
            if let at = index[k] { values[at] = newValue! } else { index[k] = keys.count; keys.append(key); values.append(newValue!) }
        }
    }

    func contains(scalars: ArraySlice<UInt32>) -> Int? { index[Array(scalars)].map { values[$0] } }

    var inInsertionOrder: Zip2Sequence<[String], [Int]> { zip(keys, values) }
}

/// transformers' `generate_merges(vocab, vocab_scores)` for SentencePiece files without merges: every split
/// of every token into two vocabulary pieces is a merge ranked by the token's score (higher first), ties by
/// the lengths of the two pieces (longer first), then by their order of discovery (Python's stable sort):
/// tokens in order of first appearance, each token's splits ordered by the ids of (left, right).
enum MergeRecovery {
    static func merges(tokens: [String], vocab: ExactDictionary, scores: [Double]) -> [(String, String)] {
        // dict(zip(tokens, scores)): first-appearance order, last score.
        var scoreOf = ExactDictionary()
        var order: [String] = []
        var lastScore: [Double] = []
        for (t, s) in zip(tokens, scores) {
            if let at = scoreOf[t] { lastScore[at] = s } else { scoreOf[t] = order.count; order.append(t); lastScore.append(s) }
        }
        struct Candidate { let left: String; let right: String; let score: Double; let leftCount: Int; let rightCount: Int; let rank: Int }
        var all: [Candidate] = []
        for (t, score) in zip(order, lastScore) {
            let scalars = t.unicodeScalars.map(\.value)
            var local: [(Candidate, Int, Int)] = []
            for cut in 1..<max(1, scalars.count) {
                guard let l = vocab.contains(scalars: scalars[..<cut]), let r = vocab.contains(scalars: scalars[cut...]) else { continue }
                let left = String(String.UnicodeScalarView(scalars[..<cut].map { Unicode.Scalar($0)! }))
                let right = String(String.UnicodeScalarView(scalars[cut...].map { Unicode.Scalar($0)! }))
                local.append((Candidate(left: left, right: right, score: score, leftCount: cut, rightCount: scalars.count - cut, rank: 0), l, r))
            }
            let sorted = local.enumerated().sorted { a, b in
                (a.element.1, a.element.2, a.offset) < (b.element.1, b.element.2, b.offset)
            }
            for (_, c) in sorted {
                all.append(Candidate(left: c.0.left, right: c.0.right, score: c.0.score, leftCount: c.0.leftCount,
                                     rightCount: c.0.rightCount, rank: all.count))
            }
        }
        all.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.leftCount != b.leftCount { return a.leftCount > b.leftCount }
            if a.rightCount != b.rightCount { return a.rightCount > b.rightCount }
            return a.rank < b.rank
        }
        return all.map { ($0.left, $0.right) }
    }
}
