import Foundation

/// Decodes `Decodable` types from a `JSONValue` tree. Errors name the source file and the key path
/// (`config.json: rope_scaling.factor: expected a number, found a string`).
public struct JSONValueDecoder {
    public var source: String
    public init(source: String) { self.source = source }

    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        do {
            return try T(from: _Decoder(value: value, codingPath: []))
        } catch let error as DecodingError {
            throw ConfigDecodingError(source: source, underlying: error)
        }
    }
}

public struct ConfigDecodingError: Error, CustomStringConvertible {
    public let source: String
    public let underlying: DecodingError

    public var description: String {
        func path(_ p: [CodingKey]) -> String {
            p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch underlying {
        case .keyNotFound(let key, let ctx):
            let at = path(ctx.codingPath)
            return "\(source): missing required key '\(at.isEmpty ? key.stringValue : at + "." + key.stringValue)'"
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
            return "\(source): \(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default:
            return "\(source): \(underlying)"
        }
    }
}

private struct _Key: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { self.stringValue = "\(intValue)"; self.intValue = intValue }
}

private struct _Decoder: Decoder {
    let value: JSONValue
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let o) = value else {
            throw DecodingError.typeMismatch([String: Any].self, .init(codingPath: codingPath, debugDescription: "expected an object, found \(value.kindName)"))
        }
        return KeyedDecodingContainer(_Keyed<Key>(object: o, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .array(let a) = value else {
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath, debugDescription: "expected an array, found \(value.kindName)"))
        }
        return _Unkeyed(items: a, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { _Single(value: value, codingPath: codingPath) }
}

private func mismatch(_ expected: String, _ value: JSONValue, _ path: [CodingKey]) -> DecodingError {
    .typeMismatch(Any.self, .init(codingPath: path, debugDescription: "expected \(expected), found \(value.kindName)"))
}

private func decodeScalar<T: Decodable>(_ type: T.Type, _ value: JSONValue, _ path: [CodingKey]) throws -> T {
    switch type {
    case is Bool.Type:
        guard let b = value.boolValue else { throw mismatch("a boolean", value, path) }
        return b as! T
    case is String.Type:
        guard let s = value.stringValue else { throw mismatch("a string", value, path) }
        return s as! T
    case is Double.Type:
        guard let d = value.doubleValue else { throw mismatch("a number", value, path) }
        return d as! T
    case is Float.Type:
        guard let d = value.doubleValue else { throw mismatch("a number", value, path) }
        return Float(d) as! T
    case is Int.Type:
        guard let i = value.intValue else { throw mismatch("an integer", value, path) }
        return i as! T
    case is Int64.Type:
        guard let i = value.intValue else { throw mismatch("an integer", value, path) }
        return Int64(i) as! T
    case is Int32.Type:
        guard let i = value.intValue, let v = Int32(exactly: i) else { throw mismatch("a 32-bit integer", value, path) }
        return v as! T
    case is UInt64.Type:
        guard let i = value.intValue, i >= 0 else { throw mismatch("a non-negative integer", value, path) }
        return UInt64(i) as! T
    case is JSONValue.Type:
        return value as! T
    default:
        return try T(from: _Decoder(value: value, codingPath: path))
    }
}

private struct _Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: JSONObject
    let codingPath: [CodingKey]
    var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

    private func value(_ key: Key) throws -> JSONValue {
        guard let v = object[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing key"))
        }
        return v
    }

    func decodeNil(forKey key: Key) throws -> Bool { object[key.stringValue]?.isNull ?? true }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let v = try value(key)
        if v.isNull && !(type == JSONValue.self) {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath + [key], debugDescription: "expected a value, found null"))
        }
        return try decodeScalar(type, v, codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try _Decoder(value: value(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try _Decoder(value: value(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder { _Decoder(value: .object(object), codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> Decoder { try _Decoder(value: value(key), codingPath: codingPath + [key]) }
}

private struct _Unkeyed: UnkeyedDecodingContainer {
    let items: [JSONValue]
    let codingPath: [CodingKey]
    var currentIndex = 0
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(items: [JSONValue], codingPath: [CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    private mutating func next() throws -> (JSONValue, [CodingKey]) {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath, debugDescription: "array has only \(items.count) items"))
        }
        defer { currentIndex += 1 }
        return (items[currentIndex], codingPath + [_Key(intValue: currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        if !isAtEnd, items[currentIndex].isNull { currentIndex += 1; return true }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (v, path) = try next()
        return try decodeScalar(type, v, path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (v, path) = try next()
        return try _Decoder(value: v, codingPath: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        let (v, path) = try next()
        return try _Decoder(value: v, codingPath: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> Decoder {
        let (v, path) = try next()
        return _Decoder(value: v, codingPath: path)
    }
}

private struct _Single: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [CodingKey]
    func decodeNil() -> Bool { value.isNull }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeScalar(type, value, codingPath) }
}

extension JSONValue: Decodable {
    public init(from decoder: Decoder) throws {
        // Only reachable through decoders other than ours; ours hands the tree over directly.
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else if let o = try? c.decode([String: JSONValue].self) {
            self = .object(JSONObject(o.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a JSON value"))
        }
    }
}
