import Formats

/// An entry of tokenizer.json's `added_tokens`.
public struct AddedToken: Sendable, Equatable {
    public var id: Int
    public var content: String
    public var singleWord: Bool
    public var lstrip: Bool
    public var rstrip: Bool
    public var normalized: Bool
    public var special: Bool
}

/// Finds added tokens in text before the model runs, the way HF's `AddedVocabulary::find_matches` does:
/// leftmost-longest matching, then `single_word` filtering and `lstrip`/`rstrip` widening over whitespace.
struct AddedTokenMatcher: Sendable {
    private let tokens: [AddedToken]
    private let patterns: [[UInt32]]
    /// First scalar → indices into `tokens`, longest pattern first.
    private let byFirstScalar: [UInt32: [Int]]

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens
        let patterns = tokens.map { scalars($0.content) }
        var index: [UInt32: [Int]] = [:]
        for (i, p) in patterns.enumerated() where !p.isEmpty { index[p[0], default: []].append(i) }
        for k in index.keys { index[k]!.sort { patterns[$0].count > patterns[$1].count } }
        self.patterns = patterns
        byFirstScalar = index
    }

    var isEmpty: Bool { tokens.isEmpty }

    /// Splits `text` into stretches that are an added token (`id` set) and stretches that are not.
    func split(_ text: [UInt32]) -> [(range: Range<Int>, id: Int?)] {
        if tokens.isEmpty || text.isEmpty { return [(0..<text.count, nil)] }
        var out: [(range: Range<Int>, id: Int?)] = []
        var consumed = 0
        var i = 0
        while i < text.count {
            guard let candidates = byFirstScalar[text[i]], let k = longestMatch(text, at: i, candidates) else { i += 1; continue }
            let token = tokens[k]
            var start = i, stop = i + patterns[k].count
            if token.singleWord {
                let startOK = start == 0 || !CharacterClasses.isAlphanumeric(text[start - 1]) && text[start - 1] != 0x5F
                let stopOK = stop == text.count || !CharacterClasses.isAlphanumeric(text[stop]) && text[stop] != 0x5F
                if !(startOK && stopOK) { i += 1; continue }
            }
            if token.lstrip {
                var s = start
                while s > consumed && CharacterClasses.isWhitespace(text[s - 1]) { s -= 1 }
                start = s
            }
            let next = stop
            if token.rstrip { while stop < text.count && CharacterClasses.isWhitespace(text[stop]) { stop += 1 } }
            if consumed < start { out.append((consumed..<start, nil)) }
            out.append((start..<stop, token.id))
            consumed = stop
            i = max(next, stop)
        }
        if consumed < text.count { out.append((consumed..<text.count, nil)) }
        return out
    }

    private func longestMatch(_ text: [UInt32], at i: Int, _ candidates: [Int]) -> Int? {
        outer: for k in candidates {
            let p = patterns[k]
            if i + p.count > text.count { continue }
            for j in 1..<p.count where text[i + j] != p[j] { continue outer }
            return k
        }
        return nil
    }
}

func readAddedTokens(_ root: ComponentReader) throws -> [AddedToken] {
    guard root.child("added_tokens") != nil else { return [] }
    return try root.elements("added_tokens").map { t in
        AddedToken(id: try t.int("id", default: nil) ?? { throw t.fail("id", "an integer") }(),
                   content: try t.string("content"),
                   singleWord: try t.bool("single_word", default: false),
                   lstrip: try t.bool("lstrip", default: false),
                   rstrip: try t.bool("rstrip", default: false),
                   normalized: try t.bool("normalized", default: true),
                   special: try t.bool("special", default: false))
    }
}
