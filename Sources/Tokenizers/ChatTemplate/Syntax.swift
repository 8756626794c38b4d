/// The parsed template: statements and expressions, each carrying its template line for error messages.
struct Expr {
    indirect enum Kind {
        case literal(Value)
        case name(String)
        case list([Expr])
        case tuple([Expr])
        case dict([(Expr, Expr)])
        case attribute(Expr, String)
        case item(Expr, Expr)
        case slice(Expr, start: Expr?, stop: Expr?, step: Expr?)
        case call(Expr, CallArguments)
        case filter(Expr, name: String, CallArguments)
        case test(Expr, name: String, CallArguments)
        case not(Expr)
        case negate(Expr)
        case plus(Expr)
        case binary(String, Expr, Expr)
        case and(Expr, Expr)
        case or(Expr, Expr)
        /// Python's chained comparison `a < b <= c`.
        case compare(Expr, [(String, Expr)])
        case conditional(condition: Expr, then: Expr, otherwise: Expr?)
    }
    var kind: Kind
    var line: Int
    /// Levels of the tree below and including this node. The evaluator and the walks recurse once per
    /// level, so the parser refuses trees taller than `Parser.maxHeight` (a chain like `1+1+…+1` is built
    /// by a loop but is as tall as it is long).
    let height: Int

    init(kind: Kind, line: Int) {
        self.kind = kind
        self.line = line
        var tallest = 0
        SyntaxWalk.children(kind) { tallest = max(tallest, $0.height) }
        height = tallest + 1
    }
}

struct CallArguments {
    var positional: [Expr] = []
    var keywords: [(String, Expr)] = []
    var star: Expr?
    var doubleStar: Expr?
}

/// The left-hand side of `set` and of a `for` loop.
indirect enum AssignTarget {
    case name(String)
    case tuple([AssignTarget])
    /// `ns.attr`, only allowed on namespace objects.
    case namespaceAttribute(String, String)
}

struct Node {
    enum Kind {
        case text(String)
        case output(Expr)
        case conditional(branches: [(Expr, [Node])], otherwise: [Node])
        case loop(ForLoop)
        case assign(AssignTarget, Expr)
        case assignBlock(AssignTarget, body: [Node], filters: [(String, CallArguments, Int)])
        case macro(MacroDefinition)
        case filterBlock(body: [Node], filters: [(String, CallArguments, Int)])
        case scope(assignments: [(AssignTarget, Expr)], body: [Node])
        case breakLoop
        case continueLoop
        /// transformers' `{% generation %}` tag renders its body unchanged (it only records offsets).
        case group([Node])
    }
    var kind: Kind
    var line: Int
}

struct ForLoop {
    var target: AssignTarget
    var iterable: Expr
    var filter: Expr?
    var body: [Node]
    var otherwise: [Node]
}

struct MacroDefinition {
    var name: String
    var parameters: [(String, Expr?)]
    var body: [Node]
    /// jinja2 lets a macro take extra arguments only when its body reads `varargs` / `kwargs`.
    var catchesVarargs = false
    var catchesKwargs = false
}

/// Visits every expression of a tree, nested ones included.
enum SyntaxWalk {
    /// Calls `visit` on each expression and `blockFilter` on each filter of a `{% filter %}` or block
    /// `{% set %}` tag (those are names, not expressions).
    static func walk(_ nodes: [Node], _ visit: (Expr) throws -> Void,
                     blockFilter: (String, Int) throws -> Void = { _, _ in }) rethrows {
        for node in nodes {
            switch node.kind {
            case .text, .breakLoop, .continueLoop: break
            case .output(let e), .assign(_, let e): try walk(e, visit)
            case .conditional(let branches, let otherwise):
                for (c, body) in branches {
                    try walk(c, visit)
                    try walk(body, visit, blockFilter: blockFilter)
                }
                try walk(otherwise, visit, blockFilter: blockFilter)
            case .loop(let l):
                try walk(l.iterable, visit)
                if let f = l.filter { try walk(f, visit) }
                try walk(l.body, visit, blockFilter: blockFilter)
                try walk(l.otherwise, visit, blockFilter: blockFilter)
            case .assignBlock(_, let body, let filters), .filterBlock(let body, let filters):
                try walk(body, visit, blockFilter: blockFilter)
                for (name, args, line) in filters {
                    try blockFilter(name, line)
                    try walk(args, visit)
                }
            case .macro(let m):
                for (_, d) in m.parameters { if let d { try walk(d, visit) } }
                try walk(m.body, visit, blockFilter: blockFilter)
            case .scope(let assignments, let body):
                for (_, e) in assignments { try walk(e, visit) }
                try walk(body, visit, blockFilter: blockFilter)
            case .group(let body): try walk(body, visit, blockFilter: blockFilter)
            }
        }
    }

    static func walk(_ args: CallArguments, _ visit: (Expr) throws -> Void) rethrows {
        for e in args.positional { try walk(e, visit) }
        for (_, e) in args.keywords { try walk(e, visit) }
        if let s = args.star { try walk(s, visit) }
        if let s = args.doubleStar { try walk(s, visit) }
    }

    static func walk(_ e: Expr, _ visit: (Expr) throws -> Void) rethrows {
        try visit(e)
        try children(e.kind) { try walk($0, visit) }
    }

    /// The expressions directly inside one, in source order.
    static func children(_ kind: Expr.Kind, _ each: (Expr) throws -> Void) rethrows {
        func args(_ a: CallArguments) throws {
            for e in a.positional { try each(e) }
            for (_, e) in a.keywords { try each(e) }
            if let s = a.star { try each(s) }
            if let s = a.doubleStar { try each(s) }
        }
        switch kind {
        case .literal, .name: break
        case .list(let items), .tuple(let items): for i in items { try each(i) }
        case .dict(let pairs): for (k, v) in pairs { try each(k); try each(v) }
        case .attribute(let b, _), .not(let b), .negate(let b), .plus(let b): try each(b)
        case .item(let b, let k): try each(b); try each(k)
        case .slice(let b, let s, let t, let u):
            try each(b)
            for x in [s, t, u] { if let x { try each(x) } }
        case .call(let b, let a), .filter(let b, _, let a), .test(let b, _, let a):
            try each(b)
            try args(a)
        case .binary(_, let a, let b), .and(let a, let b), .or(let a, let b): try each(a); try each(b)
        case .compare(let a, let ops): try each(a); for (_, x) in ops { try each(x) }
        case .conditional(let c, let t, let o):
            try each(c)
            try each(t)
            if let o { try each(o) }
        }
    }
}
