import Formats
/// Python's `json.dumps`, which transformers' `tojson` filter calls with `ensure_ascii=False` by default
/// (unlike jinja2's own filter, nothing is HTML-escaped). Separators default to `", "`/`": "`, or
/// `","`/`": "` once an indent is given, and `indent` may be a number of spaces or a string.
enum JSONDump {
    static func dumps(_ v: Value, ensureASCII: Bool, indent: Value, separators: Value, sortKeys: Bool) throws -> String {
        var pad: String?
        switch indent {
        case .none: pad = nil
        case .string(let s): pad = s
        default:
            guard case .int(let n)? = indent.number else { throw TemplateFailure("TypeError", "indent must be an int or a string") }
            try TemplateLimit.check(n, "tojson's indent")
            pad = String(repeating: " ", count: max(0, n))
        }
        var itemSeparator = pad == nil ? ", " : ",", keySeparator = ": "
        switch separators {
        case .none: break
        case .list(let s), .tuple(let s):
            guard s.count == 2, case .string(let i) = s[0], case .string(let k) = s[1] else {
                throw TemplateFailure("ValueError", "separators must be a pair of strings")
            }
            itemSeparator = i
            keySeparator = k
        default: throw TemplateFailure("TypeError", "separators must be a (item, key) pair")
        }
        var writer = Writer(ensureASCII: ensureASCII, pad: pad, itemSeparator: itemSeparator,
                            keySeparator: keySeparator, sortKeys: sortKeys)
        try writer.write(v, depth: 0)
        return writer.out
    }

    private struct Writer {
        let ensureASCII: Bool
        let pad: String?
        let itemSeparator: String
        let keySeparator: String
        let sortKeys: Bool
        var out = ""

        mutating func newline(_ depth: Int) {
            guard let pad else { return }
            out += "\n" + String(repeating: pad, count: depth)
        }

        mutating func write(_ v: Value, depth: Int) throws {
            switch v {
            case .none: out += "null"
            case .bool(let b): out += b ? "true" : "false"
            case .int(let i): out += String(i)
            case .double(let d): out += float(d)
            case .string(let s): string(s)
            case .list(let items), .tuple(let items):
                if items.isEmpty { out += "[]"; return }
                out += "["
                for (i, item) in items.enumerated() {
                    if i > 0 { out += itemSeparator }
                    newline(depth + 1)
                    try write(item, depth: depth + 1)
                }
                newline(depth)
                out += "]"
            case .dict(let d):
                if d.count == 0 { out += "{}"; return }
                var pairs = try d.pairs.map { (try key($0.0), $0.1) }
                if sortKeys {
                    pairs = pairs.enumerated().sorted {
                        let c = PythonText.compare($0.element.0, $1.element.0)
                        return c == 0 ? $0.offset < $1.offset : c < 0
                    }.map(\.element)
                }
                out += "{"
                for (i, (k, item)) in pairs.enumerated() {
                    if i > 0 { out += itemSeparator }
                    newline(depth + 1)
                    string(k)
                    out += keySeparator
                    try write(item, depth: depth + 1)
                }
                newline(depth)
                out += "}"
            default:
                let name = v.typeName == "Macro" ? "Macro" : v.typeName
                throw TemplateFailure("TypeError", "Object of type \(name) is not JSON serializable")
            }
        }

        func float(_ d: Double) -> String {
            if d.isNaN { return "NaN" }
            if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
            return PythonText.floatRepr(d)
        }

        /// Python converts bool, None, int and float keys to strings; anything else is an error.
        func key(_ k: Value) throws -> String {
            switch k {
            case .string(let s): return s
            case .bool(let b): return b ? "true" : "false"
            case .none: return "null"
            case .int(let i): return String(i)
            case .double(let d): return float(d)
            default: throw TemplateFailure("TypeError", "keys must be str, int, float, bool or None, not \(k.typeName)")
            }
        }

        mutating func string(_ s: String) {
            JSONWriter.appendQuoted(s, asciiOnly: ensureASCII, to: &out)
        }
    }
}
