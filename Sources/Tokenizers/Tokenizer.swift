import Foundation
import Formats

/// A Hugging Face `tokenizer.json` pipeline: added tokens → normalizer → pre-tokenizer → model →
/// post-processor, and the decoder for the way back. Ids match HF `tokenizers` 0.23; `decode` matches
/// transformers' `PreTrainedTokenizerFast.decode` (including `clean_up_tokenization_spaces`).
/// Safe to use from several threads (the BPE word cache is locked).
public final class Tokenizer: @unchecked Sendable {
    public let config: TokenizerConfig?
    /// Where the tokenizer came from, for messages.
    public let source: String
    public let addedTokens: [AddedToken]

    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let model: TokenizerModel
    let postProcessor: PostProcessor?
    let decoder: Decoder?
    private let rawTokenMatcher: AddedTokenMatcher
    private let normalizedTokenMatcher: AddedTokenMatcher
    private let addedById: [Int: AddedToken]
    private let addedByContent: [String: Int]
    private let specialContents: Set<String>

    /// Reads `tokenizer.json`, plus `tokenizer_config.json` and `chat_template.jinja` when present. The
    /// pipeline is exactly tokenizer.json's, as HF `tokenizers` runs it.
    public static func load(directory: String) throws -> Tokenizer {
        try load(directory: directory, transformersClassPipeline: false)
    }

    /// As `load(directory:)`; with
    /// `transformersClassPipeline`, classes that transformers 5 rebuilds from vocab and merges are rebuilt
    /// the same way, so ids equal `AutoTokenizer`'s: today `LlamaTokenizer(Fast)` (see `LlamaClassPipeline`).
    public static func load(directory: String, transformersClassPipeline: Bool) throws -> Tokenizer {
        let path = URL(fileURLWithPath: directory).appendingPathComponent("tokenizer.json").path
        let config = try TokenizerConfig.load(directory: directory)
        if let (json, tables) = try TokenizerFileReader.read(path: path) {
            return try Tokenizer(json: json, config: config, source: path, preloaded: tables,
                                 transformersClassPipeline: transformersClassPipeline)
        }
        // json-c could not read it: go through JSONValue for a message that says where and why.
        return try Tokenizer(json: try readJSONFile(path), config: config, source: path, preloaded: nil,
                             transformersClassPipeline: transformersClassPipeline)
    }

    /// Builds the pipeline from a parsed `tokenizer.json`; `source` names the file in errors.
    /// Prefer `load(directory:)`: `JSONValue` objects merge canonically equivalent keys, so a vocabulary with
    /// both "é" and "e\u{301}" is only read exactly from the file.
    public convenience init(json: JSONValue, config: TokenizerConfig?, source: String) throws {
        try self.init(json: json, config: config, source: source, preloaded: nil, transformersClassPipeline: false)
    }

    init(json: JSONValue, config: TokenizerConfig?, source: String, preloaded: PreloadedModelTables?,
         transformersClassPipeline: Bool) throws {
        guard json.objectValue != nil else {
            throw TokenizerError.malformed(file: source, message: "expected a JSON object at the top level, found \(json.kindName)")
        }
        let root = ComponentReader(file: source, path: "tokenizer", value: json)
        self.config = config
        self.source = source
        guard let modelReader = root.child("model") else {
            throw TokenizerError.malformed(file: source, message: "no \"model\" section")
        }
        model = try makeModel(modelReader, preloaded: preloaded)
        postProcessor = try root.child("post_processor").map(makePostProcessor)
        if transformersClassPipeline, let config, let llama = LlamaClassPipeline(config: config), model is BPEModel {
            normalizer = nil
            preTokenizer = llama.preTokenizer
            decoder = llama.decoder
        } else {
            normalizer = try root.child("normalizer").map(makeNormalizer)
            preTokenizer = try root.child("pre_tokenizer").map(makePreTokenizer)
            decoder = try root.child("decoder").map(makeDecoder)
        }
        addedTokens = try readAddedTokens(root)
        rawTokenMatcher = AddedTokenMatcher(addedTokens.filter { !$0.normalized })
        normalizedTokenMatcher = AddedTokenMatcher(addedTokens.filter { $0.normalized })
        var byId: [Int: AddedToken] = [:]
        var byContent: [String: Int] = [:]
        for t in addedTokens { byId[t.id] = t; byContent[t.content] = t.id }
        addedById = byId
        addedByContent = byContent
        specialContents = Set(addedTokens.filter(\.special).map(\.content))
    }

    // MARK: - Encoding

    /// Token ids for `text`; `addSpecialTokens` applies the post-processor's template (BOS/CLS/...).
    /// Throws only for a tokenizer with a user regex (a Split or Replace pattern no built-in scanner
    /// covers) that exhausts its backtracking budget on this text.
    public func encode(_ text: String, addSpecialTokens: Bool = true) throws -> [Int] {
        let ids = try encodeSequence(text)
        return postProcessor?.process(ids, nil, addSpecialTokens: addSpecialTokens) ?? ids
    }

    /// Token ids for a pair of sequences (the post-processor's `pair` template).
    public func encode(_ text: String, pair: String, addSpecialTokens: Bool = true) throws -> [Int] {
        let a = try encodeSequence(text), b = try encodeSequence(pair)
        return postProcessor?.process(a, b, addSpecialTokens: addSpecialTokens) ?? a + b
    }

    private func encodeSequence(_ text: String) throws -> [Int] {
        let input = scalars(text)
        var out: [Int] = []
        out.reserveCapacity(input.count / 3 + 4)
        for (range, id) in rawTokenMatcher.split(input) {
            if let id { out.append(id); continue }
            var segment = Array(input[range])
            if let normalizer { segment = try normalizer.normalize(segment) }
            for (inner, innerId) in normalizedTokenMatcher.split(segment) {
                if let innerId { out.append(innerId); continue }
                let piece = PreToken(text: Array(segment[inner]), isFirst: range.lowerBound == 0 && inner.lowerBound == 0)
                if let preTokenizer {
                    for word in try preTokenizer.preTokenize(piece) { out += model.tokenize(word.text) }
                } else {
                    out += model.tokenize(piece.text)
                }
            }
        }
        return out
    }

    // MARK: - Decoding

    /// Text for `ids`, equal to transformers' `tokenizer.decode(ids, skip_special_tokens:)`.
    /// Throws only where `encode` can: a decoder's user regex that exhausts its backtracking budget.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let t = idToToken(id) else { continue }
            if skipSpecialTokens && specialContents.contains(t) { continue }
            tokens.append(t)
        }
        var text = try decoder.map { try $0.decode(tokens).joined() } ?? tokens.joined(separator: " ")
        // transformers 5 skips the cleanup for BPE models because it corrupts their spacing.
        if config?.cleanUpTokenizationSpaces == true && model.typeName != "BPE" {
            text = wordPieceCleanup(text, doNot: false)
        }
        return text
    }

    // MARK: - Vocabulary

    public func tokenToId(_ token: String) -> Int? { addedByContent[token] ?? model.tokenToId(token) }
    public func idToToken(_ id: Int) -> String? { addedById[id]?.content ?? model.idToToken(id) }

    /// Size of the vocabulary including added tokens (transformers' `len(tokenizer)`).
    public var vocabSize: Int {
        model.vocabSize + addedTokens.filter { model.tokenToId($0.content) == nil }.count
    }

    /// The largest id `encode` can produce, with its token: the model vocabulary's last id or an added
    /// token's (an added token may carry any id, not just the next free one).
    public var largestId: (id: Int, token: String)? {
        var best: (id: Int, token: String)? = model.vocabSize > 0 ? (model.vocabSize - 1, model.idToToken(model.vocabSize - 1) ?? "") : nil
        for t in addedTokens where t.id > (best?.id ?? -1) { best = (t.id, t.content) }
        return best
    }

    /// Ids of the added tokens marked special.
    public var specialTokenIds: Set<Int> { Set(addedTokens.filter(\.special).map(\.id)) }

    public var bosToken: String? { config?.bosToken }
    public var eosToken: String? { config?.eosToken }
    public var padToken: String? { config?.padToken }
    public var unkToken: String? { config?.unkToken }
    public var bosTokenId: Int? { bosToken.flatMap(tokenToId) }
    public var eosTokenId: Int? { eosToken.flatMap(tokenToId) }
    public var padTokenId: Int? { padToken.flatMap(tokenToId) }
    public var unkTokenId: Int? { unkToken.flatMap(tokenToId) }

    /// Every id that ends generation according to the tokenizer files: the configured EOS. (A model's
    /// generation_config.json may list more; callers merge those in.)
    public var eosTokenIds: [Int] { eosTokenId.map { [$0] } ?? [] }

    /// The Jinja source of the default chat template, if any (rendering lives elsewhere).
    public var chatTemplateSource: String? { config?.chatTemplate }
    public var modelType: String { model.typeName }
}
