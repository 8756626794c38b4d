import CYAML
import Foundation

/// What a YAML document may hold. A recipe is a few hundred nodes a few levels deep; these bounds keep a
/// hostile file (20,000 nested lists, the "billion laughs" aliases, references doubling a string 39
/// times) an error instead of a stack overflow or an hour of expansion. The same budget covers aliases
/// and `${}` references, since both copy a node into several places.
public enum YAMLLimits {
    /// Mappings and sequences open at once.
    public static let maxDepth = 512
    /// Nodes of the document with every alias and reference expanded.
    public static let maxNodes = 1_000_000
    /// Characters of a string built by interpolating references.
    public static let maxInterpolatedLength = 1 << 20
}

/// Builds a `YAMLNode` tree from libyaml's event stream. libyaml does the syntax (and its error
/// messages); this file does what PyYAML's composer and constructor do: anchors and aliases,
/// `<<` merge keys, duplicate-key detection and scalar typing.
public enum YAMLParser {
    public static func read(path: String) throws -> YAMLNode {
        let data = try RegularFile.contents(path) { YAMLError(mark: nil, message: "\(path): \($0)") }
        return try parse(data: data, source: path)
    }

    public static func parse(_ text: String, source: String = "<string>") throws -> YAMLNode {
        try parse(data: Data(text.utf8), source: source)
    }

    /// Parses exactly one document; an empty stream or a second document is an error.
    public static func parse(data: Data, source: String) throws -> YAMLNode {
        try data.withUnsafeBytes { raw in
            var builder = TreeBuilder(source: source)
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else { throw YAMLError(mark: nil, message: "\(source): out of memory") }
            defer { yaml_parser_delete(&parser) }
            let empty: [UInt8] = [0]
            try empty.withUnsafeBufferPointer { fallback in
                let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? fallback.baseAddress!
                yaml_parser_set_input_string(&parser, base, raw.count)
                while true {
                    var event = yaml_event_t()
                    guard yaml_parser_parse(&parser, &event) == 1 else {
                        throw YAMLError([syntaxProblem(parser, source: source, bytes: raw)])
                    }
                    defer { yaml_event_delete(&event) }
                    if event.type == YAML_STREAM_END_EVENT { break }
                    try builder.handle(event)
                }
            }
            return try builder.finish()
        }
    }

    private static func syntaxProblem(_ parser: yaml_parser_t, source: String, bytes: UnsafeRawBufferPointer) -> YAMLProblem {
        let mark = parser.problem_mark
        var message = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
        if let context = parser.context.map({ String(cString: $0) }) {
            message += " (\(context) at line \(parser.context_mark.line + 1), column \(parser.context_mark.column + 1))"
        }
        // libyaml's message for a tab ("found character that cannot start any token") does not
        // say what the character is; tabs are the usual cause in hand-written recipes.
        if parser.error == YAML_READER_ERROR {
            // Encoding errors carry a byte offset, not a mark (whose fields stay 0, which read as 1:1).
            let offset = min(Int(parser.problem_offset), bytes.count)
            let before = bytes[..<offset]
            let line = before.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
            let lineStart = before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            let column = String(decoding: bytes[lineStart..<offset], as: UTF8.self).count + 1
            message += " (byte \(offset)" + (parser.problem_value >= 0 ? String(format: ", value 0x%02X", parser.problem_value) : "") + ")"
            return YAMLProblem(mark: YAMLMark(source: source, line: line, column: column), path: "", message: message)
        }
        let index = Int(mark.index)
        if index < bytes.count, bytes[index] == 0x09 || message.contains("tab") {
            message += "; tabs cannot be used for indentation in YAML, use spaces"
        }
        return YAMLProblem(mark: YAMLMark(source: source, line: Int(mark.line) + 1, column: Int(mark.column) + 1),
                           path: "", message: message)
    }
}

/// The composer: a stack of open collections fed by parser events.
private struct TreeBuilder {
    private enum Frame {
        case sequence(items: [YAMLNode], mark: YAMLMark, anchor: String?)
        case mapping(MappingFrame)
    }

    private struct MappingFrame {
        var entries: [YAMLEntry] = []
        var pendingKey: (key: String, mark: YAMLMark, isMerge: Bool)?
        var merges: [YAMLNode] = []
        let mark: YAMLMark
        let anchor: String?
    }

    let source: String
    private var stack: [Frame] = []
    /// Expanded node count of each open collection's contents, beside `stack`.
    private var sizes: [Int] = []
    private var anchors: [String: YAMLNode] = [:]
    /// Expanded node count of each anchored node, so an alias adds what it copies.
    private var anchorSizes: [String: Int] = [:]
    private var root: YAMLNode?
    private var documents = 0
    private var problems: [YAMLProblem] = []

    init(source: String) { self.source = source }

    private func mark(_ m: yaml_mark_t) -> YAMLMark {
        YAMLMark(source: source, line: Int(m.line) + 1, column: Int(m.column) + 1)
    }

    private static func string(_ p: UnsafeMutablePointer<yaml_char_t>?, _ length: Int? = nil) -> String? {
        guard let p else { return nil }
        if let length { return String(decoding: UnsafeBufferPointer(start: p, count: length), as: UTF8.self) }
        return String(cString: p)
    }

    mutating func handle(_ event: yaml_event_t) throws {
        let at = mark(event.start_mark)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 {
                throw YAMLError(mark: at, message: "a second YAML document starts here; a recipe must hold exactly one document")
            }
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            let text = Self.string(s.value, Int(s.length)) ?? ""
            let tag = Self.string(s.tag)
            let node: YAMLNode.Value
            if tag == "tag:yaml.org,2002:str" || tag == "!" { node = .string(text) }
            else if s.style == YAML_PLAIN_SCALAR_STYLE || (tag != nil && tag!.hasPrefix("tag:yaml.org,2002:")) {
                node = YAMLScalar.resolve(text)
            } else { node = .string(text) }
            let isMergeKey = text == "<<" && s.style == YAML_PLAIN_SCALAR_STYLE
            try add(YAMLNode(node, mark: at), size: 1, keyText: text, isMergeKey: isMergeKey, anchor: Self.string(s.anchor))
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            guard let target = anchors[name] else {
                throw YAMLError(mark: at, message: "alias '*\(name)' refers to an anchor '&\(name)' that is not defined before it")
            }
            try add(target, size: anchorSizes[name] ?? 1, keyText: target.stringValue ?? "", isMergeKey: false, anchor: nil, at: at)
        case YAML_SEQUENCE_START_EVENT:
            try open(.sequence(items: [], mark: at, anchor: Self.string(event.data.sequence_start.anchor)), at: at)
        case YAML_MAPPING_START_EVENT:
            try open(.mapping(MappingFrame(mark: at, anchor: Self.string(event.data.mapping_start.anchor))), at: at)
        case YAML_SEQUENCE_END_EVENT:
            guard case .sequence(let items, let m, let anchor) = stack.popLast(), let size = sizes.popLast() else { return }
            try add(YAMLNode(.sequence(items), mark: m), size: size + 1, keyText: nil, isMergeKey: false, anchor: anchor)
        case YAML_MAPPING_END_EVENT:
            guard case .mapping(let frame) = stack.popLast(), let size = sizes.popLast() else { return }
            try add(YAMLNode(.mapping(merged(frame)), mark: frame.mark), size: size + 1, keyText: nil, isMergeKey: false, anchor: frame.anchor)
        default:
            break
        }
    }

    /// Explicit keys win over merged ones; among `<<: [*a, *b]`, earlier mappings win (YAML merge spec).
    private mutating func merged(_ frame: MappingFrame) -> [YAMLEntry] {
        guard !frame.merges.isEmpty else { return frame.entries }
        var result: [YAMLEntry] = []
        var seen = Set(frame.entries.map(\.key))
        for source in frame.merges {
            let mappings: [YAMLNode] = source.items ?? [source]
            for m in mappings {
                guard let entries = m.entries else {
                    problems.append(YAMLProblem(mark: m.mark, path: "", message: "'<<' merges mappings only, found \(m.foundDescription)"))
                    continue
                }
                for e in entries where !seen.contains(e.key) {
                    seen.insert(e.key)
                    result.append(e)
                }
            }
        }
        return result + frame.entries
    }

    private mutating func open(_ frame: Frame, at: YAMLMark) throws {
        guard stack.count < YAMLLimits.maxDepth else {
            throw YAMLError(mark: at, message: "the document nests more than \(YAMLLimits.maxDepth) mappings or lists deep")
        }
        stack.append(frame)
        sizes.append(0)
    }

    /// `size`: the node's expanded count (an alias counts everything it copies). `at`: where an alias
    /// was written, for the error when the document grows past the budget.
    private mutating func add(_ node: YAMLNode, size: Int, keyText: String?, isMergeKey: Bool, anchor: String?, at: YAMLMark? = nil) throws {
        if let anchor {
            anchors[anchor] = node
            anchorSizes[anchor] = size
        }
        if let last = sizes.indices.last {
            sizes[last] += size
            if sizes.reduce(0, +) > YAMLLimits.maxNodes {
                throw YAMLError(mark: at ?? node.mark, message:
                    "the document expands to more than \(YAMLLimits.maxNodes) values (aliases copy what they name; is an alias repeated exponentially?)")
            }
        }
        guard let top = stack.popLast() else {
            root = node
            return
        }
        switch top {
        case .sequence(var items, let m, let a):
            items.append(node)
            stack.append(.sequence(items: items, mark: m, anchor: a))
        case .mapping(var frame):
            if let pending = frame.pendingKey {
                frame.pendingKey = nil
                if pending.isMerge {
                    frame.merges.append(node)
                } else if let first = frame.entries.first(where: { $0.key == pending.key }) {
                    problems.append(YAMLProblem(mark: pending.mark, path: "", message:
                        "duplicate key '\(pending.key)': first defined at line \(first.keyMark.line), again at line \(pending.mark.line)"))
                } else {
                    frame.entries.append(YAMLEntry(key: pending.key, keyMark: pending.mark, value: node))
                }
            } else {
                guard let keyText, node.entries == nil, node.items == nil else {
                    throw YAMLError(mark: node.mark, message: "a mapping key must be a plain value, found \(node.foundDescription)")
                }
                frame.pendingKey = (keyText, node.mark, isMergeKey)
            }
            stack.append(.mapping(frame))
        }
    }

    func finish() throws -> YAMLNode {
        if !problems.isEmpty { throw YAMLError(sortedByPosition(problems)) }
        guard documents == 1, let root else {
            throw YAMLError(mark: YAMLMark(source: source, line: 1, column: 1), message: "the file holds no YAML document (it is empty or only comments)")
        }
        return root
    }
}
