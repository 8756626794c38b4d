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

/// Vocabulary keys are the tokens' Unicode scalars: Swift `String` equality and hashing follow canonical
/// equivalence ("n\u{303}" == "ñ"), while HF compares bytes, so String keys would find tokens HF does not.
typealias TokenKey = [UInt32]

/// Ids at or above this are refused (TransformerConfig.Limits.vocabSize is the same bound on the model side).
let maxVocabularyId = 1 << 24

/// Reads a `{"token": id}` vocabulary object, or takes the one json-c already read.
func readVocab(_ r: ComponentReader, preloaded: [TokenKey: Int]? = nil) throws -> (ids: [TokenKey: Int], tokens: [TokenKey?]) {
    var ids: [TokenKey: Int]
    if let preloaded {
        ids = preloaded
    } else {
        let object = try r.object("vocab")
        ids = [:]
        ids.reserveCapacity(object.count)
        for (token, v) in object {
            guard let id = v.intValue else { throw TokenizerError.invalidField(file: r.file, path: r.path + ".vocab." + token, expected: "an integer id", found: v.kindName) }
            ids[scalars(token)] = id
        }
    }
    var maxId = -1
    for (t, id) in ids {
        guard id >= 0 else { throw TokenizerError.invalidField(file: r.file, path: r.path + ".vocab." + string(t), expected: "a non-negative id", found: "\(id)") }
        // The id table below has maxId + 1 slots: an id of 10^12 would ask for terabytes.
        guard id < maxVocabularyId else {
            throw TokenizerError.invalidField(file: r.file, path: r.path + ".vocab." + string(t), expected: "an id below \(maxVocabularyId)", found: "\(id)")
        }
        maxId = max(maxId, id)
    }
    // Token strings are made on demand (idToToken): building 50k Strings up front is a tenth of load time.
    var tokens = [TokenKey?](repeating: nil, count: maxId + 1)
    for (t, id) in ids { tokens[id] = t }
    return (ids, tokens)
}

/// Byte-pair encoding: start from characters (or `<0xNN>` byte tokens), then repeatedly apply the
/// lowest-ranked merge, leftmost first, exactly as HF's `Word::merge_all` priority queue does.
final class BPEModel: TokenizerModel, @unchecked Sendable {
    let vocab: [TokenKey: Int]
    let tokens: [TokenKey?]
    /// (left id << 32 | right id) → (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
    let unkId: Int?
    let continuingSubwordPrefix: TokenKey?
    let endOfWordSuffix: TokenKey?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    /// Byte-level vocabularies give every single-scalar token an id; this answers those lookups without hashing.
    private var singleScalarIds: [Int32]
    /// `<0xNN>` ids by byte (nil entries: that byte token is missing); nil unless `byte_fallback`.
    private var byteFallbackIds: [Int?]?
    private var cache: [[UInt32]: [Int]] = [:]
    private let cacheLock = NSLock()
    private static let cacheCapacity = 100_000
    /// Words longer than this are neither cached nor merged by linear scans.
    private static let linearScanLimit = 128

    var vocabSize: Int { tokens.count }
    var typeName: String { "BPE" }

    init(_ r: ComponentReader, preloaded: PreloadedModelTables? = nil) throws {
        let (vocab, tokens) = try readVocab(r, preloaded: preloaded?.vocab)
        self.vocab = vocab
        self.tokens = tokens
        let unk = try r.string("unk_token", default: nil)
        unkId = unk.flatMap { vocab[scalars($0)] }
        continuingSubwordPrefix = try r.string("continuing_subword_prefix", default: nil).map(scalars)
        endOfWordSuffix = try r.string("end_of_word_suffix", default: nil).map(scalars)
        fuseUnk = try r.bool("fuse_unk", default: false)
        byteFallback = try r.bool("byte_fallback", default: false)
        ignoreMerges = try r.bool("ignore_merges", default: false)
        let prefixLength = continuingSubwordPrefix?.count ?? 0  // in scalars
        var pairs: [(TokenKey, TokenKey)]
        if let preloadedMerges = preloaded?.merges {
            pairs = preloadedMerges
        } else {
            let list = try r.array("merges")
            pairs = []
            pairs.reserveCapacity(list.count)
            for (rank, m) in list.enumerated() {
                if let s = m.stringValue {
                    let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                    guard parts.count == 2 else { throw TokenizerError.invalidField(file: r.file, path: "\(r.path).merges[\(rank)]", expected: "\"left right\"", found: s.debugDescription) }
                    pairs.append((scalars(String(parts[0])), scalars(String(parts[1]))))
                } else if let a = m.arrayValue, a.count == 2, let x = a[0].stringValue, let y = a[1].stringValue {
                    pairs.append((scalars(x), scalars(y)))
                } else {
                    throw TokenizerError.invalidField(file: r.file, path: "\(r.path).merges[\(rank)]", expected: "a pair of strings", found: m.kindName)
                }
            }
        }
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        merges.reserveCapacity(pairs.count)
        for (rank, pair) in pairs.enumerated() {
            guard let a = vocab[pair.0], let b = vocab[pair.1] else {
                throw TokenizerError.inconsistentModel(file: r.file, message: "\(r.path).merges[\(rank)]: (\(string(pair.0).debugDescription), \(string(pair.1).debugDescription)) uses a token missing from the vocabulary")
            }
            let merged = pair.0 + pair.1.dropFirst(prefixLength)
            guard let id = vocab[merged] else {
                throw TokenizerError.inconsistentModel(file: r.file, message: "\(r.path).merges[\(rank)]: merged token \(string(merged).debugDescription) is missing from the vocabulary")
            }
            let key = UInt64(a) << 32 | UInt64(b)
            if merges[key] == nil { merges[key] = (Int32(rank), Int32(id)) }
        }
        self.merges = merges
        singleScalarIds = []
        if continuingSubwordPrefix == nil && endOfWordSuffix == nil {
            singleScalarIds = [Int32](repeating: -1, count: 512)
            for (t, id) in vocab where t.count == 1 {
                let v = Int(t[0])
                if v < 512 { singleScalarIds[v] = Int32(id) }
            }
        }
        if byteFallback {
            byteFallbackIds = (0..<256).map { vocab[scalars(String(format: "<0x%02X>", $0))] }
        }
    }

    func tokenToId(_ token: String) -> Int? { vocab[scalars(token)] }
    func idToToken(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id].map(string) : nil }

    func tokenize(_ word: [UInt32]) -> [Int] {
        if word.isEmpty { return [] }
        cacheLock.lock()
        let hit = cache[word]
        cacheLock.unlock()
        if let hit { return hit }
        let ids = tokenizeUncached(word)
        if word.count > Self.linearScanLimit { return ids }
        cacheLock.lock()
        if cache.count >= Self.cacheCapacity { cache.removeAll(keepingCapacity: true) }
        cache[word] = ids
        cacheLock.unlock()
        return ids
    }

    private func tokenizeUncached(_ word: [UInt32]) -> [Int] {
        if ignoreMerges, let id = vocab[word] { return [id] }
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
            var s: TokenKey = [v]
            if i > 0, let p = continuingSubwordPrefix { s = p + s }
            if i == word.count - 1, let x = endOfWordSuffix { s += x }
            if let id = vocab[s] {
                if let u = pendingUnk { out.append(u); pendingUnk = nil }
                out.append(id)
                continue
            }
            // HF falls back only when every byte of the character has its token (pending unks are not
            // flushed first, as in HF).
            if let table = byteFallbackIds {
                let ids = string(s).utf8.map { table[Int($0)] }
                if ids.allSatisfy({ $0 != nil }) {
                    out.append(contentsOf: ids.map { $0! })
                    continue
                }
            }
            if let unk = unkId {
                if pendingUnk != nil && !fuseUnk { out.append(pendingUnk!) }
                pendingUnk = unk
            }
        }
        if let u = pendingUnk { out.append(u) }
        return out
    }

    /// Applies merges lowest rank first, leftmost among equals. Most words are short and a linear scan for
    /// the best pair beats a heap; long ones (minified code, base64, digit runs) use the heap so the cost
    /// stays O(n log n).
    private func mergeAll(_ symbols: inout [Int]) {
        if symbols.count > Self.linearScanLimit { return mergeAllWithHeap(&symbols) }
        mergeAllLinear(&symbols)
    }

    /// Both merge strategies on the same symbols, for tests.
    func mergeBothWays(_ symbols: [Int]) -> (linear: [Int], heap: [Int]) {
        var a = symbols, b = symbols
        if a.count > 1 { mergeAllLinear(&a); mergeAllWithHeap(&b) }
        return (a, b)
    }

    /// Initial symbols of a word before merging, for tests.
    func symbolsForTesting(_ word: [UInt32]) -> [Int] { initialSymbols(word) }

    private func mergeAllLinear(_ symbols: inout [Int]) {
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

    /// HF's `Word::merge_all`: a min-heap of (rank, position) over a doubly linked list of symbols; stale
    /// entries (a side already merged away, or the pair changed) are skipped when popped.
    private func mergeAllWithHeap(_ symbols: inout [Int]) {
        let n = symbols.count
        var next = Array(1...n)
        next[n - 1] = -1
        var prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        @inline(__always) func push(_ i: Int) {
            let j = next[i]
            guard j >= 0, let m = merges[UInt64(symbols[i]) << 32 | UInt64(symbols[j])] else { return }
            heap.push(UInt64(UInt32(m.rank)) << 32 | UInt64(i))
        }
        for i in 0..<(n - 1) { push(i) }
        while let top = heap.pop() {
            let i = Int(top & 0xFFFF_FFFF), rank = Int32(top >> 32)
            let j = next[i]
            guard alive[i], j >= 0, let m = merges[UInt64(symbols[i]) << 32 | UInt64(symbols[j])], m.rank == rank else { continue }
            symbols[i] = Int(m.id)
            alive[j] = false
            next[i] = next[j]
            if next[j] >= 0 { prev[next[j]] = i }
            if prev[i] >= 0 { push(prev[i]) }
            push(i)
        }
        var out: [Int] = []
        var i = 0
        while i >= 0 { out.append(symbols[i]); i = next[i] }
        symbols = out
    }
}

/// A binary min-heap of packed (rank << 32 | position) keys.
struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ x: UInt64) {
        items.append(x)
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            if items[p] <= items[c] { break }
            items.swapAt(p, c)
            c = p
        }
    }

    mutating func pop() -> UInt64? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if items.isEmpty { return first }
        items[0] = last
        var p = 0
        while true {
            let l = 2 * p + 1, r = l + 1
            var m = p
            if l < items.count && items[l] < items[m] { m = l }
            if r < items.count && items[r] < items[m] { m = r }
            if m == p { break }
            items.swapAt(p, m)
            p = m
        }
        return first
    }
}
