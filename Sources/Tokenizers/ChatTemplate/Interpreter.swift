/// Runs the parsed statements. Scoping follows jinja2: each loop iteration and each macro call gets a
/// child scope (so a plain `set` inside a loop is forgotten after it, which is why templates use
/// `namespace()`), while `if` blocks share their parent's scope.
final class Scope {
    var variables: [String: Value] = [:]
    let parent: Scope?

    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Value? {
        var s: Scope? = self
        while let scope = s {
            if let v = scope.variables[name] { return v }
            s = scope.parent
        }
        return nil
    }
}

/// `break`/`continue` unwind to the innermost loop.
enum Flow { case normal, breakLoop, continueLoop }

/// Macro calls in progress. A macro value keeps the interpreter it was defined by, so the count is a
/// shared object: a copy per call would start every nested call at the definition's depth.
final class CallDepth {
    var value = 0
}

struct Interpreter {
    /// Guards against runaway recursion through macros (jinja2 stops at Python's recursion limit).
    let depth = CallDepth()
    static let maxMacroDepth = 100

    func render(_ nodes: [Node], scope: Scope, into out: inout String) throws -> Flow {
        for node in nodes {
            let flow = try execute(node, scope: scope, into: &out)
            if out.utf8.count > TemplateLimit.maxLength {
                throw ChatTemplateError.render(line: node.line, message: "MemoryError: the rendered text exceeds the template limit of \(TemplateLimit.maxLength) bytes")
            }
            if flow != .normal { return flow }
        }
        return .normal
    }

    private func execute(_ node: Node, scope: Scope, into out: inout String) throws -> Flow {
        switch node.kind {
        case .text(let s):
            out += s
        case .output(let e):
            out += PythonText.str(try evaluate(e, scope))
        case .conditional(let branches, let otherwise):
            for (condition, body) in branches where try evaluate(condition, scope).truthy {
                return try render(body, scope: scope, into: &out)
            }
            return try render(otherwise, scope: scope, into: &out)
        case .loop(let loop):
            try runLoop(loop, line: node.line, scope: scope, into: &out)
        case .assign(let target, let e):
            try assign(target, try evaluate(e, scope), scope: scope, line: node.line)
        case .assignBlock(let target, let body, let filters):
            var text = ""
            _ = try render(body, scope: scope, into: &text)
            try assign(target, try applyFilters(filters, to: .string(text), scope), scope: scope, line: node.line)
        case .filterBlock(let body, let filters):
            var text = ""
            _ = try render(body, scope: scope, into: &text)
            out += PythonText.str(try applyFilters(filters, to: .string(text), scope))
        case .scope(let assignments, let body):
            let inner = Scope(parent: scope)
            for (target, e) in assignments {
                try assign(target, try evaluate(e, scope), scope: inner, line: node.line)
            }
            return try render(body, scope: inner, into: &out)
        case .macro(let definition):
            scope.variables[definition.name] = .function(makeMacro(definition, closure: scope))
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        case .group(let body):
            return try render(body, scope: scope, into: &out)
        }
        return .normal
    }

    private func applyFilters(_ filters: [(String, CallArguments, Int)], to value: Value, _ scope: Scope) throws -> Value {
        var v = value
        for (name, args, line) in filters {
            let evaluated = try evaluateArguments(args, scope)
            v = try at(line) { try Filters.apply(name, to: v, evaluated, interpreter: self) }
        }
        return v
    }

    private func runLoop(_ loop: ForLoop, line: Int, scope: Scope, into out: inout String) throws {
        let iterable = try evaluate(loop.iterable, scope)
        var items = try at(line) { try Operators.iterate(iterable) }
        if let filter = loop.filter {
            items = try items.filter { item in
                let s = Scope(parent: scope)
                try assign(loop.target, item, scope: s, line: line)
                return try evaluate(filter, s).truthy
            }
        }
        if items.isEmpty {
            _ = try render(loop.otherwise, scope: scope, into: &out)
            return
        }
        // `loop.depth` counts recursion of `recursive` loops only (unsupported), so it is always 1 here.
        let state = LoopState(items: items, depth0: 0)
        for (index, item) in items.enumerated() {
            state.index0 = index
            let s = Scope(parent: scope)
            s.variables["loop"] = .loop(state)
            try assign(loop.target, item, scope: s, line: line)
            if try render(loop.body, scope: s, into: &out) == .breakLoop { break }
        }
    }

    func assign(_ target: AssignTarget, _ value: Value, scope: Scope, line: Int) throws {
        switch target {
        case .name(let n):
            scope.variables[n] = value
        case .namespaceAttribute(let n, let attribute):
            guard case .namespace(let ns)? = scope.lookup(n) else {
                throw ChatTemplateError.render(line: line, message: "TemplateRuntimeError: cannot assign attribute on non-namespace object")
            }
            if attribute.hasPrefix("_") {
                throw ChatTemplateError.render(line: line, message: "SecurityError: " + Globals.underscoreMessage(attribute))
            }
            ns.attributes[.string(attribute)] = value
        case .tuple(let targets):
            let items: [Value]
            switch value {
            case .list(let a), .tuple(let a): items = a
            default: items = try at(line) { try Operators.iterate(value) }
            }
            guard items.count == targets.count else {
                let message = items.count > targets.count
                    ? "too many values to unpack (expected \(targets.count))"
                    : "not enough values to unpack (expected \(targets.count), got \(items.count))"
                throw ChatTemplateError.render(line: line, message: "ValueError: " + message)
            }
            for (t, v) in zip(targets, items) { try assign(t, v, scope: scope, line: line) }
        }
    }

    private func makeMacro(_ m: MacroDefinition, closure: Scope) -> Function {
        Function(name: m.name, isMacro: true) { args, kwargs in
            guard depth.value < Self.maxMacroDepth else {
                throw TemplateFailure("RecursionError", "maximum macro recursion depth exceeded (\(Self.maxMacroDepth) nested calls of '\(m.name)' or others)")
            }
            depth.value += 1
            defer { depth.value -= 1 }
            let s = Scope(parent: closure)
            if args.count > m.parameters.count && !m.catchesVarargs {
                throw TemplateFailure("TypeError", "macro '\(m.name)' takes not more than \(m.parameters.count) argument(s)")
            }
            let inner = self
            for (index, (name, defaultExpr)) in m.parameters.enumerated() {
                if index < args.count {
                    s.variables[name] = args[index]
                } else if let kw = kwargs.first(where: { $0.0 == name }) {
                    s.variables[name] = kw.1
                } else if let defaultExpr {
                    s.variables[name] = try inner.evaluate(defaultExpr, s)
                } else {
                    s.variables[name] = .undefined(Undefined(message: "parameter '\(name)' was not provided"))
                }
            }
            var extraKeywords = ValueDict()
            for (key, value) in kwargs where !m.parameters.contains(where: { $0.0 == key }) {
                guard m.catchesKwargs else {
                    throw TemplateFailure("TypeError", "macro '\(m.name)' takes no keyword argument '\(key)'")
                }
                extraKeywords[.string(key)] = value
            }
            if m.catchesVarargs { s.variables["varargs"] = .tuple(Array(args.dropFirst(m.parameters.count))) }
            if m.catchesKwargs { s.variables["kwargs"] = .dict(extraKeywords) }
            var text = ""
            _ = try inner.render(m.body, scope: s, into: &text)
            return .string(text)
        }
    }

    /// Runs `body`, attaching `line` to a failure raised by a value operation.
    func at<T>(_ line: Int, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let f as TemplateFailure {
            if f.kind == "TemplateError" { throw ChatTemplateError.raised(line: line, message: f.message) }
            throw ChatTemplateError.render(line: line, message: "\(f.kind): \(f.message)")
        }
    }
}
