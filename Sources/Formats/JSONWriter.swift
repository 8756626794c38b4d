import Foundation

/// Serialises `JSONValue` the way the Python side writes its files, so that what we write diffs clean
/// against what transformers writes: `json.dumps(obj, indent=2, sort_keys=True)` for config.json and
/// index files (Python's separators and float repr, ASCII escapes by default), or compact output.
public struct JSONWriter: Sendable {
    public var indent: Int?
    public var sortKeys: Bool
    /// Python's `ensure_ascii`: non-ASCII characters become `\uXXXX` escapes (surrogate pairs above the BMP).
    public var asciiOnly: Bool
    /// Python's separators: `", "` and `": "` (with indent, `","` at line ends). Compact is `","` and `":"`.
    public var pythonSeparators: Bool

    public init(indent: Int? = nil, sortKeys: Bool = false, asciiOnly: Bool = false, pythonSeparators: Bool = false) {
        self.indent = indent
        self.sortKeys = sortKeys
        self.asciiOnly = asciiOnly
        self.pythonSeparators = pythonSeparators
    }

    /// What transformers' `to_json_string` writes: indent 2, sorted keys, ASCII escapes.
    public static let transformers = JSONWriter(indent: 2, sortKeys: true, asciiOnly: true, pythonSeparators: true)
    public static let compact = JSONWriter()

    public func string(_ value: JSONValue) -> String {
        var out = ""
        write(value, depth: 0, into: &out)
        return out
    }

    private func write(_ value: JSONValue, depth: Int, into out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += Self.formatDouble(d)
        case .string(let s): writeString(s, into: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += separatorItem }
                newline(depth + 1, into: &out)
                write(item, depth: depth + 1, into: &out)
            }
            newline(depth, into: &out)
            out += "]"
        case .object(let object):
            if object.count == 0 { out += "{}"; return }
            out += "{"
            let keys = sortKeys ? object.keys.sorted(by: Self.pythonKeyOrder) : object.keys
            for (i, key) in keys.enumerated() {
                if i > 0 { out += separatorItem }
                newline(depth + 1, into: &out)
                writeString(key, into: &out)
                out += pythonSeparators ? ": " : ":"
                write(object[key]!, depth: depth + 1, into: &out)
            }
            newline(depth, into: &out)
            out += "}"
        }
    }

    private var separatorItem: String { indent == nil && pythonSeparators ? ", " : "," }

    private func newline(_ depth: Int, into out: inout String) {
        guard let indent else { return }
        out += "\n"
        out += String(repeating: " ", count: indent * depth)
    }

    /// Python sorts str keys by code point, which is UTF-32 order; Swift's `<` on String is not.
    public static func pythonKeyOrder(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value }
    }

    /// Python's `repr(float)`: shortest round-trip digits, `.0` on integral values, exponent form
    /// outside [1e-4, 1e16), and `Infinity`/`NaN` spelled as `json.dumps` does.
    public static func formatDouble(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        // Swift's description already uses the shortest round-trip digits and the same exponent
        // thresholds as Python (1e16 → "1e+16", 1e-05 → "1e-05").
        return d.description
    }

    private func writeString(_ s: String, into out: inout String) {
        Self.appendQuoted(s, asciiOnly: asciiOnly, to: &out)
    }

    /// A JSON string literal exactly as Python's `json.dumps` writes it: `\"`, `\\`, the short escapes,
    /// `\uXXXX` for other control characters, and with `asciiOnly` (ensure_ascii) for everything past
    /// U+007E, as a surrogate pair above the BMP.
    public static func appendQuoted(_ s: String, asciiOnly: Bool, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || (asciiOnly && scalar.value > 0x7E) {
                    if scalar.value > 0xFFFF {
                        let v = scalar.value - 0x10000
                        out += hex4(0xD800 + (v >> 10)) + hex4(0xDC00 + (v & 0x3FF))
                    } else {
                        out += hex4(scalar.value)
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    private static func hex4(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - h.count) + h
    }
}

extension JSONValue {
    /// Writes `value` to `path` atomically (temporary file in the same folder, then rename).
    public func write(to path: String, writer: JSONWriter = .transformers, trailingNewline: Bool = true) throws {
        var text = writer.string(self)
        if trailingNewline { text += "\n" }
        try AtomicFile.write(Data(text.utf8), to: path)
    }
}
