import CJSONC
import Foundation

/// A parsed JSON document. Objects keep their keys in document order (json-c preserves it), which
/// matters when a file is read, changed and written back for a person to diff.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    /// Integers, and doubles that hold an integer exactly.
    public var intValue: Int? {
        switch self {
        case .int(let i): return Int(i)
        case .double(let d) where d.rounded() == d && abs(d) < 9.0e15: return Int(d)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// A short name of the kind of value, for error messages.
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// An insertion-ordered string-keyed map. Keys compare by their exact Unicode scalars: Swift's String
/// equality is canonical equivalence, under which "é" and "e\u{301}" (distinct tokens in real
/// SentencePiece vocabularies) would collapse into one key.
public struct JSONObject: Equatable, Sendable, Sequence {
    public private(set) var keys: [String] = []
    private var values: [ExactKey: JSONValue] = [:]

    struct ExactKey: Hashable, Sendable {
        let text: String
        init(_ text: String) { self.text = text }
        static func == (a: ExactKey, b: ExactKey) -> Bool { a.text.unicodeScalars.elementsEqual(b.text.unicodeScalars) }
        func hash(into h: inout Hasher) { for u in text.unicodeScalars { h.combine(u.value) } }
    }

    public init() {}
    public init(_ pairs: [(String, JSONValue)]) { for (k, v) in pairs { self[k] = v } }

    public subscript(key: String) -> JSONValue? {
        get { values[ExactKey(key)] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: ExactKey(key)) == nil { keys.append(key) }
            } else if values.removeValue(forKey: ExactKey(key)) != nil {
                keys.removeAll { ExactKey($0) == ExactKey(key) }
            }
        }
    }

    public var count: Int { keys.count }

    public func makeIterator() -> AnyIterator<(key: String, value: JSONValue)> {
        var i = 0
        return AnyIterator {
            guard i < keys.count else { return nil }
            defer { i += 1 }
            return (keys[i], values[ExactKey(keys[i])]!)
        }
    }

    public static func == (a: JSONObject, b: JSONObject) -> Bool { a.values == b.values }
}

public enum JSONError: Error, CustomStringConvertible {
    case parse(source: String, message: String)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .parse(let source, let message): return "\(source): invalid JSON: \(message)"
        case .unreadable(let path, let reason): return "\(path): cannot read: \(reason)"
        }
    }
}

extension JSONValue {
    /// Parses `bytes` with json-c. `source` names the file (or stream) in errors.
    public static func parse(bytes: UnsafeRawBufferPointer, source: String) throws -> JSONValue {
        guard let tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH) else {
            throw JSONError.parse(source: source, message: "out of memory")
        }
        defer { json_tokener_free(tok) }
        json_tokener_set_flags(tok, Int32(JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8))
        guard bytes.count < Int(Int32.max) else {
            throw JSONError.parse(source: source, message: "document larger than 2 GiB")
        }
        let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self)
        let empty: [CChar] = [0]
        let obj = empty.withUnsafeBufferPointer { e in
            json_tokener_parse_ex(tok, base ?? e.baseAddress!, Int32(bytes.count))
        }
        let err = json_tokener_get_error(tok)
        if err != json_tokener_success || obj == nil && bytes.count == 0 {
            let offset = Int(json_tokener_get_parse_end(tok))
            // json-c's "continue" means it wanted more input: the document stops before it is complete.
            let message = bytes.count == 0 ? "empty document"
                : err == json_tokener_continue ? "the document ends before it is complete (truncated?)"
                : String(cString: json_tokener_error_desc(err))
            throw JSONError.parse(source: source, message: "\(message) at \(position(of: offset, in: bytes))")
        }
        let end = Int(json_tokener_get_parse_end(tok))
        if end < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[end...])
            if rest.contains(where: { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }) {
                json_object_put(obj)
                throw JSONError.parse(source: source, message: "trailing characters after the document at \(position(of: end, in: bytes))")
            }
        }
        defer { json_object_put(obj) }
        // json-c turns an unpaired \uD800–\uDFFF escape into U+FFFD: the text would silently differ from
        // the file. Rust's serde_json (which HF tokenizers uses) refuses such a file; so do we.
        if let at = loneSurrogateEscape(in: bytes) {
            let hex = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[at..<min(at + 6, bytes.count)]), as: UTF8.self)
            throw JSONError.parse(source: source, message: "'\(hex)' is a lone UTF-16 surrogate escape, not a character (a high surrogate \\uD800–\\uDBFF must be followed by a low one \\uDC00–\\uDFFF) at \(position(of: at, in: bytes))")
        }
        return convert(obj)
    }

    /// The offset of the first `\uXXXX` escape inside a string that is a surrogate without its pair, or nil.
    /// Skipped in one pass when the document has no `\uD`/`\ud` at all (the common case).
    static func loneSurrogateEscape(in bytes: UnsafeRawBufferPointer) -> Int? {
        func hexValue(_ i: Int) -> Int? {
            guard i + 6 <= bytes.count, bytes[i] == 0x5C, bytes[i + 1] == 0x75 else { return nil }
            var v = 0
            for k in 2..<6 {
                let c = bytes[i + k]
                switch c {
                case 0x30...0x39: v = v * 16 + Int(c - 0x30)
                case 0x41...0x46: v = v * 16 + Int(c - 0x37)
                case 0x61...0x66: v = v * 16 + Int(c - 0x57)
                default: return nil
                }
            }
            return v
        }
        var mayHave = false
        for i in 0..<max(0, bytes.count - 2) where bytes[i] == 0x5C && bytes[i + 1] == 0x75 && (bytes[i + 2] | 0x20) == 0x64 {
            mayHave = true
            break
        }
        guard mayHave else { return nil }
        var inString = false, i = 0
        while i < bytes.count {
            let c = bytes[i]
            if !inString {
                if c == 0x22 { inString = true }
                i += 1
                continue
            }
            switch c {
            case 0x22: inString = false; i += 1
            case 0x5C:
                guard let v = hexValue(i) else { i += 2; continue }
                if (0xD800...0xDBFF).contains(v) {
                    guard let low = hexValue(i + 6), (0xDC00...0xDFFF).contains(low) else { return i }
                    i += 12
                } else if (0xDC00...0xDFFF).contains(v) {
                    return i
                } else {
                    i += 6
                }
            default: i += 1
            }
        }
        return nil
    }

    /// "line L, column C (byte N)" of a byte offset, for messages a user can find in an editor.
    private static func position(of offset: Int, in bytes: UnsafeRawBufferPointer) -> String {
        let before = UnsafeRawBufferPointer(rebasing: bytes[..<min(offset, bytes.count)])
        let line = before.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        let lineStart = before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        let column = String(decoding: UnsafeRawBufferPointer(rebasing: before[lineStart...]), as: UTF8.self).count + 1
        return "line \(line), column \(column) (byte \(offset))"
    }

    public static func parse(_ text: String, source: String = "<string>") throws -> JSONValue {
        var copy = text
        return try copy.withUTF8 { try parse(bytes: UnsafeRawBufferPointer($0), source: source) }
    }

    public static func parse(data: Data, source: String) throws -> JSONValue {
        try data.withUnsafeBytes { try parse(bytes: $0, source: source) }
    }

    public static func read(path: String) throws -> JSONValue {
        let data = try RegularFile.contents(path) { JSONError.unreadable(path: path, reason: $0) }
        return try parse(data: data, source: path)
    }

    private static func convert(_ obj: OpaquePointer?) -> JSONValue {
        guard let obj else { return .null }
        switch json_object_get_type(obj) {
        case json_type_null: return .null
        case json_type_boolean: return .bool(json_object_get_boolean(obj) != 0)
        case json_type_int:
            // json-c keeps integers above Int64.max as uint64 (and clamps larger ones to UInt64.max); read
            // as Int64 they would all become 9223372036854775807, a value the file never held.
            let u = json_object_get_uint64(obj), i = json_object_get_int64(obj)
            if i == Int64.max, u > UInt64(Int64.max) { return .double(Double(u)) }
            return .int(i)
        case json_type_double: return .double(json_object_get_double(obj))
        case json_type_string:
            let len = Int(json_object_get_string_len(obj))
            let ptr = json_object_get_string(obj)!
            return .string(ptr.withMemoryRebound(to: UInt8.self, capacity: len) {
                String(decoding: UnsafeBufferPointer(start: $0, count: len), as: UTF8.self)
            })
        case json_type_array:
            let n = json_object_array_length(obj)
            var items: [JSONValue] = []
            items.reserveCapacity(n)
            for i in 0..<n { items.append(convert(json_object_array_get_idx(obj, i))) }
            return .array(items)
        case json_type_object:
            var result = JSONObject()
            var it = json_object_iter_begin(obj)
            var end = json_object_iter_end(obj)
            while json_object_iter_equal(&it, &end) == 0 {
                let key = String(cString: json_object_iter_peek_name(&it))
                result[key] = convert(json_object_iter_peek_value(&it))
                json_object_iter_next(&it)
            }
            return .object(result)
        default: return .null
        }
    }
}
