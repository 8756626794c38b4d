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
        for node in nodes { try check(node) }
    }

    private static func check(_ node: Node) throws {
        switch node.kind {
        case .text, .breakLoop, .continueLoop: break
        case .output(let e): try check(e)
        case .conditional(let branches, let otherwise):
            for (c, body) in branches { try check(c); try check(body) }
            try check(otherwise)
        case .loop(let l):
            try check(l.iterable)
            if let f = l.filter { try check(f) }
            try check(l.body)
            try check(l.otherwise)
        case .assign(_, let e): try check(e)
        case .assignBlock(_, let body, let filters), .filterBlock(let body, let filters):
            try check(body)
            for (name, args, line) in filters {
                try checkName(name, in: Filters.names, kind: "filter", line: line)
                try check(args)
            }
        case .macro(let m):
            for (_, d) in m.parameters { if let d { try check(d) } }
            try check(m.body)
        case .scope(let assignments, let body):
            for (_, e) in assignments { try check(e) }
            try check(body)
        case .group(let body): try check(body)
        }
    }

    private static func checkName(_ name: String, in known: Set<String>, kind: String, line: Int) throws {
        guard known.contains(name) else {
            throw ChatTemplateError.syntax(line: line, message: "No \(kind) named '\(name)'.")
        }
    }

    private static func check(_ args: CallArguments) throws {
        for e in args.positional { try check(e) }
        for (_, e) in args.keywords { try check(e) }
        if let s = args.star { try check(s) }
        if let s = args.doubleStar { try check(s) }
    }

    private static func check(_ e: Expr) throws {
        switch e.kind {
        case .literal, .name: break
        case .list(let items), .tuple(let items): for i in items { try check(i) }
        case .dict(let pairs): for (k, v) in pairs { try check(k); try check(v) }
        case .attribute(let b, _): try check(b)
        case .item(let b, let k): try check(b); try check(k)
        case .slice(let b, let s, let t, let u):
            try check(b)
            for x in [s, t, u] { if let x { try check(x) } }
        case .call(let f, let args): try check(f); try check(args)
        case .filter(let b, let name, let args):
            try checkName(name, in: Filters.names, kind: "filter", line: e.line)
            try check(b)
            try check(args)
        case .test(let b, let name, let args):
            try checkName(name, in: Tests.names, kind: "test", line: e.line)
            try check(b)
            try check(args)
        case .not(let x), .negate(let x), .plus(let x): try check(x)
        case .binary(_, let a, let b), .and(let a, let b), .or(let a, let b): try check(a); try check(b)
        case .compare(let a, let ops): try check(a); for (_, x) in ops { try check(x) }
        case .conditional(let c, let t, let o):
            try check(c)
            try check(t)
            if let o { try check(o) }
        }
    }
}
