import Foundation
import Formats

/// Rewrites a piece of input text before pre-tokenization (HF `normalizer`).
protocol Normalizer: Sendable {
    func normalize(_ text: [UInt32]) throws -> [UInt32]
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

    func normalize(_ text: [UInt32]) throws -> [UInt32] { try Self.replace(text, matcher, content) }

    static func replace(_ text: [UInt32], _ matcher: ScalarMatcher, _ content: [UInt32]) throws -> [UInt32] {
        replace(text, matches: try matcher.matches(in: text), content)
    }

    /// `text` with each of `ms` (ascending, disjoint) replaced by `content`.
    static func replace(_ text: [UInt32], matches ms: [Range<Int>], _ content: [UInt32]) -> [UInt32] {
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
    func normalize(_ text: [UInt32]) throws -> [UInt32] { try steps.reduce(text) { try $1.normalize($0) } }
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
        guard let b64 = try r.string("precompiled_charsmap", default: nil) else { return SequenceNormalizer(steps: []) }
        guard let data = Data(base64Encoded: b64) else { throw r.fail("precompiled_charsmap", "base64 data") }
        return try PrecompiledNormalizer(charsmap: Array(data), file: r.file, path: r.path)
    default:
        try r.unknown("normalizer")
    }
}


/// SentencePiece's compiled normalization rules (`precompiled_charsmap`, base64 in tokenizer.json): a
/// darts-clone double-array trie over UTF-8 keys whose leaves point into a pool of NUL-terminated
/// replacements. Mirrors HF's `spm_precompiled` quirks exactly: per extended grapheme cluster shorter than
/// 6 bytes, the SHORTEST rule that prefixes the cluster replaces the WHOLE cluster; otherwise each scalar is
/// looked up on its own.
struct PrecompiledNormalizer: Normalizer {
    let units: [UInt32]
    let pool: [UInt8]

    init(charsmap: [UInt8], file: String, path: String) throws {
        func bad(_ why: String) -> TokenizerError {
            .invalidField(file: file, path: path + ".precompiled_charsmap", expected: "a SentencePiece charsmap", found: why)
        }
        guard charsmap.count >= 4 else { throw bad("\(charsmap.count) bytes") }
        let trieBytes = Int(charsmap[0]) | Int(charsmap[1]) << 8 | Int(charsmap[2]) << 16 | Int(charsmap[3]) << 24
        guard trieBytes % 4 == 0, 4 + trieBytes <= charsmap.count else { throw bad("a trie size of \(trieBytes) bytes in \(charsmap.count)") }
        var units = [UInt32](repeating: 0, count: trieBytes / 4)
        for i in 0..<units.count {
            let o = 4 + 4 * i
            units[i] = UInt32(charsmap[o]) | UInt32(charsmap[o + 1]) << 8 | UInt32(charsmap[o + 2]) << 16 | UInt32(charsmap[o + 3]) << 24
        }
        self.units = units
        pool = Array(charsmap[(4 + trieBytes)...])
    }

    @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }

    /// The replacement of the shortest rule that is a prefix of `key`, if any.
    func transform<C: Collection>(_ key: C) -> [UInt8]? where C.Element == UInt8 {
        guard !units.isEmpty else { return nil }
        var pos = Self.offset(units[0])
        for c in key {
            if c == 0 { break }
            pos ^= Int(c)
            guard pos >= 0 && pos < units.count else { return nil }
            let unit = units[pos]
            if unit & ((1 << 31) | 0xFF) != UInt32(c) { return nil }
            pos ^= Self.offset(unit)
            if (unit >> 8) & 1 == 1 {
                guard pos >= 0 && pos < units.count else { return nil }
                let start = Int(units[pos] & 0x7FFF_FFFF)
                guard start <= pool.count else { return nil }
                var end = start
                while end < pool.count && pool[end] != 0 { end += 1 }
                return Array(pool[start..<end])
            }
        }
        return nil
    }

    func normalize(_ text: [UInt32]) -> [UInt32] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        for cluster in string(text) {
            let bytes = Array(cluster.utf8)
            if bytes.count < 6, let r = transform(bytes) { out += r; continue }
            for s in cluster.unicodeScalars {
                let b = Array(String(s).utf8)
                out += transform(b) ?? b
            }
        }
        return scalars(String(decoding: out, as: UTF8.self))
    }
}
