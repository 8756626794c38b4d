/// A recursive-descent parser following jinja2's grammar and operator precedence
/// (`parser.py`: condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary < filters/tests).
struct Parser {
    private var tokens: [Token]
    private var i = 0
    /// How many `for` bodies enclose the current statement (a macro body starts again at zero), so that a
    /// stray `break` fails at parse time as it does in jinja2.
    private var loopDepth = 0
    /// Open recursion levels: brackets, `not`, unary signs, `else` chains and statements inside blocks.
    private var nesting = 0
    /// The deepest nesting accepted; a template nested deeper is refused rather than exhausting the stack
    /// (a bracket costs three levels; Python's own parser stops at 200 nested parentheses, and real chat
    /// templates nest a handful).
    static let maxNesting = 300
    /// The tallest expression tree accepted (`Expr.height`): evaluating recurses once per level.
    static let maxHeight = 500

    static func parse(_ source: String) throws -> [Node] {
        var parser = Parser(tokens: try Lexer.tokenize(source))
        let (body, end) = try parser.statements(until: [])
        if let end { throw parser.syntax("Encountered unknown tag '\(end)'.", line: parser.current.line) }
        return body
    }

    private init(tokens: [Token]) {
        self.tokens = tokens
        let line = tokens.last?.line ?? 1
        self.tokens.append(Token(kind: .eof, line: line))
    }

    private var current: Token { tokens[i] }
    private var next: Token { tokens[min(i + 1, tokens.count - 1)] }

    private func syntax(_ message: String, line: Int) -> ChatTemplateError { .syntax(line: line, message: message) }

    /// Opens one recursion level (closed by the caller's `defer { nesting -= 1 }`).
    private mutating func enterNested() throws {
        guard nesting < Self.maxNesting else {
            throw syntax("the template nests more than \(Self.maxNesting) levels deep (brackets, operators or blocks)", line: current.line)
        }
        nesting += 1
    }

    /// Refuses an expression too tall to evaluate safely. Chains (`a + b + …`, `x.a.b…`, `x|f|g…`) are
    /// built by loops, so each link is checked as it is made: the tree never grows past the limit (a tree
    /// that did would overflow the stack even when freed).
    fileprivate func checkHeight(_ e: Expr) throws -> Expr {
        guard e.height <= Self.maxHeight else {
            throw syntax("an expression more than \(Self.maxHeight) operations deep", line: e.line)
        }
        return e
    }

    private func describe(_ t: Token) -> String {
        switch t.kind {
        case .data: return "template data"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case .name(let n): return n
        case .string(let s): return PythonText.stringRepr(s)
        case .integer(let v): return String(v)
        case .float(let d): return PythonText.floatRepr(d)
        case .op(let o): return o
        case .eof: return "end of template"
        }
    }

    private func isOp(_ op: String) -> Bool { if case .op(op) = current.kind { return true }; return false }
    private func isName(_ name: String) -> Bool { if case .name(name) = current.kind { return true }; return false }

    private mutating func skipOp(_ op: String) -> Bool {
        if isOp(op) { i += 1; return true }
        return false
    }
    private mutating func skipName(_ name: String) -> Bool {
        if isName(name) { i += 1; return true }
        return false
    }

    private mutating func expectOp(_ op: String) throws {
        guard skipOp(op) else { throw syntax("expected token '\(op)', got '\(describe(current))'", line: current.line) }
    }
    private mutating func expectName(_ name: String? = nil) throws -> String {
        if case .name(let n) = current.kind, name == nil || n == name {
            i += 1
            return n
        }
        throw syntax("expected token '\(name ?? "name")', got '\(describe(current))'", line: current.line)
    }
    private mutating func expectBlockEnd() throws {
        guard case .blockEnd = current.kind else {
            throw syntax("expected token 'end of statement block', got '\(describe(current))'", line: current.line)
        }
        i += 1
    }

    // MARK: statements

    /// Parses until a `{% name %}` tag whose name is in `ends`; returns the body and that name (its tag
    /// opener consumed, the rest of the tag not).
    private mutating func statements(until ends: [String], innermost: String? = nil) throws -> ([Node], String?) {
        var body: [Node] = []
        while true {
            let t = current
            switch t.kind {
            case .eof:
                if ends.isEmpty { return (body, nil) }
                let wanted = ends.map { "'\($0)'" }.joined(separator: " or ")
                throw syntax(
                    "Unexpected end of template. Jinja was looking for the following tags: \(wanted). "
                        + "The innermost block that needs to be closed is '\(innermost ?? "")'.", line: t.line)
            case .data(let s):
                body.append(Node(kind: .text(s), line: t.line))
                i += 1
            case .variableBegin:
                i += 1
                let e = try tuple()
                guard case .variableEnd = current.kind else {
                    throw syntax("expected token 'end of print statement', got '\(describe(current))'", line: current.line)
                }
                i += 1
                body.append(Node(kind: .output(e), line: t.line))
            case .blockBegin:
                if case .name(let n) = next.kind, ends.contains(n) {
                    i += 2
                    return (body, n)
                }
                i += 1
                body.append(try statement())
            default:
                throw syntax("unexpected '\(describe(t))'", line: t.line)
            }
        }
    }

    private mutating func statement() throws -> Node {
        try enterNested()
        defer { nesting -= 1 }
        let line = current.line
        let keyword = try expectName()
        switch keyword {
        case "if": return try ifStatement(line: line)
        case "for": return try forStatement(line: line)
        case "set": return try setStatement(line: line)
        case "macro": return try macroStatement(line: line)
        case "filter":
            let filters = try filterChain(first: true)
            try expectBlockEnd()
            let body = try blockBody(ending: "endfilter", innermost: "filter")
            return Node(kind: .filterBlock(body: body, filters: filters), line: line)
        case "with":
            var assignments: [(AssignTarget, Expr)] = []
            while !(current.kind == .blockEnd) {
                if !assignments.isEmpty { try expectOp(",") }
                let target = try assignTarget(allowNamespace: false)
                try expectOp("=")
                assignments.append((target, try expression()))
            }
            try expectBlockEnd()
            let body = try blockBody(ending: "endwith", innermost: "with")
            return Node(kind: .scope(assignments: assignments, body: body), line: line)
        case "break", "continue":
            if loopDepth == 0 { throw syntax("'\(keyword)' outside loop", line: line) }
            try expectBlockEnd()
            return Node(kind: keyword == "break" ? .breakLoop : .continueLoop, line: line)
        case "generation":
            try expectBlockEnd()
            return Node(kind: .group(try blockBody(ending: "endgeneration", innermost: "generation")), line: line)
        case "do", "include", "import", "from", "extends", "block", "call", "trans", "autoescape":
            throw syntax("the '\(keyword)' tag is not supported by this chat template interpreter", line: line)
        default:
            throw syntax("Encountered unknown tag '\(keyword)'.", line: line)
        }
    }

    private mutating func blockBody(ending end: String, innermost: String) throws -> [Node] {
        let (body, _) = try statements(until: [end], innermost: innermost)
        try expectBlockEnd()
        return body
    }

    private mutating func ifStatement(line: Int) throws -> Node {
        var branches: [(Expr, [Node])] = []
        var otherwise: [Node] = []
        var condition = try tuple(conditional: false)
        while true {
            try expectBlockEnd()
            let (body, end) = try statements(until: ["elif", "else", "endif"], innermost: "if")
            branches.append((condition, body))
            if end == "elif" {
                condition = try tuple(conditional: false)
                continue
            }
            if end == "else" {
                try expectBlockEnd()
                otherwise = try blockBody(ending: "endif", innermost: "if")
            } else {
                try expectBlockEnd()
            }
            return Node(kind: .conditional(branches: branches, otherwise: otherwise), line: line)
        }
    }

    private mutating func forStatement(line: Int) throws -> Node {
        let target = try assignTarget(allowNamespace: false, stopAtIn: true)
        _ = try expectName("in")
        let iterable = try tuple(conditional: false, extraEnds: ["recursive", "if"])
        var filter: Expr?
        if skipName("if") { filter = try expression() }
        if isName("recursive") { throw syntax("recursive for loops are not supported", line: current.line) }
        try expectBlockEnd()
        loopDepth += 1
        let (body, end) = try statements(until: ["endfor", "else"], innermost: "for")
        loopDepth -= 1
        var otherwise: [Node] = []
        try expectBlockEnd()
        if end == "else" { otherwise = try blockBody(ending: "endfor", innermost: "for") }
        return Node(
            kind: .loop(ForLoop(target: target, iterable: iterable, filter: filter, body: body, otherwise: otherwise)),
            line: line)
    }

    private mutating func setStatement(line: Int) throws -> Node {
        let target = try assignTarget(allowNamespace: true)
        if skipOp("=") {
            let value = try tuple()
            try expectBlockEnd()
            return Node(kind: .assign(target, value), line: line)
        }
        let filters = isOp("|") ? try filterChain(first: false) : []
        try expectBlockEnd()
        let body = try blockBody(ending: "endset", innermost: "set")
        return Node(kind: .assignBlock(target, body: body, filters: filters), line: line)
    }

    private mutating func macroStatement(line: Int) throws -> Node {
        let name = try expectName()
        try expectOp("(")
        var parameters: [(String, Expr?)] = []
        while !skipOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            let p = try expectName()
            parameters.append((p, skipOp("=") ? try expression() : nil))
        }
        try expectBlockEnd()
        let enclosingLoops = loopDepth
        loopDepth = 0
        let body = try blockBody(ending: "endmacro", innermost: "macro")
        loopDepth = enclosingLoops
        var macro = MacroDefinition(name: name, parameters: parameters, body: body)
        try SyntaxWalk.walk(body) { e in
            if case .name("varargs") = e.kind { macro.catchesVarargs = true }
            if case .name("kwargs") = e.kind { macro.catchesKwargs = true }
        }
        return Node(kind: .macro(macro), line: line)
    }

    /// `| name(args) | name ...` after `filter` or a block `set`.
    private mutating func filterChain(first: Bool) throws -> [(String, CallArguments, Int)] {
        var filters: [(String, CallArguments, Int)] = []
        var needBar = !first
        while first ? current.kind != .blockEnd : isOp("|") {
            if needBar || !filters.isEmpty { try expectOp("|") }
            needBar = false
            let line = current.line
            let name = try dottedName()
            filters.append((name, isOp("(") ? try callArguments() : CallArguments(), line))
        }
        return filters
    }

    private mutating func assignTarget(allowNamespace: Bool, stopAtIn: Bool = false) throws -> AssignTarget {
        var items: [AssignTarget] = []
        var sawComma = false
        repeat {
            if skipOp("(") {
                items.append(try assignTarget(allowNamespace: false))
                try expectOp(")")
            } else {
                let name = try expectName()
                if allowNamespace, skipOp(".") {
                    return .namespaceAttribute(name, try expectName())
                }
                items.append(.name(name))
            }
            sawComma = skipOp(",")
        } while sawComma && !(stopAtIn && isName("in")) && !isOp("=") && !isOp(")")
        return items.count == 1 && !sawComma ? items[0] : .tuple(items)
    }
}

// MARK: expressions

extension Parser {
    /// jinja2's `parse_tuple`: a bare comma list is a tuple, so `{{ a, b }}` prints `(a, b)`.
    fileprivate mutating func tuple(conditional: Bool = true, extraEnds: Set<String> = []) throws -> Expr {
        let line = current.line
        var items: [Expr] = []
        var sawComma = false
        while true {
            if !items.isEmpty {
                guard skipOp(",") else { break }
                sawComma = true
            }
            if isTupleEnd(extraEnds) { break }
            items.append(conditional ? try expression() : try orExpression())
        }
        if !sawComma, items.count == 1 { return items[0] }
        if items.isEmpty && !sawComma {
            throw syntax("Expected an expression, got '\(describe(current))'", line: current.line)
        }
        return Expr(kind: .tuple(items), line: line)
    }

    private func isTupleEnd(_ extraEnds: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .eof: return true
        case .op(let o): return o == ")" || o == "]" || o == "}" || o == "="
        case .name(let n): return extraEnds.contains(n)
        default: return false
        }
    }

    mutating func expression() throws -> Expr {
        try enterNested()
        defer { nesting -= 1 }
        var e = try orExpression()
        while isName("if") {
            let line = current.line
            i += 1
            let condition = try orExpression()
            let otherwise = skipName("else") ? try expression() : nil
            e = try checkHeight(Expr(kind: .conditional(condition: condition, then: e, otherwise: otherwise), line: line))
        }
        return e
    }

    private mutating func orExpression() throws -> Expr {
        var e = try andExpression()
        while isName("or") {
            let line = current.line
            i += 1
            e = try checkHeight(Expr(kind: .or(e, try andExpression()), line: line))
        }
        return e
    }

    private mutating func andExpression() throws -> Expr {
        var e = try notExpression()
        while isName("and") {
            let line = current.line
            i += 1
            e = try checkHeight(Expr(kind: .and(e, try notExpression()), line: line))
        }
        return e
    }

    private mutating func notExpression() throws -> Expr {
        try enterNested()
        defer { nesting -= 1 }
        if isName("not") {
            let line = current.line
            i += 1
            return Expr(kind: .not(try notExpression()), line: line)
        }
        return try comparison()
    }

    private mutating func comparison() throws -> Expr {
        let line = current.line
        let first = try additive()
        var ops: [(String, Expr)] = []
        while true {
            if case .op(let o) = current.kind, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                i += 1
                ops.append((o, try additive()))
            } else if skipName("in") {
                ops.append(("in", try additive()))
            } else if isName("not"), case .name("in") = next.kind {
                i += 2
                ops.append(("notin", try additive()))
            } else {
                break
            }
        }
        return ops.isEmpty ? first : Expr(kind: .compare(first, ops), line: line)
    }

    private mutating func binaryLevel(_ ops: [String], _ operand: (inout Parser) throws -> Expr) throws -> Expr {
        var e = try operand(&self)
        while case .op(let o) = current.kind, ops.contains(o) {
            let line = current.line
            i += 1
            e = try checkHeight(Expr(kind: .binary(o, e, try operand(&self)), line: line))
        }
        return e
    }

    private mutating func additive() throws -> Expr { try binaryLevel(["+", "-"]) { try $0.concatenation() } }
    private mutating func concatenation() throws -> Expr { try binaryLevel(["~"]) { try $0.multiplicative() } }
    private mutating func multiplicative() throws -> Expr {
        try binaryLevel(["*", "/", "//", "%"]) { try $0.power() }
    }
    private mutating func power() throws -> Expr { try binaryLevel(["**"]) { try $0.unary(withFilter: true) } }

    private mutating func unary(withFilter: Bool) throws -> Expr {
        try enterNested()
        defer { nesting -= 1 }
        let line = current.line
        var e: Expr
        if skipOp("-") {
            e = Expr(kind: .negate(try unary(withFilter: false)), line: line)
        } else if skipOp("+") {
            e = Expr(kind: .plus(try unary(withFilter: false)), line: line)
        } else {
            e = try primary()
        }
        e = try postfix(e)
        return withFilter ? try filterExpression(e) : e
    }

    private mutating func primary() throws -> Expr {
        let t = current
        switch t.kind {
        case .name(let n):
            i += 1
            switch n {
            case "true", "True": return Expr(kind: .literal(.bool(true)), line: t.line)
            case "false", "False": return Expr(kind: .literal(.bool(false)), line: t.line)
            case "none", "None": return Expr(kind: .literal(.none), line: t.line)
            default: return Expr(kind: .name(n), line: t.line)
            }
        case .string(var s):
            i += 1
            while case .string(let more) = current.kind {
                s += more
                i += 1
            }
            return Expr(kind: .literal(.string(s)), line: t.line)
        case .integer(let v):
            i += 1
            return Expr(kind: .literal(.int(v)), line: t.line)
        case .float(let d):
            i += 1
            return Expr(kind: .literal(.double(d)), line: t.line)
        case .op("("):
            i += 1
            if skipOp(")") { return Expr(kind: .tuple([]), line: t.line) }
            let e = try tuple()
            try expectOp(")")
            return e
        case .op("["):
            i += 1
            var items: [Expr] = []
            while !skipOp("]") {
                if !items.isEmpty {
                    try expectOp(",")
                    if skipOp("]") { break }
                }
                items.append(try expression())
            }
            return Expr(kind: .list(items), line: t.line)
        case .op("{"):
            i += 1
            var pairs: [(Expr, Expr)] = []
            while !skipOp("}") {
                if !pairs.isEmpty {
                    try expectOp(",")
                    if skipOp("}") { break }
                }
                let key = try expression()
                try expectOp(":")
                pairs.append((key, try expression()))
            }
            return Expr(kind: .dict(pairs), line: t.line)
        default:
            throw syntax("unexpected '\(describe(t))'", line: t.line)
        }
    }

    private mutating func postfix(_ base: Expr) throws -> Expr {
        var e = base
        while true {
            let line = current.line
            if skipOp(".") {
                switch current.kind {
                case .name(let n):
                    i += 1
                    e = try checkHeight(Expr(kind: .attribute(e, n), line: line))
                case .integer(let v):
                    i += 1
                    e = try checkHeight(Expr(kind: .item(e, Expr(kind: .literal(.int(v)), line: line)), line: line))
                default:
                    throw syntax("expected name or number", line: line)
                }
            } else if skipOp("[") {
                e = try subscription(e, line: line)
            } else if isOp("(") {
                e = try checkHeight(Expr(kind: .call(e, try callArguments()), line: line))
            } else {
                return e
            }
        }
    }

    private mutating func subscription(_ base: Expr, line: Int) throws -> Expr {
        var start: Expr?
        if !isOp(":") {
            let e = try expression()
            if skipOp("]") { return Expr(kind: .item(base, e), line: line) }
            if isOp(",") { throw syntax("tuple subscripts are not supported", line: line) }
            start = e
        }
        try expectOp(":")
        var stop: Expr?, step: Expr?
        if !isOp("]") && !isOp(":") { stop = try expression() }
        if skipOp(":"), !isOp("]") { step = try expression() }
        try expectOp("]")
        return Expr(kind: .slice(base, start: start, stop: stop, step: step), line: line)
    }

    private mutating func filterExpression(_ base: Expr) throws -> Expr {
        var e = base
        while true {
            let line = current.line
            if skipOp("|") {
                let name = try dottedName()
                let args = isOp("(") ? try callArguments() : CallArguments()
                e = try checkHeight(Expr(kind: .filter(e, name: name, args), line: line))
            } else if skipName("is") {
                let negated = skipName("not")
                let name = try dottedName()
                var args = CallArguments()
                if isOp("(") {
                    args = try callArguments()
                } else if startsPrimary, !isName("else"), !isName("or"), !isName("and") {
                    if isName("is") { throw syntax("You cannot chain multiple tests with is", line: current.line) }
                    args.positional = [try postfix(try primary())]
                }
                e = try checkHeight(Expr(kind: .test(e, name: name, args), line: line))
                if negated { e = Expr(kind: .not(e), line: line) }
            } else if isOp("(") {
                e = try checkHeight(Expr(kind: .call(e, try callArguments()), line: line))
            } else {
                return e
            }
        }
    }

    private var startsPrimary: Bool {
        switch current.kind {
        case .name, .string, .integer, .float, .op("("), .op("["), .op("{"): return true
        default: return false
        }
    }

    private mutating func dottedName() throws -> String {
        var name = try expectName()
        while skipOp(".") { name += "." + (try expectName()) }
        return name
    }

    private mutating func callArguments() throws -> CallArguments {
        try expectOp("(")
        var args = CallArguments()
        var first = true
        while !skipOp(")") {
            if !first {
                try expectOp(",")
                if skipOp(")") { break }
            }
            first = false
            if skipOp("**") {
                args.doubleStar = try expression()
            } else if skipOp("*") {
                args.star = try expression()
            } else if case .name(let n) = current.kind, case .op("=") = next.kind {
                i += 2
                args.keywords.append((n, try expression()))
            } else {
                if !args.keywords.isEmpty {
                    throw syntax("positional argument follows keyword argument", line: current.line)
                }
                args.positional.append(try expression())
            }
        }
        return args
    }
}
