import Foundation
import Formats

/// BERT's greedy longest-match-first subword model.
final class WordPieceModel: TokenizerModel, @unchecked Sendable {
    let vocab: [TokenKey: Int]
    let tokens: [TokenKey?]
    let unkId: Int
    let prefix: TokenKey
    let maxInputCharsPerWord: Int
    var vocabSize: Int { tokens.count }
    var typeName: String { "WordPiece" }

    init(_ r: ComponentReader, preloaded: PreloadedModelTables? = nil) throws {
        (vocab, tokens) = try readVocab(r, preloaded: preloaded?.vocab)
        let unk = try r.string("unk_token", default: "[UNK]")!
        guard let id = vocab[scalars(unk)] else { throw TokenizerError.inconsistentModel(file: r.file, message: "\(r.path): unk_token \(unk.debugDescription) is not in the vocabulary") }
        unkId = id
        prefix = scalars(try r.string("continuing_subword_prefix", default: "##")!)
        maxInputCharsPerWord = try r.int("max_input_chars_per_word", default: 100)!
    }

    func tokenToId(_ token: String) -> Int? { vocab[scalars(token)] }
    func idToToken(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id].map(string) : nil }

    func tokenize(_ word: [UInt32]) -> [Int] {
        if word.isEmpty { return [] }
        if word.count > maxInputCharsPerWord { return [unkId] }
        var out: [Int] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int? = nil
            while start < end {
                var piece = Array(word[start..<end])
                if start > 0 { piece = prefix + piece }
                if let id = vocab[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unkId] }
            out.append(id)
            start = end
        }
        return out
    }
}

/// A plain word → id table.
final class WordLevelModel: TokenizerModel, @unchecked Sendable {
    let vocab: [TokenKey: Int]
    let tokens: [TokenKey?]
    let unkId: Int?
    var vocabSize: Int { tokens.count }
    var typeName: String { "WordLevel" }

    init(_ r: ComponentReader, preloaded: PreloadedModelTables? = nil) throws {
        let (vocab, tokens) = try readVocab(r, preloaded: preloaded?.vocab)
        self.vocab = vocab
        self.tokens = tokens
        unkId = try r.string("unk_token", default: nil).flatMap { vocab[scalars($0)] }
    }

    func tokenToId(_ token: String) -> Int? { vocab[scalars(token)] }
    func idToToken(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id].map(string) : nil }

    func tokenize(_ word: [UInt32]) -> [Int] {
        if word.isEmpty { return [] }
        if let id = vocab[word] { return [id] }
        return unkId.map { [$0] } ?? []
    }
}

/// SentencePiece's unigram model: the Viterbi segmentation maximising the sum of piece log-probabilities.
/// Scalars no piece covers become `unk` (scored min − 10, consecutive ones fused) or, with `byte_fallback`,
/// their `<0xNN>` byte tokens.
final class UnigramModel: TokenizerModel, @unchecked Sendable {
    let vocab: [TokenKey: Int]
    let tokens: [String]
    let scores: [Double]
    let unkId: Int?
    let byteFallback: Bool
    let maxPieceScalars: Int
    private let unkScore: Double
    var vocabSize: Int { tokens.count }
    var typeName: String { "Unigram" }

    init(_ r: ComponentReader) throws {
        var vocab: [TokenKey: Int] = [:]
        var tokens: [String] = []
        var scores: [Double] = []
        var longest = 1
        for (i, e) in try r.array("vocab").enumerated() {
            guard let pair = e.arrayValue, pair.count == 2, let piece = pair[0].stringValue, let score = pair[1].doubleValue else {
                throw TokenizerError.invalidField(file: r.file, path: "\(r.path).vocab[\(i)]", expected: "[piece, score]", found: e.kindName)
            }
            if vocab[scalars(piece)] == nil { vocab[scalars(piece)] = i }
            tokens.append(piece)
            scores.append(score)
            longest = max(longest, piece.unicodeScalars.count)
        }
        self.vocab = vocab
        self.tokens = tokens
        self.scores = scores
        unkId = try r.int("unk_id", default: nil)
        if let unk = unkId, unk < 0 || unk >= tokens.count {
            throw TokenizerError.inconsistentModel(file: r.file, message: "\(r.path).unk_id \(unk) is outside the vocabulary of \(tokens.count) pieces")
        }
        byteFallback = try r.bool("byte_fallback", default: false)
        maxPieceScalars = longest
        unkScore = (scores.min() ?? 0) - 10.0
    }

    func tokenToId(_ token: String) -> Int? { vocab[scalars(token)] }
    func idToToken(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    func tokenize(_ word: [UInt32]) -> [Int] {
        let n = word.count
        if n == 0 { return [] }
        // bestScore[i], bestStart[i], bestId[i] describe the best path ending at scalar i.
        var bestScore = [Double](repeating: 0, count: n + 1)
        var bestStart = [Int](repeating: -1, count: n + 1)
        var bestId = [Int](repeating: -1, count: n + 1)
        for start in 0..<n {
            let base = bestScore[start]
            var hasSingle = false
            var piece: TokenKey = []
            for end in (start + 1)...min(n, start + maxPieceScalars) {
                piece.append(word[end - 1])
                guard let id = vocab[piece] else { continue }
                let candidate = base + scores[id]
                if bestStart[end] < 0 || candidate > bestScore[end] {
                    bestScore[end] = candidate; bestStart[end] = start; bestId[end] = id
                }
                if end == start + 1 { hasSingle = true }
            }
            if !hasSingle, let unk = unkId {
                let candidate = base + unkScore
                if bestStart[start + 1] < 0 || candidate > bestScore[start + 1] {
                    bestScore[start + 1] = candidate; bestStart[start + 1] = start; bestId[start + 1] = unk
                }
            }
        }
        // Backtrack; unknown stretches are fused into one piece.
        var pieces: [(Range<Int>, Int?)] = []
        var end = n
        var unkEnd = -1
        while end > 0 {
            let start = bestStart[end]
            if start < 0 { return unkId.map { [$0] } ?? [] }
            if bestId[end] == unkId {
                if unkEnd < 0 { unkEnd = end }
            } else {
                if unkEnd >= 0 { pieces.append((end..<unkEnd, nil)); unkEnd = -1 }
                pieces.append((start..<end, bestId[end]))
            }
            end = start
        }
        if unkEnd >= 0 { pieces.append((0..<unkEnd, nil)) }
        var out: [Int] = []
        for (range, id) in pieces.reversed() {
            if let id { out.append(id); continue }
            let piece = Array(word[range])
            if let id = vocab[piece] { out.append(id); continue }
            if byteFallback {
                let ids = string(piece).utf8.map { vocab[scalars(String(format: "<0x%02X>", $0))] }
                if ids.allSatisfy({ $0 != nil }) { out.append(contentsOf: ids.map { $0! }); continue }
            }
            if let unk = unkId { out.append(unk) }
        }
        return out
    }
}

func makeModel(_ r: ComponentReader, preloaded: PreloadedModelTables? = nil) throws -> TokenizerModel {
    // Files written by old tokenizers versions omit the model type; the fields then tell which it is.
    let given = r.value["type"].flatMap { $0.isNull ? nil : $0 } != nil ? try r.type(stage: "model") : nil
    let type = given ?? (r.value["merges"] != nil || preloaded?.merges != nil ? "BPE" : r.value["vocab"]?.arrayValue != nil ? "Unigram" : r.value["continuing_subword_prefix"] != nil ? "WordPiece" : "WordLevel")
    switch type {
    case "BPE": return try BPEModel(r, preloaded: preloaded)
    case "WordPiece": return try WordPieceModel(r, preloaded: preloaded)
    case "WordLevel": return try WordLevelModel(r, preloaded: preloaded)
    case "Unigram": return try UnigramModel(r)
    default: try r.unknown("model")
    }
}
