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
}
