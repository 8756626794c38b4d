import Formats

/// Turns token strings back into text (HF `decoder`); like HF's `decode_chain`, each step maps a list of
/// strings to a list of strings and the final list is concatenated.
protocol Decoder: Sendable {
    func decode(_ tokens: [String]) throws -> [String]
}

/// Stand-in characters back to bytes, then lossy UTF-8 (invalid sequences become U+FFFD).
struct ByteLevelDecoder: Decoder {
    func decode(_ tokens: [String]) -> [String] {
        var bytes: [UInt8] = []
        for t in tokens { bytes += ByteLevelMap.decode(t) ?? Array(t.utf8) }
        return [String(decoding: bytes, as: UTF8.self)]
    }
}

/// `replacement` → space; the first token's replacements are dropped entirely unless `prepend_scheme` is
/// never (HF does exactly this, which also removes interior spaces of a fused first token).
struct MetaspaceDecoder: Decoder {
    let replacement: UInt32
    let dropOnFirst: Bool

    func decode(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            var s: [UInt32] = []
            for c in t.unicodeScalars {
                if c.value == replacement {
                    if !(i == 0 && dropOnFirst) { s.append(0x20) }
                } else {
                    s.append(c.value)
                }
            }
            return string(s)
        }
    }
}

struct WordPieceDecoder: Decoder {
    let prefix: String
    let cleanup: Bool

    func decode(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            var s = t
            if i != 0 {
                if !prefix.isEmpty && s.hasPrefix(prefix) { s = String(s.dropFirst(prefix.count)) } else { s = " " + s }
            }
            return cleanup ? wordPieceCleanup(s) : s
        }
    }
}

/// HF's `cleanup` for WordPiece decoding (and transformers' `clean_up_tokenization`, which lacks " do not").
func wordPieceCleanup(_ s: String, doNot: Bool = true) -> String {
    var s = s.replacingAll(" .", ".").replacingAll(" ?", "?").replacingAll(" !", "!").replacingAll(" ,", ",")
        .replacingAll(" ' ", "'").replacingAll(" n't", "n't").replacingAll(" 'm", "'m")
    if doNot { s = s.replacingAll(" do not", " don't") }
    return s.replacingAll(" 's", "'s").replacingAll(" 've", "'ve").replacingAll(" 're", "'re")
}

extension String {
    /// Literal, non-overlapping, left-to-right replacement on scalars (Rust's `str::replace`).
    func replacingAll(_ target: String, _ replacement: String) -> String {
        let t = scalars(target)
        let text = scalars(self)
        let ms = LiteralMatcher(needle: t).matches(in: text)
        if ms.isEmpty { return self }
        return string(ReplaceNormalizer.replace(text, matches: ms, scalars(replacement)))
    }
}

/// `<0xNN>` tokens back to bytes; a run that is not valid UTF-8 becomes one U+FFFD per byte.
struct ByteFallbackDecoder: Decoder {
    func decode(_ tokens: [String]) -> [String] {
        var out: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let s = String(validating: pending, as: UTF8.self) {
                out.append(s)
            } else {
                out.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
            }
            pending.removeAll()
        }
        for t in tokens {
            let u = Array(t.utf8)
            if u.count == 6, t.hasPrefix("<0x"), u[5] == 0x3E, let b = UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16) {
                pending.append(b)
            } else {
                flush()
                out.append(t)
            }
        }
        flush()
        return out
    }
}

struct FuseDecoder: Decoder {
    func decode(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

/// Removes up to `start` leading and `stop` trailing `content` characters per token. HF counts the kept
/// length in bytes minus stripped characters, so trailing stripping is skipped on multi-byte tokens; kept.
struct StripDecoder: Decoder {
    let content: UInt32
    let start: Int, stop: Int

    func decode(_ tokens: [String]) -> [String] {
        tokens.map { t in
            let chars = scalars(t)
            var startCut = 0
            while startCut < start && startCut < chars.count && chars[startCut] == content { startCut += 1 }
            var stopCut = 0
            while stopCut < stop && stopCut < chars.count && chars[chars.count - 1 - stopCut] == content { stopCut += 1 }
            let take = max(0, min(chars.count - startCut, t.utf8.count - startCut - stopCut))
            return string(Array(chars[startCut..<(startCut + take)]))
        }
    }
}

struct ReplaceDecoder: Decoder {
    let matcher: ScalarMatcher
    let content: [UInt32]

    func decode(_ tokens: [String]) throws -> [String] {
        try tokens.map { string(try ReplaceNormalizer.replace(scalars($0), matcher, content)) }
    }
}

struct SequenceDecoder: Decoder {
    let steps: [Decoder]
    func decode(_ tokens: [String]) throws -> [String] { try steps.reduce(tokens) { try $1.decode($0) } }
}

func makeDecoder(_ r: ComponentReader) throws -> Decoder {
    switch try r.type(stage: "decoder") {
    case "ByteLevel": return ByteLevelDecoder()
    case "Metaspace":
        let rep = try r.string("replacement", default: "▁")!
        guard rep.unicodeScalars.count == 1 else { throw r.fail("replacement", "a single character") }
        var drop = true
        if let scheme = try r.string("prepend_scheme", default: nil) { drop = scheme != "never" }
        else if r.value["add_prefix_space"] != nil { drop = try r.bool("add_prefix_space", default: true) }
        return MetaspaceDecoder(replacement: rep.unicodeScalars.first!.value, dropOnFirst: drop)
    case "WordPiece":
        return WordPieceDecoder(prefix: try r.string("prefix", default: "##")!, cleanup: try r.bool("cleanup", default: true))
    case "ByteFallback": return ByteFallbackDecoder()
    case "Fuse": return FuseDecoder()
    case "Strip":
        let c = try r.string("content")
        guard c.unicodeScalars.count == 1 else { throw r.fail("content", "a single character") }
        return StripDecoder(content: c.unicodeScalars.first!.value, start: try r.int("start", default: 0)!, stop: try r.int("stop", default: 0)!)
    case "Replace": return ReplaceDecoder(matcher: try makeMatcher(r), content: scalars(try r.string("content")))
    case "Sequence": return SequenceDecoder(steps: try r.elements("decoders").map(makeDecoder))
    default: try r.unknown("decoder")
    }
}
