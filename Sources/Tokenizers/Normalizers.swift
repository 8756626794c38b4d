import Foundation
import Formats

/// Rewrites a piece of input text before pre-tokenization (HF `normalizer`).
protocol Normalizer: Sendable {
    func normalize(_ text: [UInt32]) -> [UInt32]
}

@inline(__always) func scalars(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }

func string(_ scalars: [UInt32]) -> String {
    var view = String.UnicodeScalarView()
    for v in scalars { view.append(Unicode.Scalar(v) ?? "\u{FFFD}") }
    return String(view)
}

struct UnicodeNormalizer: Normalizer {
    enum Form { case nfc, nfd, nfkc, nfkd }
    let form: Form

    func normalize(_ text: [UInt32]) -> [UInt32] {
        // Pure ASCII is invariant under every normalization form.
        if text.allSatisfy({ $0 < 0x80 }) { return text }
        let s = string(text)
        switch form {
        case .nfc: return scalars(s.precomposedStringWithCanonicalMapping)
        case .nfd: return scalars(s.decomposedStringWithCanonicalMapping)
        case .nfkc: return scalars(s.precomposedStringWithCompatibilityMapping)
        case .nfkd: return scalars(s.decomposedStringWithCompatibilityMapping)
        }
    }
}

/// Per-scalar full lowercase mapping, as Rust's `char::to_lowercase` (no context-dependent final sigma).
struct LowercaseNormalizer: Normalizer {
    func normalize(_ text: [UInt32]) -> [UInt32] { Self.lowercase(text) }

    static func lowercase(_ text: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        for v in text {
            if v < 0x80 {
                out.append(v >= 65 && v <= 90 ? v + 32 : v)
            } else if let s = Unicode.Scalar(v) {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars.map(\.value))
            }
        }
        return out
    }
}

/// Removes combining marks (expects decomposed input, as HF documents).
struct StripAccentsNormalizer: Normalizer {
    func normalize(_ text: [UInt32]) -> [UInt32] {
        text.filter { v in v < 0x300 || !(Unicode.Scalar(v).map(CharacterClasses.isMark) ?? false) }
    }
}

struct StripNormalizer: Normalizer {
    let left: Bool, right: Bool

    func normalize(_ text: [UInt32]) -> [UInt32] {
        var lo = 0, hi = text.count
        if left { while lo < hi && CharacterClasses.isWhitespace(text[lo]) { lo += 1 } }
        if right { while hi > lo && CharacterClasses.isWhitespace(text[hi - 1]) { hi -= 1 } }
        return Array(text[lo..<hi])
    }
}

struct ReplaceNormalizer: Normalizer {
    let matcher: ScalarMatcher
    let content: [UInt32]

    func normalize(_ text: [UInt32]) -> [UInt32] { Self.replace(text, matcher, content) }

    static func replace(_ text: [UInt32], _ matcher: ScalarMatcher, _ content: [UInt32]) -> [UInt32] {
        let ms = matcher.matches(in: text)
        if ms.isEmpty { return text }
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        var prev = 0
        for m in ms {
            out.append(contentsOf: text[prev..<m.lowerBound])
            out.append(contentsOf: content)
            prev = m.upperBound
        }
        out.append(contentsOf: text[prev...])
        return out
    }
}

struct PrependNormalizer: Normalizer {
    let prefix: [UInt32]
    func normalize(_ text: [UInt32]) -> [UInt32] { text.isEmpty ? text : prefix + text }
}

/// BERT's cleanup: drop controls and U+FFFD, whitespace → space, spaces around CJK ideographs, optional accent
/// stripping (NFD then drop non-spacing marks) and lowercasing. `strip_accents: null` follows `lowercase`.
struct BertNormalizer: Normalizer {
    let cleanText: Bool, chineseChars: Bool, stripAccents: Bool, lowercase: Bool

    func normalize(_ text: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        for v in text {
            if cleanText {
                if v == 0 || v == 0xFFFD || CharacterClasses.isBertControl(v) { continue }
                if CharacterClasses.isWhitespace(v) { out.append(0x20); continue }
            }
            if chineseChars && CharacterClasses.isChineseCharacter(v) {
                out.append(0x20); out.append(v); out.append(0x20)
            } else {
                out.append(v)
            }
        }
        if stripAccents {
            out = UnicodeNormalizer(form: .nfd).normalize(out).filter { v in
                v < 0x300 || Unicode.Scalar(v)?.properties.generalCategory != .nonspacingMark
            }
        }
        if lowercase { out = LowercaseNormalizer.lowercase(out) }
        return out
    }
}

struct SequenceNormalizer: Normalizer {
    let steps: [Normalizer]
    func normalize(_ text: [UInt32]) -> [UInt32] { steps.reduce(text) { $1.normalize($0) } }
}

func makeNormalizer(_ r: ComponentReader) throws -> Normalizer {
    switch try r.type(stage: "normalizer") {
    case "NFC": return UnicodeNormalizer(form: .nfc)
    case "NFD": return UnicodeNormalizer(form: .nfd)
    case "NFKC": return UnicodeNormalizer(form: .nfkc)
    case "NFKD": return UnicodeNormalizer(form: .nfkd)
    case "Lowercase": return LowercaseNormalizer()
    case "StripAccents": return StripAccentsNormalizer()
    case "Strip": return StripNormalizer(left: try r.bool("strip_left", default: true), right: try r.bool("strip_right", default: true))
    case "Replace": return ReplaceNormalizer(matcher: try makeMatcher(r), content: scalars(try r.string("content")))
    case "Prepend": return PrependNormalizer(prefix: scalars(try r.string("prepend")))
    case "BertNormalizer":
        let lower = try r.bool("lowercase", default: true)
        return BertNormalizer(cleanText: try r.bool("clean_text", default: true),
                              chineseChars: try r.bool("handle_chinese_chars", default: true),
                              stripAccents: try r.bool("strip_accents", default: lower), lowercase: lower)
    case "Sequence":
        return SequenceNormalizer(steps: try r.elements("normalizers").map(makeNormalizer))
    case "Precompiled":
        throw TokenizerError.unsupported(file: r.file, what: "\(r.path): Precompiled normalizer (SentencePiece charsmap)")
    default:
        try r.unknown("normalizer")
    }
}
