/// The three pre-tokenization regexes that nearly every byte-level BPE ships, recognised by their exact text.
enum KnownPattern: Sendable, CaseIterable {
    case gpt2, llama3, qwen2

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init?(pattern: String) {
        switch pattern {
        case Self.gpt2Pattern: self = .gpt2
        case Self.llama3Pattern: self = .llama3
        case Self.qwen2Pattern: self = .qwen2
        default: return nil
        }
    }

    var pattern: String {
        switch self {
        case .gpt2: return Self.gpt2Pattern
        case .llama3: return Self.llama3Pattern
        case .qwen2: return Self.qwen2Pattern
        }
    }
}

/// A hand-written matcher equivalent to the known regexes: each alternative is tried in order at the current
/// position exactly as a backtracking engine would, but with no backtracking state. Faster than running the
/// regex itself; `KnownPatternScannerTests` checks it against Oniguruma (`OnigurumaMatcher`), HF's engine.
struct KnownPatternScanner: ScalarMatcher {
    let kind: KnownPattern

    // Scalar classes: letter, number, whitespace, other (none of those).
    private static let letter: UInt8 = 1, number: UInt8 = 2, space: UInt8 = 3, other: UInt8 = 4

    @inline(__always) private static func classOf(_ v: UInt32) -> UInt8 {
        if CharacterClasses.isLetter(v) { return letter }
        if CharacterClasses.isNumber(v) { return number }
        if CharacterClasses.isWhitespace(v) { return space }
        return other
    }

    func matches(in text: [UInt32]) -> [Range<Int>] {
        let n = text.count
        if n == 0 { return [] }
        var classes = [UInt8](repeating: 0, count: n)
        for i in 0..<n { classes[i] = Self.classOf(text[i]) }
        var out: [Range<Int>] = []
        out.reserveCapacity(n / 3 + 1)
        var i = 0
        while i < n {
            let end: Int
            switch kind {
            case .gpt2: end = gpt2Match(text, classes, i)
            case .llama3: end = llamaMatch(text, classes, i, maxDigits: 3)
            case .qwen2: end = llamaMatch(text, classes, i, maxDigits: 1)
            }
            out.append(i..<end)
            i = end
        }
        return out
    }

    /// Length of `'s|'t|'re|'ve|'m|'ll|'d` at `i`, or 0. `caseInsensitive` follows Oniguruma's case folding,
    /// under which `s` also matches U+017F LATIN SMALL LETTER LONG S.
    @inline(__always) private func contraction(_ t: [UInt32], _ i: Int, caseInsensitive: Bool) -> Int {
        guard t[i] == 0x27, i + 1 < t.count else { return 0 }
        @inline(__always) func fold(_ v: UInt32) -> UInt32 {
            guard caseInsensitive else { return v }
            if v >= 65 && v <= 90 { return v + 32 }
            if v == 0x17F { return 0x73 }
            return v
        }
        let a = fold(t[i + 1])
        switch a {
        case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
        case 0x72, 0x76:  // r v -> 're 've
            if i + 2 < t.count && fold(t[i + 2]) == 0x65 { return 3 }
        case 0x6C:  // l -> 'll
            if i + 2 < t.count && fold(t[i + 2]) == 0x6C { return 3 }
        default: break
        }
        return 0
    }

    @inline(__always) private func run(_ c: [UInt8], from i: Int, of cls: UInt8) -> Int {
        var j = i
        while j < c.count && c[j] == cls { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+` at a whitespace position: the whole run if it reaches the end or is a single scalar,
    /// otherwise the run minus its last scalar (which then leads the next token).
    @inline(__always) private func trailingSpace(_ c: [UInt8], _ i: Int) -> Int {
        let j = run(c, from: i, of: Self.space)
        if j == c.count || j - i == 1 { return j }
        return j - 1
    }

    private func gpt2Match(_ t: [UInt32], _ c: [UInt8], _ i: Int) -> Int {
        let k = contraction(t, i, caseInsensitive: false)
        if k > 0 { return i + k }
        var start = i
        if t[i] == 0x20 && i + 1 < t.count && c[i + 1] != Self.space { start = i + 1 }
        let cls = c[start]
        if cls != Self.space { return run(c, from: start + 1, of: cls) }
        return trailingSpace(c, i)
    }

    private func isNewline(_ v: UInt32) -> Bool { v == 0x0A || v == 0x0D }

    private func llamaMatch(_ t: [UInt32], _ c: [UInt8], _ i: Int, maxDigits: Int) -> Int {
        let n = t.count
        let k = contraction(t, i, caseInsensitive: true)
        if k > 0 { return i + k }
        let cls = c[i]
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if cls == Self.letter { return run(c, from: i + 1, of: Self.letter) }
        if cls != Self.number && !isNewline(t[i]) && i + 1 < n && c[i + 1] == Self.letter {
            return run(c, from: i + 2, of: Self.letter)
        }
        // \p{N}{1,3}
        if cls == Self.number {
            var j = i + 1
            while j < n && j - i < maxDigits && c[j] == Self.number { j += 1 }
            return j
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        var start = i
        if t[i] == 0x20 && i + 1 < n && c[i + 1] == Self.other { start = i + 1 }
        if c[start] == Self.other {
            var j = run(c, from: start + 1, of: Self.other)
            while j < n && isNewline(t[j]) { j += 1 }
            return j
        }
        // \s*[\r\n]+ : the whitespace run up to and including its last newline.
        let j = run(c, from: i, of: Self.space)
        var lastNewline = -1
        for p in i..<j where isNewline(t[p]) { lastNewline = p }
        if lastNewline >= 0 { return lastNewline + 1 }
        return trailingSpace(c, i)
    }
}
