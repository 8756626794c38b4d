/// Expression evaluation. Value-level semantics (operators, lookups, filters) live in `Operators`,
/// `Filters` and `Methods`; this file walks the tree and attaches line numbers to failures.
struct EvaluatedArguments {
    var positional: [Value]
    var keywords: [(String, Value)]

    /// Binds arguments to a Python-style signature, like calling `f(*positional, **keywords)`.
    func bind(_ names: [String], function: String) throws -> [Value?] {
        if positional.count > names.count {
            throw TemplateFailure("TypeError", "\(function)() takes at most \(names.count) argument(s) (\(positional.count) given)")
        }
        var bound: [Value?] = positional.map { $0 } + Array(repeating: nil, count: names.count - positional.count)
        for (key, value) in keywords {
            guard let i = names.firstIndex(of: key) else {
                throw TemplateFailure("TypeError", "\(function)() got an unexpected keyword argument '\(key)'")
            }
            if bound[i] != nil {
                throw TemplateFailure("TypeError", "\(function)() got multiple values for argument '\(key)'")
            }
            bound[i] = value
        }
        return bound
    }
}

extension Interpreter {
    func evaluate(_ e: Expr, _ scope: Scope) throws -> Value {
        switch e.kind {
        case .literal(let v):
            return v
        case .name(let n):
            return scope.lookup(n) ?? Globals.lookup(n) ?? .undefined(.name(n))
        case .list(let items):
            return .list(try items.map { try evaluate($0, scope) })
        case .tuple(let items):
            return .tuple(try items.map { try evaluate($0, scope) })
        case .dict(let pairs):
            var d = ValueDict()
            for (k, v) in pairs {
                let key = try evaluate(k, scope)
                try at(e.line) { try Operators.checkHashable(key) }
                d[key] = try evaluate(v, scope)
            }
            return .dict(d)
        case .attribute(let base, let name):
            let b = try evaluate(base, scope)
            return try at(e.line) { try Operators.attribute(b, name) }
        case .item(let base, let key):
            let b = try evaluate(base, scope)
            let k = try evaluate(key, scope)
            return try at(e.line) { try Operators.item(b, k) }
        case .slice(let base, let start, let stop, let step):
            let b = try evaluate(base, scope)
            let bounds = try [start, stop, step].map { try $0.map { try evaluate($0, scope) } ?? .none }
            return try at(e.line) { try Operators.slice(b, bounds[0], bounds[1], bounds[2]) }
        case .call(let callee, let args):
            let f = try evaluate(callee, scope)
            let a = try evaluateArguments(args, scope)
            return try at(e.line) { try Operators.call(f, a) }
        case .filter(let base, let name, let args):
            let v = try evaluate(base, scope)
            let a = try evaluateArguments(args, scope)
            return try at(e.line) { try Filters.apply(name, to: v, a, interpreter: self) }
        case .test(let base, let name, let args):
            let v = try evaluate(base, scope)
            let a = try evaluateArguments(args, scope)
            return .bool(try at(e.line) { try Tests.apply(name, to: v, a) })
        case .not(let x):
            return .bool(!(try evaluate(x, scope).truthy))
        case .negate(let x):
            let v = try evaluate(x, scope)
            return try at(e.line) { try Operators.negate(v) }
        case .plus(let x):
            let v = try evaluate(x, scope)
            return try at(e.line) {
                guard v.number != nil else { throw TemplateFailure("TypeError", "bad operand type for unary +: '\(v.typeName)'") }
                if case .bool(let b) = v { return .int(b ? 1 : 0) }
                return v
            }
        case .binary(let op, let l, let r):
            let a = try evaluate(l, scope)
            let b = try evaluate(r, scope)
            return try at(e.line) { try Operators.binary(op, a, b) }
        case .and(let l, let r):
            let a = try evaluate(l, scope)
            return a.truthy ? try evaluate(r, scope) : a
        case .or(let l, let r):
            let a = try evaluate(l, scope)
            return a.truthy ? a : try evaluate(r, scope)
        case .compare(let first, let ops):
            var left = try evaluate(first, scope)
            for (op, rightExpr) in ops {
                let right = try evaluate(rightExpr, scope)
                let ok = try at(e.line) { try Operators.compare(op, left, right) }
                if !ok { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let condition, let then, let otherwise):
            if try evaluate(condition, scope).truthy { return try evaluate(then, scope) }
            if let otherwise { return try evaluate(otherwise, scope) }
            return .undefined(Undefined(message: "the inline if-expression on line \(e.line) evaluated to false and no else section was defined."))
        }
    }

    func evaluateArguments(_ args: CallArguments, _ scope: Scope) throws -> EvaluatedArguments {
        var positional = try args.positional.map { try evaluate($0, scope) }
        var keywords = try args.keywords.map { ($0.0, try evaluate($0.1, scope)) }
        if let star = args.star {
            let v = try evaluate(star, scope)
            positional += try at(star.line) { try Operators.iterate(v) }
        }
        if let doubleStar = args.doubleStar {
            guard case .dict(let d) = try evaluate(doubleStar, scope) else {
                throw ChatTemplateError.render(line: doubleStar.line, message: "TypeError: argument after ** must be a mapping")
            }
            for (k, v) in d.pairs {
                guard case .string(let key) = k else {
                    throw ChatTemplateError.render(line: doubleStar.line, message: "TypeError: keywords must be strings")
                }
                keywords.append((key, v))
            }
        }
        return EvaluatedArguments(positional: positional, keywords: keywords)
    }
}
