import Formats

/// Finds the non-overlapping matches of a pattern in a run of Unicode scalars, left to right, as half-open
/// scalar-index ranges. Text is handled as scalars (not grapheme clusters) because that is what the Rust
/// regex engines behind HF tokenizers see.
/// Only a user regex (OnigurumaMatcher) can fail: when it exhausts its backtracking budget.
protocol ScalarMatcher: Sendable {
    func matches(in text: [UInt32]) throws -> [Range<Int>]
}

/// A literal string pattern (`{"String": "..."}`).
struct LiteralMatcher: ScalarMatcher {
    let needle: [UInt32]

    func matches(in text: [UInt32]) -> [Range<Int>] {
        guard !needle.isEmpty, text.count >= needle.count else { return [] }
        var out: [Range<Int>] = []
        var i = 0
        let first = needle[0]
        while i + needle.count <= text.count {
            if text[i] == first {
                var j = 1
                while j < needle.count && text[i + j] == needle[j] { j += 1 }
                if j == needle.count {
                    out.append(i..<(i + needle.count))
                    i += needle.count
                    continue
                }
            }
            i += 1
        }
        return out
    }
}

/// Every scalar satisfying a predicate is its own match (HF's `impl Pattern for Fn(char) -> bool`).
struct PredicateMatcher: ScalarMatcher {
    let predicate: @Sendable (UInt32) -> Bool

    func matches(in text: [UInt32]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for (i, c) in text.enumerated() where predicate(c) { out.append(i..<(i + 1)) }
        return out
    }
}

/// How HF's `Split`, `Punctuation`, `Digits` ... treat the matched parts.
enum SplitBehavior: String, Sendable {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"

    init(reader: ComponentReader, key: String, default d: SplitBehavior?) throws {
        guard let raw = try reader.string(key, default: d?.rawValue), let b = SplitBehavior(rawValue: raw) else {
            throw reader.fail(key, "one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous")
        }
        self = b
    }

    /// Splits `text` (length `count`) given the pattern's matches; mirrors `NormalizedString::split` in
    /// tokenizers: the matches and the gaps between them are labelled, optionally inverted, merged according to
    /// the behaviour, and empty pieces dropped.
    func split(count: Int, matches: [Range<Int>], invert: Bool) -> [Range<Int>] {
        var labelled: [(Range<Int>, Bool)] = []
        labelled.reserveCapacity(matches.count * 2 + 1)
        var prev = 0
        for m in matches {
            if m.lowerBound > prev { labelled.append((prev..<m.lowerBound, invert)) }
            labelled.append((m, !invert))
            prev = m.upperBound
        }
        if prev < count || labelled.isEmpty { labelled.append((prev..<count, invert)) }

        var out: [Range<Int>] = []
        switch self {
        case .removed:
            out = labelled.filter { !$0.1 }.map { $0.0 }
        case .isolated:
            out = labelled.map { $0.0 }
        case .mergedWithPrevious:
            var previousMatch = false
            for (r, isMatch) in labelled {
                if isMatch && !previousMatch, let last = out.last {
                    out[out.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    out.append(r)
                }
                previousMatch = isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for (r, isMatch) in labelled.reversed() {
                if isMatch && !previousMatch, let last = out.last {
                    out[out.count - 1] = r.lowerBound..<last.upperBound
                } else {
                    out.append(r)
                }
                previousMatch = isMatch
            }
            out.reverse()
        case .contiguous:
            var previous: Bool? = nil
            for (r, isMatch) in labelled {
                if previous == isMatch, let last = out.last {
                    out[out.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    out.append(r)
                }
                previous = isMatch
            }
        }
        return out.filter { !$0.isEmpty }
    }
}

/// Builds the matcher for a `{"String": ...}` or `{"Regex": ...}` pattern object.
func makeMatcher(_ reader: ComponentReader, key: String = "pattern") throws -> ScalarMatcher {
    guard let pattern = reader.child(key) else { throw reader.fail(key, "a pattern object") }
    if let s = pattern.value["String"]?.stringValue {
        return LiteralMatcher(needle: s.unicodeScalars.map(\.value))
    }
    if let r = pattern.value["Regex"]?.stringValue {
        if let known = KnownPattern(pattern: r) { return KnownPatternScanner(kind: known) }
        return try OnigurumaMatcher(pattern: r, file: reader.file)
    }
    throw reader.fail(key, "{\"String\": ...} or {\"Regex\": ...}")
}
