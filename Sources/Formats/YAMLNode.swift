import Foundation

/// Where a node came from: a place in a YAML file (1-based line and column), or a command-line
/// override, so every error can point at the text the user has to change.
public struct YAMLMark: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var source: String
    /// 1-based; 0 for values that did not come from a file (command-line overrides).
    public var line: Int
    public var column: Int

    public init(source: String, line: Int, column: Int) {
        self.source = source
        self.line = line
        self.column = column
    }

    /// The mark of a value given on the command line as `key.path=value`.
    public static func override(_ text: String) -> YAMLMark {
        YAMLMark(source: "command line override '\(text)'", line: 0, column: 0)
    }

    public var isOverride: Bool { line == 0 }

    public var description: String { line > 0 ? "\(source):\(line):\(column)" : source }
}

/// One key of a mapping with the place the key was written.
public struct YAMLEntry: Equatable, Sendable {
    public var key: String
    public var keyMark: YAMLMark
    public var value: YAMLNode

    public init(key: String, keyMark: YAMLMark, value: YAMLNode) {
        self.key = key
        self.keyMark = keyMark
        self.value = value
    }
}

/// A parsed YAML value with its source position. Scalars are already resolved to their type
/// (core schema); mappings keep the key order of the document.
public struct YAMLNode: Equatable, Sendable {
    public enum Value: Equatable, Sendable {
        case null
        case bool(Bool)
        case int(Int64)
        case double(Double)
        case string(String)
        case sequence([YAMLNode])
        case mapping([YAMLEntry])
    }

    public var value: Value
    public var mark: YAMLMark

    public init(_ value: Value, mark: YAMLMark) {
        self.value = value
        self.mark = mark
    }

    // MARK: Access

    public subscript(key: String) -> YAMLNode? {
        guard case .mapping(let entries) = value else { return nil }
        return entries.first { $0.key == key }?.value
    }

    public var entries: [YAMLEntry]? { if case .mapping(let e) = value { return e }; return nil }
    public var items: [YAMLNode]? { if case .sequence(let s) = value { return s }; return nil }
    public var stringValue: String? { if case .string(let s) = value { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = value { return b }; return nil }
    public var isNull: Bool { value == .null }

    public var intValue: Int64? {
        switch value {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9.0e15: return Int64(d)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch value {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// Follows a dotted path (`training.learning_rate`, `data.train.0.path`).
    public func node(at path: [String]) -> YAMLNode? {
        var current = self
        for part in path {
            switch current.value {
            case .mapping(let entries):
                guard let next = entries.first(where: { $0.key == part })?.value else { return nil }
                current = next
            case .sequence(let items):
                guard let i = Int(part), items.indices.contains(i) else { return nil }
                current = items[i]
            default:
                return nil
            }
        }
        return current
    }

    /// What the node is, with its text for scalars, for "expected X, found Y" messages.
    public var foundDescription: String {
        switch value {
        case .null: return "null"
        case .bool(let b): return "the boolean \(b)"
        case .int(let i): return "the integer \(i)"
        case .double(let d): return "the number \(YAMLScalar.format(d))"
        case .string(let s):
            let shown = s.count > 60 ? String(s.prefix(57)) + "..." : s
            return "the string '\(shown)'"
        case .sequence(let items): return "a list of \(items.count) item\(items.count == 1 ? "" : "s")"
        case .mapping: return "a mapping"
        }
    }

    /// Gives every node of the tree the same mark (used for values parsed from an override).
    public func remarked(_ mark: YAMLMark) -> YAMLNode {
        switch value {
        case .sequence(let items): return YAMLNode(.sequence(items.map { $0.remarked(mark) }), mark: mark)
        case .mapping(let entries):
            return YAMLNode(.mapping(entries.map { YAMLEntry(key: $0.key, keyMark: mark, value: $0.value.remarked(mark)) }), mark: mark)
        default: return YAMLNode(value, mark: mark)
        }
    }
}

// MARK: - JSON bridge

extension YAMLNode {
    /// The same tree as a `JSONValue`, so JSON and YAML files can share one decoding path.
    public var jsonValue: JSONValue {
        switch value {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .sequence(let items): return .array(items.map(\.jsonValue))
        case .mapping(let entries): return .object(JSONObject(entries.map { ($0.key, $0.value.jsonValue) }))
        }
    }

    /// A tree built from JSON; every node gets `mark` (JSON has no line information here).
    public init(json: JSONValue, mark: YAMLMark) {
        switch json {
        case .null: self.init(.null, mark: mark)
        case .bool(let b): self.init(.bool(b), mark: mark)
        case .int(let i): self.init(.int(i), mark: mark)
        case .double(let d): self.init(.double(d), mark: mark)
        case .string(let s): self.init(.string(s), mark: mark)
        case .array(let a): self.init(.sequence(a.map { YAMLNode(json: $0, mark: mark) }), mark: mark)
        case .object(let o):
            self.init(.mapping(o.map { YAMLEntry(key: $0.key, keyMark: mark, value: YAMLNode(json: $0.value, mark: mark)) }), mark: mark)
        }
    }
}

// MARK: - Scalar resolution

/// Plain-scalar typing close to YAML 1.2's core schema, which is what PyYAML/OmegaConf users
/// expect from recipes: `2e-5` is a float (PyYAML's 1.1 rules would make it a string, a classic
/// torchtune surprise), `yes`/`no`/`on`/`off` stay strings. Quoted scalars are never resolved.
public enum YAMLScalar {
    public static func resolve(_ text: String) -> YAMLNode.Value {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
        case ".nan", ".NaN", ".NAN": return .double(.nan)
        default: break
        }
        guard let first = text.utf8.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+")
                || first == UInt8(ascii: ".") || (first >= 0x30 && first <= 0x39) else { return .string(text) }
        if let i = integer(text) { return i }
        if isFloat(text), let d = Double(text.replacingOccurrences(of: "_", with: "")) { return .double(d) }
        return .string(text)
    }

    private static func integer(_ text: String) -> YAMLNode.Value? {
        var body = Substring(text)
        var negative = false
        if body.first == "-" || body.first == "+" { negative = body.first == "-"; body = body.dropFirst() }
        var radix = 10
        if body.hasPrefix("0x") { radix = 16; body = body.dropFirst(2) }
        else if body.hasPrefix("0o") { radix = 8; body = body.dropFirst(2) }
        // Underscores as digit separators (1_000_000) are accepted, as PyYAML and OmegaConf do.
        guard !body.isEmpty, body.first != "_", body.last != "_" else { return nil }
        let digits = body.filter { $0 != "_" }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isHexDigit && Int(String($0), radix: radix) != nil }) else { return nil }
        if let magnitude = UInt64(digits, radix: radix) {
            if negative {
                if magnitude <= UInt64(Int64.max) { return .int(-Int64(magnitude)) }
                if magnitude == UInt64(Int64.max) + 1 { return .int(Int64.min) }
            } else if magnitude <= UInt64(Int64.max) {
                return .int(Int64(magnitude))
            }
        }
        // Too large for 64 bits: keep it as a number rather than silently turning it into text.
        guard radix == 10, let d = Double(digits) else { return nil }
        return .double(negative ? -d : d)
    }

    /// `[-+]? ( \.[0-9]+ | [0-9][0-9_]* (\.[0-9_]*)? ) ([eE][-+]?[0-9]+)?`
    private static func isFloat(_ text: String) -> Bool {
        let b = Array(text.utf8)
        var i = 0
        func digits() -> Int {
            let start = i
            while i < b.count, (b[i] >= 0x30 && b[i] <= 0x39) || (b[i] == UInt8(ascii: "_") && i > start) { i += 1 }
            return i - start
        }
        if i < b.count, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") { i += 1 }
        let whole = digits()
        var fraction = 0
        if i < b.count, b[i] == UInt8(ascii: ".") { i += 1; fraction = digits() }
        guard whole > 0 || fraction > 0 else { return false }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") { i += 1 }
            let start = i
            while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }
            guard i > start else { return false }
        }
        return i == b.count
    }

    /// Shortest text that reads back as the same double and as a float (never as an int).
    public static func format(_ d: Double) -> String {
        if d.isNaN { return ".nan" }
        if d.isInfinite { return d < 0 ? "-.inf" : ".inf" }
        let s = "\(d)"
        return s.contains(".") || s.contains("e") ? s : s + ".0"
    }
}

/// One thing wrong with a YAML document: where (file:line:column or the override), at which key
/// path, and what. `validate` prints a list of these, one per line.
public struct YAMLProblem: Error, Equatable, Sendable, CustomStringConvertible {
    public var mark: YAMLMark?
    /// Dotted key path (`training.learning_rate`, `data.train[0].path`); empty for the document.
    public var path: String
    public var message: String

    public init(mark: YAMLMark?, path: String, message: String) {
        self.mark = mark
        self.path = path
        self.message = message
    }

    public var description: String {
        var s = mark.map { "\($0): " } ?? ""
        if !path.isEmpty { s += "\(path): " }
        return s + message
    }
}

/// Every problem found in a document (parse, override, reference or decoding), in document order.
public struct YAMLError: Error, Equatable, Sendable, CustomStringConvertible {
    public var problems: [YAMLProblem]

    public init(_ problems: [YAMLProblem]) { self.problems = problems }
    public init(mark: YAMLMark?, path: String = "", message: String) {
        self.problems = [YAMLProblem(mark: mark, path: path, message: message)]
    }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Sorts problems by where they are, so a report reads top to bottom like the file.
func sortedByPosition(_ problems: [YAMLProblem]) -> [YAMLProblem] {
    problems.enumerated().sorted { a, b in
        let (ma, mb) = (a.element.mark, b.element.mark)
        let ka = (ma?.isOverride ?? true ? 1 : 0, ma?.line ?? 0, ma?.column ?? 0, a.offset)
        let kb = (mb?.isOverride ?? true ? 1 : 0, mb?.line ?? 0, mb?.column ?? 0, b.offset)
        return ka < kb
    }.map(\.element)
}

/// "did you mean 'learning_rate'?" for a misspelt key or enum value.
public enum Suggestion {
    public static func closest(to word: String, in candidates: [String]) -> String? {
        let limit = max(2, word.count / 3)
        var best: (String, Int)?
        for c in candidates {
            let d = distance(word.lowercased(), c.lowercased())
            if d <= limit, best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    /// Levenshtein distance with adjacent transpositions counted as one edit.
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var prev2 = [Int](repeating: 0, count: y.count + 1)
        var prev = Array(0...y.count)
        var cur = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            cur[0] = i
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] { cur[j] = min(cur[j], prev2[j - 2] + 1) }
            }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[y.count]
    }

    public static func phrase(for word: String, in candidates: [String]) -> String {
        closest(to: word, in: candidates).map { " (did you mean '\($0)'?)" } ?? ""
    }
}

/// Formats a key path as `a.b[0].c`.
func joinPath(_ parts: [String]) -> String {
    var s = ""
    for p in parts {
        if p.hasPrefix("[") { s += p } else { s += s.isEmpty ? p : "." + p }
    }
    return s
}
