/// How Python prints and compares strings and values. Python strings are sequences of code points, so
/// lengths, indices and comparisons here work on Unicode scalars rather than Swift's grapheme clusters.
enum PythonText {
    /// `str(x)`, what `{{ x }}` prints (jinja2 renders Undefined as nothing).
    static func str(_ v: Value) -> String {
        switch v {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr(v)
        }
    }

    /// `repr(x)`, used inside containers and for reprs of keys in error messages.
    static func repr(_ v: Value) -> String {
        switch v {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return floatRepr(d)
        case .string(let s): return stringRepr(s)
        case .list(let items): return "[" + items.map(repr).joined(separator: ", ") + "]"
        case .tuple(let items):
            return "(" + items.map(repr).joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
        case .dict(let d):
            return "{" + d.pairs.map { repr($0.0) + ": " + repr($0.1) }.joined(separator: ", ") + "}"
        case .namespace(let ns): return "<Namespace " + repr(.dict(ns.attributes)) + ">"
        case .function(let f): return f.isMacro ? "<Macro '\(f.name)'>" : "<built-in method \(f.name)>"
        case .loop: return "<LoopContext>"
        }
    }

    static func floatRepr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        // Swift's description uses the shortest round-trip digits and Python's exponent thresholds.
        return d.description
    }

    static func stringRepr(_ s: String) -> String {
        let quote: Unicode.Scalar = s.unicodeScalars.contains("'") && !s.unicodeScalars.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case quote: out += "\\" + String(quote)
            default:
                if isPrintable(c) {
                    out.unicodeScalars.append(c)
                } else if c.value < 0x100 {
                    out += "\\x" + hex(c.value, width: 2)
                } else if c.value < 0x10000 {
                    out += "\\u" + hex(c.value, width: 4)
                } else {
                    out += "\\U" + hex(c.value, width: 8)
                }
            }
        }
        out.unicodeScalars.append(quote)
        return out
    }

    /// Python's `str.isprintable` for one character: everything but control, format, surrogate, private,
    /// unassigned and separator characters, space excepted.
    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        if c == " " { return true }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
            .spaceSeparator:
            return false
        default: return true
        }
    }

    static func hex(_ v: UInt32, width: Int) -> String {
        let h = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - h.count)) + h
    }

    /// Python's `str.isspace` characters, which `strip()`, `split()` and jinja2's `trim` remove.
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default: return false
        }
    }

    static func same(_ a: String, _ b: String) -> Bool { a.unicodeScalars.elementsEqual(b.unicodeScalars) }

    static func compare(_ a: String, _ b: String) -> Int {
        var i = a.unicodeScalars.makeIterator(), j = b.unicodeScalars.makeIterator()
        while true {
            switch (i.next(), j.next()) {
            case (nil, nil): return 0
            case (nil, _): return -1
            case (_, nil): return 1
            case (let x?, let y?): if x != y { return x.value < y.value ? -1 : 1 }
            }
        }
    }

    static func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }
    static func string(_ scalars: some Sequence<Unicode.Scalar>) -> String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: scalars)
        return String(s)
    }

    /// `str.strip(chars)`: with no characters given, Python whitespace.
    static func strip(_ s: String, _ chars: String?, leading: Bool = true, trailing: Bool = true) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        let remove: (Unicode.Scalar) -> Bool = { c in set.map { $0.contains(c) } ?? isSpace(c) }
        var a = scalars(s)[...]
        if leading { while let f = a.first, remove(f) { a = a.dropFirst() } }
        if trailing { while let l = a.last, remove(l) { a = a.dropLast() } }
        return string(a)
    }

    /// Index of the first occurrence of `needle` in `hay` (code points), or nil.
    static func find(_ hay: [Unicode.Scalar], _ needle: [Unicode.Scalar], from start: Int = 0) -> Int? {
        if needle.isEmpty { return start <= hay.count ? start : nil }
        guard hay.count >= needle.count, start <= hay.count - needle.count else { return nil }
        outer: for i in start...(hay.count - needle.count) {
            for k in 0..<needle.count where hay[i + k] != needle[k] { continue outer }
            return i
        }
        return nil
    }

    static func contains(_ hay: String, _ needle: String) -> Bool { find(scalars(hay), scalars(needle)) != nil }

    static func hasPrefix(_ s: String, _ p: String) -> Bool { s.unicodeScalars.starts(with: p.unicodeScalars) }
    static func hasSuffix(_ s: String, _ p: String) -> Bool {
        s.unicodeScalars.reversed().starts(with: p.unicodeScalars.reversed())
    }

    /// `str.split(sep, maxsplit)`: without `sep`, runs of whitespace separate and empty parts are dropped.
    static func split(_ s: String, _ sep: String?, maxSplit: Int = -1) throws -> [String] {
        let a = scalars(s)
        var parts: [String] = []
        guard let sep else {
            var i = 0, splits = 0
            while i < a.count {
                while i < a.count, isSpace(a[i]) { i += 1 }
                if i == a.count { break }
                if maxSplit >= 0, splits == maxSplit {
                    var end = a.count
                    while end > i, isSpace(a[end - 1]) { end -= 1 }
                    parts.append(string(a[i..<end]))
                    return parts
                }
                let start = i
                while i < a.count, !isSpace(a[i]) { i += 1 }
                parts.append(string(a[start..<i]))
                splits += 1
            }
            return parts
        }
        let n = scalars(sep)
        if n.isEmpty { throw TemplateFailure("ValueError", "empty separator") }
        var start = 0
        while maxSplit < 0 || parts.count < maxSplit, let i = find(a, n, from: start) {
            parts.append(string(a[start..<i]))
            start = i + n.count
        }
        parts.append(string(a[start...]))
        return parts
    }

    static func replace(_ s: String, _ old: String, _ new: String, count: Int = -1) -> String {
        let a = scalars(s), o = scalars(old)
        var out = String.UnicodeScalarView()
        var start = 0, done = 0
        if o.isEmpty {
            // Python inserts `new` between every character (and at both ends).
            for (i, c) in a.enumerated() {
                if count < 0 || i < count { out.append(contentsOf: new.unicodeScalars) }
                out.append(c)
            }
            if count < 0 || a.count < count { out.append(contentsOf: new.unicodeScalars) }
            return String(out)
        }
        while count < 0 || done < count, let i = find(a, o, from: start) {
            out.append(contentsOf: a[start..<i])
            out.append(contentsOf: new.unicodeScalars)
            start = i + o.count
            done += 1
        }
        out.append(contentsOf: a[start...])
        return String(out)
    }

    /// Python `str.capitalize`: first character upper-cased (title-cased, in fact), the rest lower-cased.
    static func capitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return String(first).uppercased() + string(s.unicodeScalars.dropFirst()).lowercased()
    }

    /// Python `str.title`: a letter following a cased letter is lower-cased, any other letter upper-cased.
    static func title(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for c in s.unicodeScalars {
            let cased = c.properties.isCased
            out += previousCased ? String(c).lowercased() : String(c).uppercased()
            previousCased = cased
        }
        return out
    }

    /// `str.splitlines(keepends)`: every Unicode line boundary Python knows, `\r\n` as one.
    static func splitLines(_ s: String, keepEnds: Bool) -> [String] {
        var lines: [String] = [], current = String.UnicodeScalarView()
        let chars = scalars(s)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(c.value) {
                if keepEnds { current.append(c) }
                if c == "\r", i + 1 < chars.count, chars[i + 1] == "\n" {
                    if keepEnds { current.append("\n") }
                    i += 1
                }
                lines.append(String(current))
                current = String.UnicodeScalarView()
            } else {
                current.append(c)
            }
            i += 1
        }
        if !current.isEmpty { lines.append(String(current)) }
        return lines
    }
}
