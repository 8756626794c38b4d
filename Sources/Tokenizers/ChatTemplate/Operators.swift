import Foundation

/// Python semantics of the operators and lookups jinja2 compiles templates into.
enum Operators {
    static func iterate(_ v: Value) throws -> [Value] {
        switch v {
        case .list(let a), .tuple(let a): return a
        case .dict(let d): return d.keys
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        default: throw TemplateFailure("TypeError", "'\(v.typeName)' object is not iterable")
        }
    }

    static func checkHashable(_ v: Value) throws {
        switch v {
        case .list, .dict, .namespace, .loop: throw TemplateFailure("TypeError", "unhashable type: '\(v.typeName)'")
        case .tuple(let items): try items.forEach(checkHashable)
        default: break
        }
    }

    /// `obj.name`: Python attributes (methods) first, then items — jinja2's sandboxed `getattr`.
    static func attribute(_ b: Value, _ name: String) throws -> Value {
        switch b {
        case .undefined(let u):
            throw TemplateFailure.undefined(u)
        case .dict(let d):
            if let m = Methods.dictMethod(d, name) { return m }
            return d[string: name] ?? .undefined(.attribute(of: b, .string(name)))
        case .namespace(let ns):
            return ns.attributes[string: name] ?? .undefined(.attribute(of: b, .string(name)))
        case .loop(let state):
            return Methods.loopAttribute(state, name) ?? .undefined(.attribute(of: b, .string(name)))
        default:
            return Methods.method(of: b, name) ?? .undefined(.attribute(of: b, .string(name)))
        }
    }

    /// `obj[key]`: items first, then (for string keys) attributes — jinja2's sandboxed `getitem`.
    static func item(_ b: Value, _ key: Value) throws -> Value {
        switch b {
        case .undefined(let u):
            throw TemplateFailure.undefined(u)
        case .dict(let d):
            try checkHashable(key)
            if let v = d[key] { return v }
        case .list(let a), .tuple(let a):
            if case .int(let i)? = key.number, key.isIntegral {
                let k = i < 0 ? i + a.count : i
                if k >= 0 && k < a.count { return a[k] }
            }
        case .string(let s):
            if case .int(let i)? = key.number, key.isIntegral {
                let chars = PythonText.scalars(s)
                let k = i < 0 ? i + chars.count : i
                if k >= 0 && k < chars.count { return .string(String(chars[k])) }
            }
        case .namespace(let ns):
            if let v = ns.attributes[key] { return v }
        default:
            break
        }
        if case .string(let name) = key {
            if case .namespace = b { return .undefined(.attribute(of: b, key)) }
            return try attribute(b, name)
        }
        return .undefined(.attribute(of: b, key))
    }

    /// Python slicing `x[start:stop:step]` of lists, tuples and strings.
    static func slice(_ b: Value, _ start: Value, _ stop: Value, _ step: Value) throws -> Value {
        func bound(_ v: Value) throws -> Int? {
            if case .none = v { return nil }
            guard case .int(let i)? = v.number, v.isIntegral else {
                throw TemplateFailure("TypeError", "slice indices must be integers or None or have an __index__ method")
            }
            return i
        }
        if case .undefined(let u) = b { throw TemplateFailure.undefined(u) }
        let stepValue = try bound(step) ?? 1
        if stepValue == 0 { throw TemplateFailure("ValueError", "slice step cannot be zero") }
        func indices(_ count: Int) throws -> [Int] {
            func clamp(_ i: Int?, _ defaultValue: Int) -> Int {
                guard var i else { return defaultValue }
                if i < 0 { i += count; if i < 0 { i = stepValue < 0 ? -1 : 0 } }
                else if i >= count { i = stepValue < 0 ? count - 1 : count }
                return i
            }
            let s = clamp(try bound(start), stepValue < 0 ? count - 1 : 0)
            let e = clamp(try bound(stop), stepValue < 0 ? -1 : count)
            return Array(stride(from: s, to: e, by: stepValue))
        }
        switch b {
        case .list(let a): return .list(try indices(a.count).map { a[$0] })
        case .tuple(let a): return .tuple(try indices(a.count).map { a[$0] })
        case .string(let s):
            let chars = PythonText.scalars(s)
            return .string(PythonText.string(try indices(chars.count).map { chars[$0] }))
        default:
            return .undefined(Undefined(message: "\(Undefined.objectTypeRepr(b)) has no element slice"))
        }
    }

    static func call(_ f: Value, _ args: EvaluatedArguments) throws -> Value {
        switch f {
        case .function(let fn): return try fn.call(args.positional, args.keywords)
        case .undefined(let u): throw TemplateFailure.undefined(u)
        default: throw TemplateFailure("TypeError", "'\(f.typeName)' object is not callable")
        }
    }

    static func negate(_ v: Value) throws -> Value {
        switch v.number {
        case .int(let i)?:
            guard i != Int.min else { throw overflow }
            return .int(-i)
        case .double(let d)?: return .double(-d)
        case nil:
            if case .undefined(let u) = v { throw TemplateFailure.undefined(u) }
            throw TemplateFailure("TypeError", "bad operand type for unary -: '\(v.typeName)'")
        }
    }

    static let overflow = TemplateFailure("OverflowError", "integer result does not fit in 64 bits")

    static func binary(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        if op == "~" { return .string(PythonText.str(a) + PythonText.str(b)) }
        if case .undefined(let u) = a { throw TemplateFailure.undefined(u) }
        if case .undefined(let u) = b { throw TemplateFailure.undefined(u) }
        if let x = a.number, let y = b.number { return try arithmetic(op, x, y) }
        switch (op, a, b) {
        case ("+", .string(let s), .string(let t)): return .string(s + t)
        case ("+", .list(let s), .list(let t)): return .list(s + t)
        case ("+", .tuple(let s), .tuple(let t)): return .tuple(s + t)
        case ("+", .string, _), ("+", .list, _), ("+", .tuple, _):
            throw TemplateFailure("TypeError", "can only concatenate \(a.typeName) (not \"\(b.typeName)\") to \(a.typeName)")
        case ("*", .string, _), ("*", .list, _), ("*", .tuple, _):
            return try repeated(a, b)
        case ("*", _, .string), ("*", _, .list), ("*", _, .tuple):
            return try repeated(b, a)
        case ("%", .string(let s), _):
            return .string(try PrintfFormat.format(s, b))
        default:
            let symbol = op == "**" ? "** or pow()" : op
            throw TemplateFailure("TypeError", "unsupported operand type(s) for \(symbol): '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    private static func repeated(_ seq: Value, _ count: Value) throws -> Value {
        guard case .int(let n)? = count.number, count.isIntegral else {
            throw TemplateFailure("TypeError", "can't multiply sequence by non-int of type '\(count.typeName)'")
        }
        let times = max(0, n)
        let length: Int
        switch seq {
        case .string(let s): length = s.utf8.count
        case .list(let l), .tuple(let l): length = l.count
        default: length = 0
        }
        let total = length.multipliedReportingOverflow(by: times)
        try TemplateLimit.check(total.overflow ? Int.max : total.partialValue, "repeating a \(seq.typeName) to a length")
        switch seq {
        case .string(let s): return .string(String(repeating: s, count: times))
        case .list(let l): return .list(Array([[Value]](repeating: l, count: times).joined()))
        case .tuple(let l): return .tuple(Array([[Value]](repeating: l, count: times).joined()))
        default: throw TemplateFailure("TypeError", "can't multiply sequence")
        }
    }

    private static func arithmetic(_ op: String, _ x: Value.Number, _ y: Value.Number) throws -> Value {
        if case .int(let i) = x, case .int(let j) = y {
            switch op {
            case "+": let r = i.addingReportingOverflow(j); if r.overflow { throw overflow }; return .int(r.partialValue)
            case "-": let r = i.subtractingReportingOverflow(j); if r.overflow { throw overflow }; return .int(r.partialValue)
            case "*": let r = i.multipliedReportingOverflow(by: j); if r.overflow { throw overflow }; return .int(r.partialValue)
            case "/":
                if j == 0 { throw TemplateFailure("ZeroDivisionError", "division by zero") }
                return .double(Double(i) / Double(j))
            case "//", "%":
                if j == 0 { throw TemplateFailure("ZeroDivisionError", "integer division or modulo by zero") }
                if i == Int.min && j == -1 { throw overflow }
                var q = i / j, r = i % j
                if r != 0 && ((r < 0) != (j < 0)) { q -= 1; r += j }
                return .int(op == "//" ? q : r)
            case "**":
                if j < 0 { return .double(pow(Double(i), Double(j))) }
                var result = 1, base = i, e = j
                while e > 0 {
                    if e & 1 == 1 {
                        let r = result.multipliedReportingOverflow(by: base)
                        if r.overflow { throw overflow }
                        result = r.partialValue
                    }
                    e >>= 1
                    if e > 0 {
                        let r = base.multipliedReportingOverflow(by: base)
                        if r.overflow { throw overflow }
                        base = r.partialValue
                    }
                }
                return .int(result)
            default: break
            }
        }
        let a = x.asDouble, b = y.asDouble
        switch op {
        case "+": return .double(a + b)
        case "-": return .double(a - b)
        case "*": return .double(a * b)
        case "/":
            if b == 0 { throw TemplateFailure("ZeroDivisionError", "float division by zero") }
            return .double(a / b)
        case "//", "%":
            if b == 0 { throw TemplateFailure("ZeroDivisionError", op == "%" ? "float modulo" : "float floor division by zero") }
            // CPython's float_divmod, so signs and rounding match.
            var mod = fmod(a, b)
            var div = (a - mod) / b
            if mod != 0 {
                if (b < 0) != (mod < 0) { mod += b; div -= 1 }
            } else {
                mod = copysign(0, b)
            }
            var floordiv: Double
            if div != 0 {
                floordiv = floor(div)
                if div - floordiv > 0.5 { floordiv += 1 }
            } else {
                floordiv = copysign(0, a / b)
            }
            return .double(op == "//" ? floordiv : mod)
        case "**":
            if a == 0 && b < 0 { throw TemplateFailure("ZeroDivisionError", "0.0 cannot be raised to a negative power") }
            return .double(pow(a, b))
        default:
            throw TemplateFailure("TypeError", "unsupported operator \(op)")
        }
    }

    static func compare(_ op: String, _ a: Value, _ b: Value) throws -> Bool {
        switch op {
        case "==": return Value.pythonEquals(a, b)
        case "!=": return !Value.pythonEquals(a, b)
        case "<": return try Value.pythonCompare(a, b, op: op) < 0
        case ">": return try Value.pythonCompare(a, b, op: op) > 0
        case "<=": return try Value.pythonCompare(a, b, op: op) <= 0
        case ">=": return try Value.pythonCompare(a, b, op: op) >= 0
        case "in": return try contains(b, a)
        case "notin": return try !contains(b, a)
        default: throw TemplateFailure("TypeError", "unknown comparison \(op)")
        }
    }

    /// Python `needle in container`.
    static func contains(_ container: Value, _ needle: Value) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let n) = needle else {
                throw TemplateFailure("TypeError", "'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            return PythonText.contains(s, n)
        case .list(let a), .tuple(let a): return a.contains { Value.pythonEquals($0, needle) }
        case .dict(let d):
            try checkHashable(needle)
            return d[needle] != nil
        case .undefined: return false
        default: throw TemplateFailure("TypeError", "argument of type '\(container.typeName)' is not iterable")
        }
    }
}

extension Value {
    /// Ints and bools (Python's `__index__`), not floats.
    var isIntegral: Bool {
        switch self {
        case .int, .bool: return true
        default: return false
        }
    }
}
