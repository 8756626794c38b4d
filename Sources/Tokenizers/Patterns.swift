import Formats

/// Finds the non-overlapping matches of a pattern in a run of Unicode scalars, left to right, as half-open
/// scalar-index ranges. Text is handled as scalars (not grapheme clusters) because that is what the Rust
/// regex engines behind HF tokenizers see.
protocol ScalarMatcher: Sendable {
    func matches(in text: [UInt32]) -> [Range<Int>]
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

/// A general regex, run with Swift `Regex` on Unicode-scalar semantics. Slow, but accepts any pattern that
/// survives translation from Oniguruma syntax; it is also the reference the hand-written scanners are tested
/// against.
struct RegexMatcher: ScalarMatcher, @unchecked Sendable {
    // Regex is not Sendable; it is immutable after construction and only read here.
    let regex: Regex<AnyRegexOutput>
    let pattern: String

    init(pattern: String, file: String) throws {
        self.pattern = pattern
        if let why = CatastrophicPattern.reason(pattern) {
            throw TokenizerError.unsupportedPattern(file: file, pattern: pattern, reason: why)
        }
        let translated = try OnigurumaTranslation.translate(pattern, file: file)
        do {
            regex = try Regex(translated).matchingSemantics(.unicodeScalar)
        } catch {
            throw TokenizerError.unsupportedPattern(file: file, pattern: pattern, reason: "Swift Regex rejects it: \(error)")
        }
    }

    func matches(in text: [UInt32]) -> [Range<Int>] {
        var string = String.UnicodeScalarView()
        for v in text { string.append(Unicode.Scalar(v) ?? "\u{FFFD}") }
        let s = String(string)
        var out: [Range<Int>] = []
        var scalarOffset = 0
        var lastIndex = s.startIndex
        for m in s.matches(of: regex) {
            let lower = scalarOffset + s.unicodeScalars.distance(from: lastIndex, to: m.range.lowerBound)
            let upper = lower + s.unicodeScalars.distance(from: m.range.lowerBound, to: m.range.upperBound)
            out.append(lower..<upper)
            scalarOffset = upper
            lastIndex = m.range.upperBound
        }
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

/// Swift `Regex` backtracks without a step budget, so a pattern whose repetition is itself repeated
/// (`(a+)+`, `(\s*x?)*`, `(?:a{2,})+`) can take exponential time on a short input and hang tokenization.
/// Such patterns (star height above one) are refused when the tokenizer loads; none of the pre-tokenizer
/// patterns of released tokenizers has one. Overlapping alternatives under one repetition (`(a|a)*`) are
/// not detected.
enum CatastrophicPattern {
    /// Why the pattern is refused, nil when it is accepted.
    static func reason(_ pattern: String) -> String? {
        let p = Array(pattern.unicodeScalars)
        var groups: [Bool] = [false]  // per open group: does it hold a variable repetition?
        var i = 0
        /// Length of the quantifier at j that repeats more than once (`*`, `+`, `{n,}`, `{n,m}` m > 1), else 0.
        func repetition(at j: Int) -> Int {
            guard j < p.count else { return 0 }
            if p[j] == "*" || p[j] == "+" { return 1 }
            guard p[j] == "{", let close = p[j...].firstIndex(of: "}") else { return 0 }
            let body = String(String.UnicodeScalarView(p[(j + 1)..<close]))
            let parts = body.split(separator: ",", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), parts.allSatisfy({ $0.isEmpty || Int($0) != nil }), !parts[0].isEmpty || parts.count == 2 else { return 0 }
            let upper = parts.count == 1 ? Int(parts[0])! : (parts[1].isEmpty ? Int.max : Int(parts[1])!)
            return upper > 1 ? close - j + 1 : 0
        }
        while i < p.count {
            let c = p[i]
            var atomEnd = i + 1
            if c == "\\" {
                atomEnd = min(i + 2, p.count)
            } else if c == "[" {
                // A character class is one atom: skip to its closing bracket (escapes and nested classes included).
                var depth = 0, j = i
                while j < p.count {
                    if p[j] == "\\" { j += 2; continue }
                    if p[j] == "[" { depth += 1 } else if p[j] == "]" { depth -= 1; if depth == 0 { break } }
                    j += 1
                }
                atomEnd = min(j + 1, p.count)
            } else if c == "(" {
                groups.append(false)
                i += 1
                continue
            } else if c == ")" {
                let inner = groups.count > 1 ? groups.removeLast() : false
                let q = repetition(at: i + 1)
                if inner && q > 0 {
                    return "a repeated group holds a repetition itself (nested quantifiers), which can take exponential time to match"
                }
                if inner || q > 0 { groups[groups.count - 1] = true }
                i += 1 + q
                continue
            }
            let q = repetition(at: atomEnd)
            if q > 0 { groups[groups.count - 1] = true }
            i = atomEnd + q
        }
        return nil
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
        return try RegexMatcher(pattern: r, file: reader.file)
    }
    throw reader.fail(key, "{\"String\": ...} or {\"Regex\": ...}")
}

/// Oniguruma (the engine HF builds its regexes with) and Swift Regex mostly agree on the syntax these files
/// use; the differences are rewritten here and anything that would silently change meaning is refused.
enum OnigurumaTranslation {
    static func translate(_ pattern: String, file: String) throws -> String {
        var out = ""
        var chars = Array(pattern)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "\\", i + 1 < chars.count {
                let n = chars[i + 1]
                switch n {
                case "h":
                    // Oniguruma \h is a hex digit; Swift's \h is horizontal whitespace.
                    out += "[0-9a-fA-F]"
                case "H":
                    out += "[^0-9a-fA-F]"
                case "d":
                    // Oniguruma's Unicode \d is Nd only; Swift's also takes other numerics (①, ²).
                    out += "\\p{Nd}"
                case "D":
                    out += "\\P{Nd}"
                case "w":
                    out += "[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]"
                case "W":
                    out += "[^\\p{L}\\p{M}\\p{Nd}\\p{Pc}]"
                case "A", "z", "Z", "G":
                    out.append(c); out.append(n)
                case "K", "R", "X", "y", "Y":
                    throw TokenizerError.unsupportedPattern(file: file, pattern: pattern, reason: "\\\(n) has no Swift Regex equivalent")
                default:
                    out.append(c); out.append(n)
                }
                i += 2
                continue
            }
            if c == "(", i + 2 < chars.count, chars[i + 1] == "?", chars[i + 2] == "~" {
                throw TokenizerError.unsupportedPattern(file: file, pattern: pattern, reason: "absent operator (?~...)")
            }
            out.append(c)
            i += 1
        }
        chars = []
        return out
    }
}
