/// A Hugging Face chat template (the Jinja2 source in `tokenizer_config.json` or `chat_template.jinja`),
/// rendered the way transformers' `apply_chat_template(..., tokenize=False)` renders it.
public struct ChatTemplate {
    public let source: String
    private let nodes: [Node]

    /// Parses the template. Syntax errors, and filters or tests this interpreter does not know, throw a
    /// `ChatTemplateError` carrying the template line (jinja2 also rejects unknown filters when compiling).
    public init(source: String) throws {
        self.source = source
        nodes = try Parser.parse(source)
        try Validation.check(nodes)
    }

    /// Renders `messages` as transformers does: keys whose value is `none` are dropped from each message,
    /// `reasoning_content`/`thinking`/`reasoning` are aliased to one another, `tools` and `documents` are
    /// `none` unless `extra` supplies them, and `extra` holds any other template variable (`date_string`,
    /// `enable_thinking`, ...). `bosToken`/`eosToken` are left undefined when nil.
    /// A call to `raise_exception(msg)` throws `ChatTemplateError.raised` with `msg`.
    public func render(messages: [[String: TemplateValue]], addGenerationPrompt: Bool,
                       bosToken: String?, eosToken: String?, extra: [String: TemplateValue] = [:]) throws -> String {
        try render(messages: messages.map { message in
            TemplateObject(message.keys.sorted().map { ($0, message[$0]!) })
        }, addGenerationPrompt: addGenerationPrompt, bosToken: bosToken, eosToken: eosToken, extra: extra)
    }

    /// The same with messages whose key order is kept (templates that loop over a message's keys, or print
    /// it with `tojson`, show the order).
    public func render(messages: [TemplateObject], addGenerationPrompt: Bool,
                       bosToken: String?, eosToken: String?, extra: [String: TemplateValue] = [:]) throws -> String {
        let scope = Scope(parent: nil)
        if let bosToken { scope.variables["bos_token"] = .string(bosToken) }
        if let eosToken { scope.variables["eos_token"] = .string(eosToken) }
        scope.variables["tools"] = Value.none
        scope.variables["documents"] = Value.none
        for (k, v) in extra { scope.variables[k] = Value(v) }
        scope.variables["messages"] = .list(messages.map { Value(.object(Self.prepare($0))) })
        scope.variables["add_generation_prompt"] = .bool(addGenerationPrompt)
        var out = ""
        _ = try Interpreter().render(nodes, scope: Scope(parent: scope), into: &out)
        return out
    }

    static let reasoningFields = ["reasoning_content", "thinking", "reasoning"]

    /// transformers' normalisation of a message before rendering.
    static func prepare(_ message: TemplateObject) -> TemplateObject {
        var m = TemplateObject(message.filter { $0.value != .none }.map { ($0.key, $0.value) })
        guard let reasoning = reasoningFields.lazy.compactMap({ m[$0] }).first else { return m }
        if m["thinking"] == nil { m = TemplateObject([("thinking", reasoning)] + m.map { ($0.key, $0.value) }) }
        m["thinking"] = m["thinking"]
        m["reasoning_content"] = reasoning
        return m
    }
}

/// The parsed tree is never mutated after `init`, and its literals are plain values (no namespaces or
/// closures), so one template can render on several threads at once.
extension ChatTemplate: @unchecked Sendable {}

/// What went wrong, with the template line it happened on.
public enum ChatTemplateError: Error, CustomStringConvertible, Equatable {
    /// The template does not parse (or uses a filter, test or tag this interpreter does not have).
    case syntax(line: Int, message: String)
    /// Rendering failed as jinja2 would fail (`UndefinedError`, `TypeError`, ...); the message starts with
    /// the Python exception name.
    case render(line: Int, message: String)
    /// The template called `raise_exception(message)`.
    case raised(line: Int, message: String)

    public var line: Int {
        switch self {
        case .syntax(let l, _), .render(let l, _), .raised(let l, _): return l
        }
    }

    public var message: String {
        switch self {
        case .syntax(_, let m), .render(_, let m), .raised(_, let m): return m
        }
    }

    public var description: String {
        switch self {
        case .syntax(let l, let m): return "chat template syntax error, line \(l): \(m)"
        case .render(let l, let m): return "chat template error, line \(l): \(m)"
        case .raised(let l, let m): return "chat template raised an exception, line \(l): \(m)"
        }
    }
}

/// jinja2 resolves filter and test names when it compiles, so an unknown one fails even in a branch
/// that never runs; this walk does the same.
enum Validation {
    static func check(_ nodes: [Node]) throws {
        try SyntaxWalk.walk(nodes, { e in
            switch e.kind {
            case .filter(_, let name, _): try checkName(name, in: Filters.names, kind: "filter", line: e.line)
            case .test(_, let name, _): try checkName(name, in: Tests.names, kind: "test", line: e.line)
            default: break
            }
        }, blockFilter: { name, line in try checkName(name, in: Filters.names, kind: "filter", line: line) })
    }

    private static func checkName(_ name: String, in known: Set<String>, kind: String, line: Int) throws {
        guard known.contains(name) else {
            throw ChatTemplateError.syntax(line: line, message: "No \(kind) named '\(name)'.")
        }
    }
}
