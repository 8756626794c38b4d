import Formats

/// One piece of text on its way to the model, as Unicode scalars. `isFirst` says the piece starts at offset 0
/// of the original input (Metaspace's `prepend_scheme: first` only prepends there).
struct PreToken {
    var text: [UInt32]
    var isFirst: Bool
}

/// Splits (and may rewrite) pieces of normalized text into words for the model.
protocol PreTokenizer: Sendable {
    func preTokenize(_ piece: PreToken) throws -> [PreToken]
}

extension PreTokenizer {
    func preTokenize(_ pieces: [PreToken]) throws -> [PreToken] {
        var out: [PreToken] = []
        out.reserveCapacity(pieces.count)
        for p in pieces { out.append(contentsOf: try preTokenize(p)) }
        return out
    }
}

/// Cuts `piece` into the given scalar ranges; only the piece's first range keeps `isFirst`.
@inline(__always) func cut(_ piece: PreToken, _ ranges: [Range<Int>]) -> [PreToken] {
    ranges.map { PreToken(text: Array(piece.text[$0]), isFirst: piece.isFirst && $0.lowerBound == 0) }
}

/// A pattern split: `Split`, `Punctuation`, `Digits`, `Whitespace`, `WhitespaceSplit` are all this with
/// different matchers and behaviours.
struct PatternSplit: PreTokenizer {
    let matcher: ScalarMatcher
    let behavior: SplitBehavior
    let invert: Bool

    func preTokenize(_ piece: PreToken) throws -> [PreToken] {
        let ranges = behavior.split(count: piece.text.count, matches: try matcher.matches(in: piece.text), invert: invert)
        if ranges.count == 1 && ranges[0].count == piece.text.count { return [piece] }
        return cut(piece, ranges)
    }
}

/// GPT-2's byte-level pre-tokenizer: optional prefix space, the GPT-2 regex split, then every UTF-8 byte
/// mapped to its printable stand-in.
struct ByteLevelPreTokenizer: PreTokenizer {
    let addPrefixSpace: Bool
    let useRegex: Bool
    static let scanner = KnownPatternScanner(kind: .gpt2)

    func preTokenize(_ piece: PreToken) -> [PreToken] {
        var piece = piece
        if addPrefixSpace && !piece.text.isEmpty && piece.text[0] != 0x20 { piece.text.insert(0x20, at: 0) }
        let parts: [PreToken]
        if useRegex {
            parts = cut(piece, SplitBehavior.isolated.split(count: piece.text.count, matches: Self.scanner.matches(in: piece.text), invert: false))
        } else {
            parts = [piece]
        }
        return parts.map { PreToken(text: ByteLevelMap.encode($0.text), isFirst: $0.isFirst) }
    }
}

/// SentencePiece-style: spaces become `replacement`, a replacement is prepended per `prepend_scheme`, and
/// with `split` each word starts at a replacement character.
struct MetaspacePreTokenizer: PreTokenizer {
    enum PrependScheme: String { case always, first, never }
    let replacement: UInt32
    let prependScheme: PrependScheme
    let splitWords: Bool

    func preTokenize(_ piece: PreToken) -> [PreToken] {
        var text = piece.text.map { $0 == 0x20 ? replacement : $0 }
        if !text.isEmpty && text[0] != replacement {
            if prependScheme == .always || (prependScheme == .first && piece.isFirst) { text.insert(replacement, at: 0) }
        }
        let p = PreToken(text: text, isFirst: piece.isFirst)
        guard splitWords else { return text.isEmpty ? [] : [p] }
        let r = replacement
        let ranges = SplitBehavior.mergedWithNext.split(count: text.count, matches: PredicateMatcher { $0 == r }.matches(in: text), invert: false)
        return cut(p, ranges)
    }
}

/// BERT: split on whitespace (dropped), then every punctuation scalar on its own.
struct BertPreTokenizer: PreTokenizer {
    static let whitespace = PatternSplit(matcher: PredicateMatcher(predicate: CharacterClasses.isWhitespace), behavior: .removed, invert: false)
    static let punctuation = PatternSplit(matcher: PredicateMatcher(predicate: CharacterClasses.isPunctuation), behavior: .isolated, invert: false)

    func preTokenize(_ piece: PreToken) throws -> [PreToken] {
        try Self.punctuation.preTokenize(try Self.whitespace.preTokenize(piece))
    }
}

/// Matches `\w+|[^\w\s]+` (the `Whitespace` pre-tokenizer's regex) without a regex engine.
struct WordOrSymbolRunMatcher: ScalarMatcher {
    func matches(in text: [UInt32]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < text.count {
            let word = CharacterClasses.isWordCharacter(text[i])
            if !word && CharacterClasses.isWhitespace(text[i]) { i += 1; continue }
            var j = i + 1
            while j < text.count {
                let w = CharacterClasses.isWordCharacter(text[j])
                if w != word || (!w && CharacterClasses.isWhitespace(text[j])) { break }
                j += 1
            }
            out.append(i..<j)
            i = j
        }
        return out
    }
}

struct SequencePreTokenizer: PreTokenizer {
    let steps: [PreTokenizer]

    func preTokenize(_ piece: PreToken) throws -> [PreToken] {
        var pieces = [piece]
        for s in steps { pieces = try s.preTokenize(pieces) }
        return pieces
    }
}

func makePreTokenizer(_ r: ComponentReader) throws -> PreTokenizer {
    switch try r.type(stage: "pre-tokenizer") {
    case "ByteLevel":
        return ByteLevelPreTokenizer(addPrefixSpace: try r.bool("add_prefix_space", default: true),
                                     useRegex: try r.bool("use_regex", default: true))
    case "Split":
        return PatternSplit(matcher: try makeMatcher(r), behavior: try SplitBehavior(reader: r, key: "behavior", default: nil),
                            invert: try r.bool("invert", default: false))
    case "Metaspace":
        let rep = try r.string("replacement", default: "▁")!
        guard rep.unicodeScalars.count == 1, let scalar = rep.unicodeScalars.first else { throw r.fail("replacement", "a single character") }
        var scheme = MetaspacePreTokenizer.PrependScheme.always
        if let raw = try r.string("prepend_scheme", default: nil) {
            guard let s = MetaspacePreTokenizer.PrependScheme(rawValue: raw) else { throw r.fail("prepend_scheme", "always, first or never") }
            scheme = s
        } else if r.value["add_prefix_space"] != nil {
            scheme = try r.bool("add_prefix_space", default: true) ? .always : .never
        }
        return MetaspacePreTokenizer(replacement: scalar.value, prependScheme: scheme, splitWords: try r.bool("split", default: true))
    case "Whitespace":
        return PatternSplit(matcher: WordOrSymbolRunMatcher(), behavior: .removed, invert: true)
    case "WhitespaceSplit":
        return PatternSplit(matcher: PredicateMatcher(predicate: CharacterClasses.isWhitespace), behavior: .removed, invert: false)
    case "BertPreTokenizer":
        return BertPreTokenizer()
    case "Digits":
        let individual = try r.bool("individual_digits", default: false)
        return PatternSplit(matcher: PredicateMatcher(predicate: CharacterClasses.isNumber), behavior: individual ? .isolated : .contiguous, invert: false)
    case "Punctuation":
        return PatternSplit(matcher: PredicateMatcher(predicate: CharacterClasses.isPunctuation),
                            behavior: try SplitBehavior(reader: r, key: "behavior", default: .isolated), invert: false)
    case "Sequence":
        return SequencePreTokenizer(steps: try r.elements("pretokenizers").map(makePreTokenizer))
    default:
        try r.unknown("pre-tokenizer")
    }
}
