import Foundation

/// The containers behind `YAMLDecoder`. They record problems in the shared state and hand out
/// placeholders instead of throwing, so one decoding pass finds every problem of a document.
struct KeyedNodeContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: NodeDecoder
    let entries: [YAMLEntry]
    let tracked: TrackedMapping?

    var codingPath: [CodingKey] { decoder.codingPath }
    var allKeys: [Key] { entries.compactMap { Key(stringValue: $0.key) } }

    private func entry(_ key: Key) -> YAMLNode? {
        tracked?.accessed.insert(key.stringValue)
        return entries.first { $0.key == key.stringValue }?.value
    }

    private func missing(_ key: Key) {
        let node = decoder.node
        let place = node.mark.isOverride ? "" : " (in the mapping starting at line \(node.mark.line))"
        decoder.record(node.mark, codingPath + [key], "missing required key '\(key.stringValue)'\(place)")
    }

    func contains(_ key: Key) -> Bool { entry(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { entry(key)?.isNull ?? true }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let path = codingPath + [key]
        guard let value = entry(key) else {
            missing(key)
            if let p = try decoder.placeholder(type, path: path) { return p }
            tracked?.aborted = true
            throw AlreadyReported()
        }
        do {
            return try decoder.decodeValue(type, node: value, path: path)
        } catch {
            tracked?.aborted = true
            throw error
        }
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let value = entry(key), !value.isNull else { return nil }
        do {
            return try decoder.decodeValue(type, node: value, path: codingPath + [key])
        } catch is AlreadyReported {
            return nil
        }
    }

    private func nestedDecoder(_ key: Key) -> NodeDecoder {
        guard let value = entry(key) else {
            missing(key)
            return decoder.child(YAMLNode(.mapping([]), mark: decoder.node.mark), codingPath + [key], muted: true)
        }
        return decoder.child(value, codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try nestedDecoder(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try nestedDecoder(key).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> Decoder { nestedDecoder(key) }
}

struct UnkeyedNodeContainer: UnkeyedDecodingContainer {
    let decoder: NodeDecoder
    let items: [YAMLNode]
    var currentIndex = 0

    init(decoder: NodeDecoder, items: [YAMLNode]) {
        self.decoder = decoder
        self.items = items
    }

    var codingPath: [CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func next() throws -> (YAMLNode, [CodingKey]) {
        guard !isAtEnd else {
            decoder.record(decoder.node.mark, codingPath, "expected more items, the list has only \(items.count)")
            throw AlreadyReported()
        }
        defer { currentIndex += 1 }
        return (items[currentIndex], codingPath + [PathKey(intValue: currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        if !isAtEnd, items[currentIndex].isNull { currentIndex += 1; return true }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (node, path) = try next()
        return try decoder.decodeValue(type, node: node, path: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (node, path) = try next()
        return try decoder.child(node, path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        let (node, path) = try next()
        return try decoder.child(node, path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> Decoder {
        let (node, path) = try next()
        return decoder.child(node, path)
    }
}

struct SingleNodeContainer: SingleValueDecodingContainer {
    let decoder: NodeDecoder
    var codingPath: [CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.node.isNull }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try decoder.decodeValue(type, node: decoder.node, path: codingPath)
    }
}
