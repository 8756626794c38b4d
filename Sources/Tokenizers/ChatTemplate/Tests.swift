/// jinja2's built-in tests (`x is defined`, `x is string`, ...).
enum Tests {
    static let names: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false", "float",
        "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable", "le", "<=", "lower", "lt", "lessthan", "<",
        "mapping", "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "true", "undefined", "upper",
        "filter", "test",
    ]

    static func apply(_ name: String, to v: Value, _ a: EvaluatedArguments) throws -> Bool {
        func other() throws -> Value { try a.bind(["other"], function: name)[0] ?? .none }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": return v.isNoneValue
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "number": return v.number != nil
        case "string": if case .string = v { return true }; return false
        case "mapping": if case .dict = v { return true }; return false
        case "callable": if case .function = v { return true }; return false
        case "escaped": return false
        case "sequence":
            switch v {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "iterable":
            switch v {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "odd", "even":
            guard case .int(let i)? = v.number else { throw TemplateFailure("TypeError", "\(name) test needs a number") }
            return (i & 1 == 1) == (name == "odd")
        case "divisibleby":
            guard case .int(let i)? = v.number, case .int(let n)? = try other().number else {
                throw TemplateFailure("TypeError", "divisibleby needs integers")
            }
            if n == 0 { throw TemplateFailure("ZeroDivisionError", "integer division or modulo by zero") }
            return i % n == 0
        case "eq", "equalto", "==": return try Operators.compare("==", v, other())
        case "ne", "!=": return try Operators.compare("!=", v, other())
        case "lt", "lessthan", "<": return try Operators.compare("<", v, other())
        case "le", "<=": return try Operators.compare("<=", v, other())
        case "gt", "greaterthan", ">": return try Operators.compare(">", v, other())
        case "ge", ">=": return try Operators.compare(">=", v, other())
        case "in": return try Operators.contains(try a.bind(["seq"], function: name)[0] ?? .none, v)
        case "lower", "upper":
            let s = PythonText.str(v)
            let cased = s.unicodeScalars.filter { $0.properties.isCased }
            return !cased.isEmpty && cased.allSatisfy { name == "upper" ? !$0.properties.isLowercase : !$0.properties.isUppercase }
        case "sameas":
            let o = try other()
            switch (v, o) {
            case (.namespace(let x), .namespace(let y)): return x === y
            case (.none, .none): return true
            case (.bool(let x), .bool(let y)): return x == y
            default: return false
            }
        case "filter": return Filters.names.contains(PythonText.str(v))
        case "test": return names.contains(PythonText.str(v))
        default:
            throw TemplateFailure("TemplateAssertionError", "No test named '\(name)'.")
        }
    }
}
