import Foundation
import Formats

/// Turns one pre-tokenized word into ids, and maps ids back to token strings.
protocol TokenizerModel: AnyObject, Sendable {
    func tokenize(_ word: [UInt32]) -> [Int]
    func tokenToId(_ token: String) -> Int?
    func idToToken(_ id: Int) -> String?
    var vocabSize: Int { get }
    var typeName: String { get }
}

/// Reads a `{"token": id}` vocabulary object.
func readVocab(_ r: ComponentReader) throws -> (ids: [String: Int], tokens: [String?]) {
    let object = try r.object("vocab")
    var ids: [String: Int] = [:]
    ids.reserveCapacity(object.count)
    var maxId = -1
    for (token, v) in object {
        guard let id = v.intValue, id >= 0 else { throw TokenizerError.invalidField(file: r.file, path: r.path + ".vocab." + token, expected: "a non-negative integer id", found: v.kindName) }
        ids[token] = id
        maxId = max(maxId, id)
    }
    var tokens = [String?](repeating: nil, count: maxId + 1)
    for (t, id) in ids { tokens[id] = t }
    return (ids, tokens)
}

/// Byte-pair encoding: start from characters (or `<0xNN>` byte tokens), then repeatedly apply the
/// lowest-ranked merge, leftmost first, exactly as HF's `Word::merge_all` priority queue does.
final class BPEModel: TokenizerModel, @unchecked Sendable {
    let vocab: [String: Int]
    let tokens: [String?]
    /// (left id << 32 | right id) → (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
    let unkId: Int?
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    /// Byte-level vocabularies give every single-scalar token an id; this answers those lookups without hashing.
    private var singleScalarIds: [Int32]
    private var byteFallbackIds: [Int]?
    private var cache: [[UInt32]: [Int]] = [:]
    private let cacheLock = NSLock()
    private static let cacheCapacity = 100_000

    var vocabSize: Int { tokens.count }
    var typeName: String { "BPE" }

    init(_ r: ComponentReader) throws {
        let (vocab, tokens) = try readVocab(r)
        self.vocab = vocab
        self.tokens = tokens
        let unk = try r.string("unk_token", default: nil)
        unkId = unk.flatMap { vocab[$0] }
        continuingSubwordPrefix = try r.string("continuing_subword_prefix", default: nil)
        endOfWordSuffix = try r.string("end_of_word_suffix", default: nil)
        fuseUnk = try r.bool("fuse_unk", default: false)
        byteFallback = try r.bool("byte_fallback", default: false)
        ignoreMerges = try r.bool("ignore_merges", default: false)
        let prefixLength = continuingSubwordPrefix?.count ?? 0
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        let list = try r.array("merges")
        merges.reserveCapacity(list.count)
        for (rank, m) in list.enumerated() {
            let pair: (String, String)
            if let s = m.stringValue {
                let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw TokenizerError.invalidField(file: r.file, path: "\(r.path).merges[\(rank)]", expected: "\"left right\"", found: s.debugDescription) }
                pair = (String(parts[0]), String(parts[1]))
            } else if let a = m.arrayValue, a.count == 2, let x = a[0].stringValue, let y = a[1].stringValue {
                pair = (x, y)
            } else {
                throw TokenizerError.invalidField(file: r.file, path: "\(r.path).merges[\(rank)]", expected: "a pair of strings", found: m.kindName)
            }
            guard let a = vocab[pair.0], let b = vocab[pair.1] else {
                throw TokenizerError.inconsistentModel(file: r.file, message: "\(r.path).merges[\(rank)]: \(pair) uses a token missing from the vocabulary")
            }
            let merged = pair.0 + String(pair.1.dropFirst(prefixLength))
            guard let id = vocab[merged] else {
                throw TokenizerError.inconsistentModel(file: r.file, message: "\(r.path).merges[\(rank)]: merged token \(merged.debugDescription) is missing from the vocabulary")
            }
            let key = UInt64(a) << 32 | UInt64(b)
            if merges[key] == nil { merges[key] = (Int32(rank), Int32(id)) }
        }
        self.merges = merges
        singleScalarIds = []
        if continuingSubwordPrefix == nil && endOfWordSuffix == nil {
            singleScalarIds = [Int32](repeating: -1, count: 512)
            for (t, id) in vocab where t.unicodeScalars.count == 1 {
                let v = Int(t.unicodeScalars.first!.value)
                if v < 512 { singleScalarIds[v] = Int32(id) }
            }
        }
        if byteFallback {
            let ids = (0..<256).map { vocab[String(format: "<0x%02X>", $0)] }
            if ids.allSatisfy({ $0 != nil }) { byteFallbackIds = ids.map { $0! } }
        }
    }

    func tokenToId(_ token: String) -> Int? { vocab[token] }
    func idToToken(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    func tokenize(_ word: [UInt32]) -> [Int] {
        if word.isEmpty { return [] }
        cacheLock.lock()
        let hit = cache[word]
        cacheLock.unlock()
        if let hit { return hit }
        let ids = tokenizeUncached(word)
        cacheLock.lock()
        if cache.count >= Self.cacheCapacity { cache.removeAll(keepingCapacity: true) }
        cache[word] = ids
        cacheLock.unlock()
        return ids
    }

    private func tokenizeUncached(_ word: [UInt32]) -> [Int] {
        if ignoreMerges, let id = vocab[string(word)] { return [id] }
        var symbols = initialSymbols(word)
        if symbols.count > 1 { mergeAll(&symbols) }
        return symbols
    }

    private func initialSymbols(_ word: [UInt32]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(word.count)
        var pendingUnk: Int? = nil
        for (i, v) in word.enumerated() {
            if !singleScalarIds.isEmpty && v < 512 && singleScalarIds[Int(v)] >= 0 {
                if let u = pendingUnk { out.append(u); pendingUnk = nil }
                out.append(Int(singleScalarIds[Int(v)]))
                continue
            }
            var s = string([v])
            if i > 0, let p = continuingSubwordPrefix { s = p + s }
            if i == word.count - 1, let x = endOfWordSuffix { s += x }
            if let id = vocab[s] {
                if let u = pendingUnk { out.append(u); pendingUnk = nil }
                out.append(id)
                continue
            }
            if let bytes = byteFallbackIds {
                for b in s.utf8 { out.append(bytes[Int(b)]) }
                continue
            }
            if let unk = unkId {
                if pendingUnk != nil && !fuseUnk { out.append(pendingUnk!) }
                pendingUnk = unk
            }
        }
        if let u = pendingUnk { out.append(u) }
        return out
    }

    /// Applies merges lowest rank first, leftmost among equals. Words are short, so a linear scan for the
    /// best pair beats a heap.
    private func mergeAll(_ symbols: inout [Int]) {
        var ranks = [Int32](repeating: .max, count: symbols.count)
        var mergedIds = [Int32](repeating: -1, count: symbols.count)
        @inline(__always) func lookup(_ i: Int) {
            if let m = merges[UInt64(symbols[i]) << 32 | UInt64(symbols[i + 1])] {
                ranks[i] = m.rank; mergedIds[i] = m.id
            } else {
                ranks[i] = .max
            }
        }
        for i in 0..<(symbols.count - 1) { lookup(i) }
        while symbols.count > 1 {
            var best = -1
            var bestRank = Int32.max
            for i in 0..<(symbols.count - 1) where ranks[i] < bestRank { bestRank = ranks[i]; best = i }
            if best < 0 { break }
            symbols[best] = Int(mergedIds[best])
            symbols.remove(at: best + 1)
            ranks.remove(at: best + 1)
            mergedIds.remove(at: best + 1)
            if best + 1 < symbols.count { lookup(best) } else { ranks[best] = .max }
            if best > 0 { lookup(best - 1) }
        }
    }
}
