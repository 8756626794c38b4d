import Foundation

/// Decodes `Decodable` types from a `YAMLNode`, reporting every problem of a document at once,
/// each with file:line:column, the full key path, what was expected and what was found.
///
/// How problems are collected: a wrong scalar, a missing key or a bad enum value is recorded and
/// decoding continues with a placeholder value, so later fields are still checked; the decoded
/// value is only returned when there were no problems at all.
///
/// How unknown keys are found: every mapping opened as a keyed container remembers which keys
/// the type asked for. Synthesized `init(from:)` asks for every stored property (with
/// `decodeIfPresent` for optionals), so after decoding, any key nobody asked for is unknown and is
/// reported with a "did you mean" taken from the keys that were asked for. When a type's
/// `CodingKeys` is `CaseIterable`, its cases count as known as well, which is what a hand-written
/// `init(from:)` that reads keys conditionally needs. Types that accept arbitrary keys decode a
/// `[String: T]`/`JSONValue`, or conform to `YAMLAllowsUnknownKeys`.
public struct YAMLDecoder {
    public var allowUnknownKeys: Bool
    public var userInfo: [CodingUserInfoKey: Any]

    public init(allowUnknownKeys: Bool = false, userInfo: [CodingUserInfoKey: Any] = [:]) {
        self.allowUnknownKeys = allowUnknownKeys
        self.userInfo = userInfo
    }

    public func decode<T: Decodable>(_ type: T.Type, from node: YAMLNode) throws -> T {
        let (value, problems) = decodeCollectingErrors(type, from: node)
        guard let value, problems.isEmpty else { throw YAMLError(problems) }
        return value
    }

    /// The value when the document is entirely right, and every problem found otherwise.
    public func decodeCollectingErrors<T: Decodable>(_ type: T.Type, from node: YAMLNode) -> (T?, [YAMLProblem]) {
        let state = DecodingState(userInfo: userInfo)
        let decoder = NodeDecoder(node: node, codingPath: [], state: state, muted: false, openKeys: false)
        let value = try? decoder.decodeValue(T.self, node: node, path: [])
        if !allowUnknownKeys { state.reportUnknownKeys() }
        let problems = sortedByPosition(state.problems)
        return (problems.isEmpty ? value : nil, problems)
    }
}

/// Types whose mapping may hold keys they do not read (free-form sections passed through).
public protocol YAMLAllowsUnknownKeys {}

/// Thrown upward once a problem has been recorded and no placeholder could stand in for the value.
struct AlreadyReported: Error {}

final class DecodingState {
    var problems: [YAMLProblem] = []
    let userInfo: [CodingUserInfoKey: Any]
    private var mappings: [String: TrackedMapping] = [:]
    private var order: [String] = []

    init(userInfo: [CodingUserInfoKey: Any]) { self.userInfo = userInfo }

    func record(_ mark: YAMLMark?, _ path: [CodingKey], _ message: String) {
        problems.append(YAMLProblem(mark: mark, path: pathText(path), message: message))
    }

    func track(_ node: YAMLNode, path: [CodingKey], knownKeys: [String]?) -> TrackedMapping {
        let id = "\(node.mark)|\(pathText(path))"
        if let existing = mappings[id] {
            if let knownKeys { existing.known.formUnion(knownKeys) }
            return existing
        }
        let t = TrackedMapping(node: node, path: path, known: knownKeys)
        mappings[id] = t
        order.append(id)
        return t
    }

    func reportUnknownKeys() {
        for id in order {
            let m = mappings[id]!
            // A mapping whose decoding stopped early was not asked about all its keys.
            guard !m.openKeys, !m.aborted || m.hasCaseList else { continue }
            let candidates = m.known.union(m.accessed)
            let present = Set(m.node.entries?.map(\.key) ?? [])
            for entry in m.node.entries ?? [] where !candidates.contains(entry.key) {
                let unused = candidates.subtracting(present).sorted()
                problems.append(YAMLProblem(mark: entry.keyMark, path: pathText(m.path + [PathKey(entry.key)]),
                                            message: "unknown key '\(entry.key)'" + Suggestion.phrase(for: entry.key, in: unused)))
            }
        }
    }
}

final class TrackedMapping {
    let node: YAMLNode
    let path: [CodingKey]
    var known: Set<String>
    let hasCaseList: Bool
    var accessed = Set<String>()
    var aborted = false
    var openKeys = false

    init(node: YAMLNode, path: [CodingKey], known: [String]?) {
        self.node = node
        self.path = path
        self.known = Set(known ?? [])
        self.hasCaseList = known != nil
    }
}

struct PathKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { stringValue = "\(intValue)"; self.intValue = intValue }
}

func pathText(_ path: [CodingKey]) -> String {
    joinPath(path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue })
}

private func caseNames<K: CaseIterable>(_: K.Type) -> [String] {
    K.allCases.compactMap { ($0 as? CodingKey)?.stringValue }
}

/// Case names and values of a `CaseIterable` enum with `String` or `Int` raw values.
private func enumCases<E: CaseIterable & RawRepresentable>(_: E.Type) -> [(name: String, value: Any)] {
    E.allCases.compactMap { c in
        if let s = c.rawValue as? String { return (s, c) }
        if let i = c.rawValue as? Int { return ("\(i)", c) }
        return nil
    }
}

struct NodeDecoder: Decoder {
    let node: YAMLNode
    let codingPath: [CodingKey]
    let state: DecodingState
    /// Set inside a value already reported as wrong: placeholders are produced silently.
    let muted: Bool
    let openKeys: Bool
    var userInfo: [CodingUserInfoKey: Any] { state.userInfo }

    func child(_ node: YAMLNode, _ path: [CodingKey], muted: Bool? = nil, openKeys: Bool = false) -> NodeDecoder {
        NodeDecoder(node: node, codingPath: path, state: state, muted: muted ?? self.muted, openKeys: openKeys)
    }

    func record(_ mark: YAMLMark?, _ path: [CodingKey], _ message: String) {
        if !muted { state.record(mark, path, message) }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let entries = node.entries else {
            record(node.mark, codingPath, "expected a mapping, found \(node.foundDescription)")
            return KeyedDecodingContainer(KeyedNodeContainer<Key>(decoder: child(YAMLNode(.mapping([]), mark: node.mark), codingPath, muted: true), entries: [], tracked: nil))
        }
        var tracked: TrackedMapping?
        if !muted {
            let known = (Key.self as? any CaseIterable.Type).map { caseNames($0) }
            tracked = state.track(node, path: codingPath, knownKeys: known)
            if openKeys { tracked?.openKeys = true }
        }
        return KeyedDecodingContainer(KeyedNodeContainer<Key>(decoder: self, entries: entries, tracked: tracked))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard let items = node.items else {
            record(node.mark, codingPath, "expected a list, found \(node.foundDescription)")
            return UnkeyedNodeContainer(decoder: child(node, codingPath, muted: true), items: [])
        }
        return UnkeyedNodeContainer(decoder: self, items: items)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { SingleNodeContainer(decoder: self) }

    // MARK: Values

    func decodeValue<T: Decodable>(_ type: T.Type, node: YAMLNode, path: [CodingKey]) throws -> T {
        if let scalar = try decodeScalar(type, node: node, path: path) { return scalar }
        if type == YAMLNode.self { return node as! T }
        if type == JSONValue.self { return node.jsonValue as! T }
        guard path.count < 200 else { throw AlreadyReported() }  // a recursive type decoded from nothing
        let decoder = child(node, path, openKeys: T.self is YAMLAllowsUnknownKeys.Type)
        let problemsBefore = state.problems.count
        do {
            return try T(from: decoder)
        } catch {
            if let e = T.self as? any (CaseIterable & RawRepresentable).Type {
                let cases = enumCases(e)
                if let first = cases.first?.value as? T {
                    // "expected a string" from inside the enum's init says less than the list of cases.
                    if !muted { state.problems.removeSubrange(problemsBefore...) }
                    let names = cases.map(\.name)
                    let found = node.stringValue ?? node.foundDescription
                    record(node.mark, path, "expected one of \(names.map { "'\($0)'" }.joined(separator: ", ")), found \(node.foundDescription)"
                           + Suggestion.phrase(for: found, in: names))
                    return first
                }
            }
            // A type's own check failing on a placeholder is a consequence of a problem already reported.
            if !(error is AlreadyReported), state.problems.count == problemsBefore { recordForeign(error, node: node, path: path) }
            if let p = try placeholder(type, path: path, structs: !muted) { return p }
            throw AlreadyReported()
        }
    }

    /// An error thrown by a type's own `init(from:)` (validation, RawRepresentable, URL, ...).
    private func recordForeign(_ error: Error, node: YAMLNode, path: [CodingKey]) {
        guard let e = error as? DecodingError else {
            record(node.mark, path, "\(error)")
            return
        }
        let ctx: DecodingError.Context
        switch e {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c): ctx = c
        @unknown default: record(node.mark, path, "\(e)"); return
        }
        var at = node
        for key in ctx.codingPath.dropFirst(path.count) {
            guard let next = at.node(at: [key.intValue.map(String.init) ?? key.stringValue]) else { break }
            at = next
        }
        var message = ctx.debugDescription
        if case .keyNotFound(let key, _) = e { message = "missing required key '\(key.stringValue)'" }
        record(at.mark, ctx.codingPath.count >= path.count ? ctx.codingPath : path, message)
    }

    /// A stand-in for a value that could not be decoded, so decoding of the siblings can go on.
    func placeholder<T: Decodable>(_ type: T.Type, path: [CodingKey], structs: Bool = true) throws -> T? {
        if let p = scalarPlaceholder(type) { return p }
        if let e = T.self as? any (CaseIterable & RawRepresentable).Type, let first = enumCases(e).first?.value as? T { return first }
        // A stand-in that itself failed would be retried at the same path forever.
        if !structs { return nil }
        let empty = YAMLNode(.mapping([]), mark: node.mark)
        return try? child(empty, path, muted: true).decodeValue(type, node: empty, path: path)
    }

    private func scalarPlaceholder<T>(_ type: T.Type) -> T? {
        if let e = T.self as? any YAMLEmptyValue.Type { return e.yamlEmpty as? T }
        return nil
    }

    /// Bool, String and the number types; nil for every other type.
    private func decodeScalar<T>(_ type: T.Type, node: YAMLNode, path: [CodingKey]) throws -> T? {
        guard let kind = T.self as? any YAMLEmptyValue.Type, kind.isScalar else { return nil }
        func fail(_ expected: String) -> T {
            record(node.mark, path, "expected \(expected), found \(node.foundDescription)")
            return kind.yamlEmpty as! T
        }
        switch type {
        case is Bool.Type: return node.boolValue.map { $0 as! T } ?? fail("a boolean (true or false)")
        case is String.Type: return node.stringValue.map { $0 as! T } ?? fail("a string")
        case is Double.Type: return node.doubleValue.map { $0 as! T } ?? fail("a number")
        case is Float.Type: return node.doubleValue.map { Float($0) as! T } ?? fail("a number")
        case is Int.Type: return node.intValue.map { Int($0) as! T } ?? fail("an integer")
        case is Int64.Type: return node.intValue.map { $0 as! T } ?? fail("an integer")
        case is Int32.Type: return node.intValue.flatMap { Int32(exactly: $0) }.map { $0 as! T } ?? fail("a 32-bit integer")
        case is UInt.Type: return node.intValue.flatMap { UInt(exactly: $0) }.map { $0 as! T } ?? fail("a non-negative integer")
        case is UInt64.Type: return node.intValue.flatMap { UInt64(exactly: $0) }.map { $0 as! T } ?? fail("a non-negative integer")
        case is UInt32.Type: return node.intValue.flatMap { UInt32(exactly: $0) }.map { $0 as! T } ?? fail("a non-negative 32-bit integer")
        default: return nil
        }
    }
}

/// Values that can stand in for a missing or wrong one.
protocol YAMLEmptyValue { static var yamlEmpty: Self { get }; static var isScalar: Bool { get } }
extension YAMLEmptyValue { static var isScalar: Bool { true } }
extension Bool: YAMLEmptyValue { static var yamlEmpty: Bool { false } }
extension String: YAMLEmptyValue { static var yamlEmpty: String { "" } }
extension Double: YAMLEmptyValue { static var yamlEmpty: Double { 0 } }
extension Float: YAMLEmptyValue { static var yamlEmpty: Float { 0 } }
extension Int: YAMLEmptyValue { static var yamlEmpty: Int { 0 } }
extension Int64: YAMLEmptyValue { static var yamlEmpty: Int64 { 0 } }
extension Int32: YAMLEmptyValue { static var yamlEmpty: Int32 { 0 } }
extension UInt: YAMLEmptyValue { static var yamlEmpty: UInt { 0 } }
extension UInt64: YAMLEmptyValue { static var yamlEmpty: UInt64 { 0 } }
extension UInt32: YAMLEmptyValue { static var yamlEmpty: UInt32 { 0 } }
extension Array: YAMLEmptyValue { static var yamlEmpty: Array { [] }; static var isScalar: Bool { false } }
extension Dictionary: YAMLEmptyValue { static var yamlEmpty: Dictionary { [:] }; static var isScalar: Bool { false } }
extension Optional: YAMLEmptyValue { static var yamlEmpty: Optional { nil }; static var isScalar: Bool { false } }

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

/// What loading a recipe-like YAML file produced: the typed value when there were no problems,
/// the resolved tree (overrides applied, references replaced) to save beside a checkpoint, and
/// every problem found, ordered by file position with command-line overrides last.
public struct YAMLLoadResult<T> {
    public var value: T?
    public var node: YAMLNode?
    public var problems: [YAMLProblem]

    /// The value, or a `YAMLError` listing every problem.
    public func get() throws -> T {
        guard let value, problems.isEmpty else { throw YAMLError(problems) }
        return value
    }
}

/// The one call a config reader needs: parse → overrides → `${...}` references → strict decode.
public enum YAMLLoader {
    public static func load<T: Decodable>(_ type: T.Type, path: String, overrides: [String] = [],
                                          decoder: YAMLDecoder = YAMLDecoder()) -> YAMLLoadResult<T> {
        do {
            return load(type, node: try YAMLParser.read(path: path), overrides: overrides, decoder: decoder)
        } catch {
            return YAMLLoadResult(value: nil, node: nil, problems: problems(of: error))
        }
    }

    public static func load<T: Decodable>(_ type: T.Type, text: String, source: String = "<string>", overrides: [String] = [],
                                          decoder: YAMLDecoder = YAMLDecoder()) -> YAMLLoadResult<T> {
        do {
            return load(type, node: try YAMLParser.parse(text, source: source), overrides: overrides, decoder: decoder)
        } catch {
            return YAMLLoadResult(value: nil, node: nil, problems: problems(of: error))
        }
    }

    /// Later stages still run when an earlier one found problems, so one run reports them all.
    public static func load<T: Decodable>(_ type: T.Type, node parsed: YAMLNode, overrides: [String] = [],
                                          decoder: YAMLDecoder = YAMLDecoder()) -> YAMLLoadResult<T> {
        var node = parsed
        var found: [YAMLProblem] = []
        do { try node.applyOverrides(overrides) } catch { found += problems(of: error) }
        do { node = try node.resolvingReferences() } catch { found += problems(of: error) }
        let (value, decodeProblems) = decoder.decodeCollectingErrors(type, from: node)
        // A value whose reference failed is still the "${...}" text; its type mismatch is noise.
        let broken = Set(found.compactMap(\.mark))
        found += decodeProblems.filter { $0.mark.map { !broken.contains($0) } ?? true }
        let all = sortedByPosition(found)
        return YAMLLoadResult(value: all.isEmpty ? value : nil, node: node, problems: all)
    }

    private static func problems(of error: Error) -> [YAMLProblem] {
        if let e = error as? YAMLError { return e.problems }
        return [YAMLProblem(mark: nil, path: "", message: "\(error)")]
    }
}
