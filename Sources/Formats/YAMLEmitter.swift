import CYAML
import Foundation

public enum YAMLEmitterError: Error, CustomStringConvertible {
    case libyaml(String)
    public var description: String {
        switch self { case .libyaml(let message): return "cannot write YAML: \(message)" }
    }
}

/// Writes a node tree as block-style YAML (used to save the resolved recipe beside a checkpoint).
/// libyaml chooses quoting and escaping; strings that would read back as another type (`"true"`,
/// `"1e-5"`, `""`, `"null"`) are double-quoted, so `YAMLParser` gives back the same tree.
public enum YAMLEmitter {
    /// `header` lines are written first as `# ` comments.
    public static func emit(_ node: YAMLNode, header: String? = nil) throws -> String {
        let session = try Session()
        try session.event { yaml_stream_start_event_initialize(&$0, YAML_UTF8_ENCODING) }
        try session.event { yaml_document_start_event_initialize(&$0, nil, nil, nil, 1) }
        try session.write(node)
        try session.event { yaml_document_end_event_initialize(&$0, 1) }
        try session.event { yaml_stream_end_event_initialize(&$0) }
        guard yaml_emitter_flush(session.emitter) == 1 else { throw YAMLEmitterError.libyaml("flush failed") }
        let comments = header.map { $0.split(separator: "\n", omittingEmptySubsequences: false).map { "# \($0)\n" }.joined() } ?? ""
        return comments + String(decoding: session.bytes, as: UTF8.self)
    }

    /// One libyaml emitter. It lives on the heap at a fixed address because libyaml keeps pointers into
    /// it between calls (an earlier version passed `&localVar` from nested closures, which the optimiser
    /// was free to move, and crashed in release builds).
    private final class Session {
        let emitter = UnsafeMutablePointer<yaml_emitter_t>.allocate(capacity: 1)
        var bytes: [UInt8] = []

        init() throws {
            emitter.initialize(to: yaml_emitter_t())
            guard yaml_emitter_initialize(emitter) == 1 else {
                emitter.deallocate()
                throw YAMLEmitterError.libyaml("out of memory")
            }
            yaml_emitter_set_output(emitter, { context, buffer, size in
                guard let context, let buffer else { return 0 }
                Unmanaged<Session>.fromOpaque(context).takeUnretainedValue().bytes.append(contentsOf: UnsafeBufferPointer(start: buffer, count: size))
                return 1
            }, Unmanaged.passUnretained(self).toOpaque())
            yaml_emitter_set_unicode(emitter, 1)
            yaml_emitter_set_width(emitter, -1)
            yaml_emitter_set_indent(emitter, 2)
        }

        deinit {
            yaml_emitter_delete(emitter)
            emitter.deallocate()
        }

        func event(_ make: (inout yaml_event_t) -> Int32) throws {
            var e = yaml_event_t()
            guard make(&e) == 1 else { throw YAMLEmitterError.libyaml("cannot create an event") }
            guard yaml_emitter_emit(emitter, &e) == 1 else {
                throw YAMLEmitterError.libyaml(emitter.pointee.problem.map { String(cString: $0) } ?? "unknown error")
            }
        }

        func scalar(_ text: String, quoted: Bool) throws {
            var bytes = Array(text.utf8)
            bytes.append(0)
            try bytes.withUnsafeMutableBufferPointer { b in
                try event {
                    yaml_scalar_event_initialize(&$0, nil, nil, b.baseAddress, Int32(b.count - 1), quoted ? 0 : 1, 1,
                                                 quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE)
                }
            }
        }

        func string(_ s: String) throws {
            if case .string = YAMLScalar.resolve(s), s != "<<" { try scalar(s, quoted: false) } else { try scalar(s, quoted: true) }
        }

        func write(_ node: YAMLNode) throws {
            switch node.value {
            case .null: try scalar("null", quoted: false)
            case .bool(let b): try scalar(b ? "true" : "false", quoted: false)
            case .int(let i): try scalar("\(i)", quoted: false)
            case .double(let d): try scalar(YAMLScalar.format(d), quoted: false)
            case .string(let s): try string(s)
            case .sequence(let items):
                try event { yaml_sequence_start_event_initialize(&$0, nil, nil, 1, YAML_BLOCK_SEQUENCE_STYLE) }
                for item in items { try write(item) }
                try event { yaml_sequence_end_event_initialize(&$0) }
            case .mapping(let entries):
                try event { yaml_mapping_start_event_initialize(&$0, nil, nil, 1, YAML_BLOCK_MAPPING_STYLE) }
                for e in entries {
                    try string(e.key)
                    try write(e.value)
                }
                try event { yaml_mapping_end_event_initialize(&$0) }
            }
        }
    }

    /// Writes the tree to `path` atomically.
    public static func write(_ node: YAMLNode, to path: String, header: String? = nil) throws {
        try AtomicFile.write(Data(try emit(node, header: header).utf8), to: path)
    }

}
