import Foundation

/// jinja2's built-in filters (those chat templates use), with transformers' `tojson` in place of
/// jinja2's HTML-safe one. Filters that produce generators in Python (`map`, `select`, `unique`, ...)
/// produce lists here; templates consume them with `join`, `list`, `length` or a loop, which agree.
enum Filters {
    static let names: Set<String> = [
        "abs", "attr", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
        "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
        "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title",
        "tojson", "trim", "unique", "upper", "wordcount",
    ]

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    static func apply(_ name: String, to v: Value, _ a: EvaluatedArguments, interpreter: Interpreter) throws -> Value {
        func bind(_ names: [String]) throws -> [Value?] { try a.bind(names, function: "do_" + name) }
        switch name {
        case "default", "d":
            let b = try bind(["default_value", "boolean"])
            if v.isUndefined || ((b[1]?.truthy ?? false) && !v.truthy) { return b[0] ?? .string("") }
            return v
        case "length", "count":
            return .int(try length(v))
        case "string":
            return .string(PythonText.str(v))
        case "safe":
            return .string(PythonText.str(v))
        case "e", "escape":
            return .string(PythonText.str(v).replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&#34;")
                .replacingOccurrences(of: "'", with: "&#39;"))
        case "upper": return .string(PythonText.str(v).uppercased())
        case "lower": return .string(PythonText.str(v).lowercased())
        case "capitalize": return .string(PythonText.capitalize(PythonText.str(v)))
        case "title": return .string(title(PythonText.str(v)))
        case "trim":
            let chars = try bind(["chars"])[0]
            let set: String?
            if case .string(let s)? = chars { set = s } else { set = nil }
            return .string(PythonText.strip(PythonText.str(v), set))
        case "replace":
            let b = try bind(["old", "new", "count"])
            var count = -1
            if case .int(let c)? = b[2]?.number { count = c }
            return .string(PythonText.replace(PythonText.str(v), PythonText.str(b[0] ?? .none), PythonText.str(b[1] ?? .none), count: count))
        case "indent": return .string(try indent(PythonText.str(v), try bind(["width", "first", "blank"])))
        case "center":
            let width = (try bind(["width"])[0]).flatMap { if case .int(let w)? = $0.number { return w }; return nil } ?? 80
            let s = PythonText.str(v), n = s.unicodeScalars.count
            guard width > n else { return .string(s) }
            try TemplateLimit.check(width, "center's width")
            // CPython's str.center puts the extra space on the left when the padding and width are both odd.
            let pad = width - n, left = pad / 2 + (pad & width & 1)
            return .string(String(repeating: " ", count: left) + s + String(repeating: " ", count: pad - left))
        case "wordcount":
            let words = PythonText.str(v).unicodeScalars.split { !($0.properties.isAlphabetic || $0.properties.numericType != nil || $0 == "_") }
            return .int(words.count)
        case "format":
            let s = PythonText.str(v)
            if !a.keywords.isEmpty {
                var d = ValueDict()
                for (k, x) in a.keywords { d[.string(k)] = x }
                return .string(try PrintfFormat.format(s, .dict(d)))
            }
            return .string(try PrintfFormat.format(s, .tuple(a.positional)))
        case "first", "last":
            let items = try Operators.iterate(v)
            if let item = name == "first" ? items.first : items.last { return item }
            return .undefined(Undefined(message: "No \(name) item, sequence was empty."))
        case "list": return .list(try Operators.iterate(v))
        case "items":
            if v.isUndefined { return .list([]) }
            guard case .dict(let d) = v else { throw TemplateFailure("TypeError", "Can only get item pairs from a mapping.") }
            return .list(d.pairs.map { .tuple([$0.0, $0.1]) })
        case "join":
            let b = try bind(["d", "attribute"])
            var items = try Operators.iterate(v)
            if let attribute = b[1], !(attribute.isNoneValue) { items = try items.map { try Attribute.get($0, attribute) } }
            return .string(items.map(PythonText.str).joined(separator: PythonText.str(b[0] ?? .string(""))))
        case "reverse":
            if case .string(let s) = v { return .string(PythonText.string(s.unicodeScalars.reversed())) }
            return .list(try Operators.iterate(v).reversed())
        case "int": return try toInt(v, try bind(["default", "base"]))
        case "float":
            let b = try bind(["default"])
            return toFloat(v) ?? b[0] ?? .double(0)
        case "abs":
            switch v.number {
            case .int(let i)?: guard i != Int.min else { throw Operators.overflow }; return .int(abs(i))
            case .double(let d)?: return .double(abs(d))
            case nil:
                if case .undefined(let u) = v { throw TemplateFailure.undefined(u) }
                throw TemplateFailure("TypeError", "bad operand type for abs(): '\(v.typeName)'")
            }
        case "round": return try round(v, try bind(["precision", "method"]))
        case "tojson":
            let b = try bind(["ensure_ascii", "indent", "separators", "sort_keys"])
            return .string(try JSONDump.dumps(v, ensureASCII: b[0]?.truthy ?? false, indent: b[1] ?? .none,
                                              separators: b[2] ?? .none, sortKeys: b[3]?.truthy ?? false))
        case "sort":
            let b = try bind(["reverse", "case_sensitive", "attribute"])
            return .list(try Sorting.sorted(try Operators.iterate(v), reverse: b[0]?.truthy ?? false,
                                            caseSensitive: b[1]?.truthy ?? false, attribute: b[2]))
        case "dictsort":
            let b = try bind(["case_sensitive", "by", "reverse"])
            guard case .dict(let d) = v else { throw TemplateFailure("TypeError", "dictsort expects a mapping") }
            let by = PythonText.str(b[1] ?? .string("key"))
            guard by == "key" || by == "value" else { throw TemplateFailure("FilterArgumentError", "You can only sort by either \"key\" or \"value\"") }
            return .list(try Sorting.sorted(d.pairs.map { .tuple([$0.0, $0.1]) }, reverse: b[2]?.truthy ?? false,
                                            caseSensitive: b[0]?.truthy ?? false, attribute: .int(by == "key" ? 0 : 1)))
        case "unique":
            let b = try bind(["case_sensitive", "attribute"])
            var seen: [Value] = [], out: [Value] = []
            for item in try Operators.iterate(v) {
                var key = try b[1].map { try Attribute.get(item, $0) } ?? item
                if !(b[0]?.truthy ?? false) { key = Sorting.ignoreCase(key) }
                try Operators.checkHashable(key)
                if !seen.contains(where: { Value.pythonEquals($0, key) }) { seen.append(key); out.append(item) }
            }
            return .list(out)
        case "min", "max":
            let b = try bind(["case_sensitive", "attribute"])
            let items = try Operators.iterate(v)
            guard !items.isEmpty else { return .undefined(Undefined(message: "No aggregated item, sequence was empty.")) }
            let sorted = try Sorting.sorted(items, reverse: false, caseSensitive: b[0]?.truthy ?? false, attribute: b[1])
            // Python's min/max keep the first of equal items; a stable sort puts it first for min, last for max.
            if name == "min" { return sorted[0] }
            let keyOf = { (x: Value) in try Sorting.key(x, caseSensitive: b[0]?.truthy ?? false, attribute: b[1]) }
            let top = try keyOf(sorted.last!)
            return try sorted.first { try Value.pythonEquals(keyOf($0), top) } ?? sorted.last!
        case "sum":
            let b = try bind(["attribute", "start"])
            var total = b[1] ?? .int(0)
            for item in try Operators.iterate(v) {
                total = try Operators.binary("+", total, try b[0].map { try Attribute.get(item, $0) } ?? item)
            }
            return total
        case "attr":
            guard case .string(let n)? = try bind(["name"])[0] else { throw TemplateFailure("TypeError", "attr expects a name") }
            return try Operators.attribute(v, n)
        case "map": return .list(try mapFilter(v, a, interpreter: interpreter))
        case "select", "reject", "selectattr", "rejectattr":
            return .list(try selectFilter(name, v, a, interpreter: interpreter))
        default:
            throw TemplateFailure("TemplateAssertionError", "No filter named '\(name)'.")
        }
    }

    static func length(_ v: Value) throws -> Int {
        switch v {
        case .string(let s): return s.unicodeScalars.count
        case .list(let a), .tuple(let a): return a.count
        case .dict(let d): return d.count
        case .undefined: return 0
        default: throw TemplateFailure("TypeError", "object of type '\(v.typeName)' has no len()")
        }
    }

    /// jinja2's `title`: capitalise each word, words starting after `-`, whitespace or an opening bracket.
    private static func title(_ s: String) -> String {
        var out = "", atStart = true
        for c in s.unicodeScalars {
            let separator = PythonText.isSpace(c) || "-({[<".unicodeScalars.contains(c)
            if separator { out.unicodeScalars.append(c); atStart = true; continue }
            out += atStart ? String(c).uppercased() : String(c).lowercased()
            atStart = false
        }
        return out
    }

    private static func indent(_ text: String, _ b: [Value?]) throws -> String {
        var pad = "    "
        switch b[0] {
        case .string(let s)?: pad = s
        case let w? where w.number != nil: if case .int(let n)? = w.number {
            try TemplateLimit.check(n, "indent's width")
            pad = String(repeating: " ", count: max(0, n))
        }
        default: break
        }
        let first = b[1]?.truthy ?? false, blank = b[2]?.truthy ?? false
        // jinja2 appends a newline first so that a trailing newline survives splitlines.
        let lines = PythonText.splitLines(text + "\n", keepEnds: false)
        var rv: String
        if blank {
            rv = lines.joined(separator: "\n" + pad)
        } else {
            rv = lines.first ?? ""
            if lines.count > 1 {
                rv += "\n" + lines.dropFirst().map { $0.isEmpty ? $0 : pad + $0 }.joined(separator: "\n")
            }
        }
        return first ? pad + rv : rv
    }

    private static func toInt(_ v: Value, _ b: [Value?]) throws -> Value {
        let fallback = b[0] ?? .int(0)
        switch v {
        case .bool(let x): return .int(x ? 1 : 0)
        case .int: return v
        case .double(let d):
            guard d.isFinite, abs(d) < 9.2e18 else { return fallback }
            return .int(Int(d.rounded(.towardZero)))
        case .string(let s):
            var base = 10
            if case .int(let x)? = b[1]?.number { base = x }
            let t = PythonText.strip(s, nil).replacingOccurrences(of: "_", with: "")
            if let i = Int(t, radix: base) { return .int(i) }
            if base == 10, let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d.rounded(.towardZero))) }
            return fallback
        default: return fallback
        }
    }

    static func toFloat(_ v: Value) -> Value? {
        switch v {
        case .bool(let x): return .double(x ? 1 : 0)
        case .int(let i): return .double(Double(i))
        case .double: return v
        case .string(let s):
            let t = PythonText.strip(s, nil).lowercased().replacingOccurrences(of: "_", with: "")
            switch t {
            case "inf", "+inf", "infinity", "+infinity": return .double(.infinity)
            case "-inf", "-infinity": return .double(-.infinity)
            case "nan", "+nan", "-nan": return .double(.nan)
            default: return Double(t).map { .double($0) }
            }
        default: return nil
        }
    }

    private static func round(_ v: Value, _ b: [Value?]) throws -> Value {
        var precision = 0
        if case .int(let p)? = b[0]?.number { precision = p }
        let method = PythonText.str(b[1] ?? .string("common"))
        guard let n = v.number else {
            if case .undefined(let u) = v { throw TemplateFailure.undefined(u) }
            throw TemplateFailure("TypeError", "type \(v.typeName) doesn't define __round__ method")
        }
        switch method {
        case "common":
            if case .int(let i) = n { return .int(i) }
            // glibc's printf rounds the exact binary value half-to-even, as Python's round() does.
            let d = n.asDouble
            guard d.isFinite, precision >= 0, precision <= 300 else { return .double(d) }
            return .double(Double(String(format: "%.\(precision)f", d)) ?? d)
        case "floor", "ceil":
            let scale = pow(10.0, Double(precision))
            let x = n.asDouble * scale
            return .double((method == "floor" ? floor(x) : ceil(x)) / scale)
        default:
            throw TemplateFailure("FilterArgumentError", "method must be common, ceil or floor")
        }
    }

    private static func mapFilter(_ v: Value, _ a: EvaluatedArguments, interpreter: Interpreter) throws -> [Value] {
        let items = try Operators.iterate(v)
        if let attribute = a.keywords.first(where: { $0.0 == "attribute" })?.1 {
            let fallback = a.keywords.first(where: { $0.0 == "default" })?.1
            return try items.map { item in
                let r = try Attribute.get(item, attribute)
                if r.isUndefined, let fallback { return fallback }
                return r
            }
        }
        guard case .string(let filter)? = a.positional.first else {
            throw TemplateFailure("FilterArgumentError", "map requires a filter argument")
        }
        let rest = EvaluatedArguments(positional: Array(a.positional.dropFirst()), keywords: a.keywords)
        return try items.map { try apply(filter, to: $0, rest, interpreter: interpreter) }
    }

    private static func selectFilter(_ name: String, _ v: Value, _ a: EvaluatedArguments, interpreter: Interpreter) throws -> [Value] {
        let items = try Operators.iterate(v)
        let byAttribute = name.hasSuffix("attr")
        let keep = name.hasPrefix("select")
        var args = a.positional
        var attribute: Value?
        if byAttribute {
            guard !args.isEmpty else { throw TemplateFailure("FilterArgumentError", "Missing parameter for attribute name") }
            attribute = args.removeFirst()
        }
        return try items.filter { item in
            let subject = try attribute.map { try Attribute.get(item, $0) } ?? item
            let passed: Bool
            if let testName = args.first {
                let rest = EvaluatedArguments(positional: Array(args.dropFirst()), keywords: a.keywords)
                passed = try Tests.apply(PythonText.str(testName), to: subject, rest)
            } else {
                passed = subject.truthy
            }
            return passed == keep
        }
    }
}

extension Value {
    var isNoneValue: Bool { if case .none = self { return true }; return false }
}

/// jinja2's `make_attrgetter`: `"a.b"` looks up `a` then `b`, digits as integer indices.
enum Attribute {
    static func get(_ item: Value, _ attribute: Value) throws -> Value {
        guard case .string(let path) = attribute else { return try Operators.item(item, attribute) }
        var v = item
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            let key: Value = Int(part).map { .int($0) } ?? .string(String(part))
            v = try Operators.item(v, key)
        }
        return v
    }
}

/// Sorting as jinja2's `sort`/`dictsort` do it: Python's stable `sorted`, strings lower-cased unless
/// `case_sensitive`, optionally by attribute (comma-separated attributes sort by several keys).
enum Sorting {
    static func ignoreCase(_ v: Value) -> Value {
        if case .string(let s) = v { return .string(s.lowercased()) }
        return v
    }

    static func key(_ item: Value, caseSensitive: Bool, attribute: Value?) throws -> Value {
        var keys: [Value]
        if case .string(let a)? = attribute, a.contains(",") {
            keys = try a.split(separator: ",").map { try Attribute.get(item, .string(String($0))) }
        } else {
            keys = [try attribute.map { try Attribute.get(item, $0) } ?? item]
        }
        if !caseSensitive { keys = keys.map(ignoreCase) }
        return keys.count == 1 ? keys[0] : .list(keys)
    }

    static func sorted(_ items: [Value], reverse: Bool, caseSensitive: Bool, attribute: Value?) throws -> [Value] {
        let keyed = try items.map { (try key($0, caseSensitive: caseSensitive, attribute: attribute), $0) }
        var failure: Error?
        // Python's reverse sort keeps equal items in their original order, so compare with the sign flipped.
        let result = keyed.enumerated().sorted { x, y in
            do {
                let c = try Value.pythonCompare(x.element.0, y.element.0)
                if c == 0 { return x.offset < y.offset }
                return reverse ? c > 0 : c < 0
            } catch {
                failure = error
                return false
            }
        }
        if let failure { throw failure }
        return result.map { $0.element.1 }
    }
}

/// jinja2's built-in tests (`x is defined`, `x is string`, ...).
enum Tests {
    static let names: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false", "float",
        "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable", "le", "<=", "lower", "lt", "lessthan", "<",
        "mapping", "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "true", "undefined", "upper",
        "filter", "test",
    ]

    static func apply(_ name: String, to v: Value, _ a: EvaluatedArguments) throws -> Bool {
        func other() throws -> Value { try a.bind(["other"], function: name)[0] ?? .none }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": return v.isNoneValue
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "number": return v.number != nil
        case "string": if case .string = v { return true }; return false
        case "mapping": if case .dict = v { return true }; return false
        case "callable": if case .function = v { return true }; return false
        case "escaped": return false
        case "sequence":
            switch v {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "iterable":
            switch v {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "odd", "even":
            guard case .int(let i)? = v.number else { throw TemplateFailure("TypeError", "\(name) test needs a number") }
            return (i & 1 == 1) == (name == "odd")
        case "divisibleby":
            guard case .int(let i)? = v.number, case .int(let n)? = try other().number else {
                throw TemplateFailure("TypeError", "divisibleby needs integers")
            }
            if n == 0 { throw TemplateFailure("ZeroDivisionError", "integer division or modulo by zero") }
            return i % n == 0
        case "eq", "equalto", "==": return try Operators.compare("==", v, other())
        case "ne", "!=": return try Operators.compare("!=", v, other())
        case "lt", "lessthan", "<": return try Operators.compare("<", v, other())
        case "le", "<=": return try Operators.compare("<=", v, other())
        case "gt", "greaterthan", ">": return try Operators.compare(">", v, other())
        case "ge", ">=": return try Operators.compare(">=", v, other())
        case "in": return try Operators.contains(try a.bind(["seq"], function: name)[0] ?? .none, v)
        case "lower", "upper":
            let s = PythonText.str(v)
            let cased = s.unicodeScalars.filter { $0.properties.isCased }
            return !cased.isEmpty && cased.allSatisfy { name == "upper" ? !$0.properties.isLowercase : !$0.properties.isUppercase }
        case "sameas":
            let o = try other()
            switch (v, o) {
            case (.namespace(let x), .namespace(let y)): return x === y
            case (.none, .none): return true
            case (.bool(let x), .bool(let y)): return x == y
            default: return false
            }
        case "filter": return Filters.names.contains(PythonText.str(v))
        case "test": return names.contains(PythonText.str(v))
        default:
            throw TemplateFailure("TemplateAssertionError", "No test named '\(name)'.")
        }
    }
}
