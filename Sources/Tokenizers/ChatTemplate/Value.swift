/// The interpreter's runtime values. They mirror the Python objects jinja2 juggles when it renders a chat
/// template, so that truthiness, equality, printing and errors come out as they do under transformers.
/// Lists and dicts are values (not references): the immutable sandbox transformers uses forbids every
/// mutating method, so nothing a template does can observe aliasing. Namespaces are the one mutable object.
enum Value {
    case undefined(Undefined)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(ValueDict)
    case namespace(Namespace)
    case function(Function)
    case loop(LoopState)

    init(_ v: TemplateValue) {
        switch v {
        case .none: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map(Value.init))
        case .object(let o):
            var d = ValueDict()
            for (k, v) in o { d[.string(k)] = Value(v) }
            self = .dict(d)
        }
    }

    /// Python's `type(x).__name__`, which jinja2 puts in its error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .function(let f): return f.isMacro ? "Macro" : "builtin_function_or_method"
        case .loop: return "LoopContext"
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }

    /// Python truthiness (`Undefined` is falsy).
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return d.count > 0
        case .namespace, .function, .loop: return true
        }
    }

    /// Numbers as Python sees them, `bool` being an `int`.
    enum Number { case int(Int), double(Double) }
    var number: Number? {
        switch self {
        case .bool(let b): return .int(b ? 1 : 0)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        default: return nil
        }
    }
}

/// jinja2's default `Undefined`: prints as nothing, iterates as empty, is falsy, and fails with `message`
/// as soon as anything else is asked of it.
struct Undefined {
    var message: String
    /// The sandbox's `unsafe_undefined` (a forbidden attribute such as `list.append`) fails with SecurityError.
    var unsafe = false

    static func name(_ name: String) -> Undefined { Undefined(message: "'\(name)' is undefined") }
    /// jinja2's message for a failed lookup: `'dict object' has no attribute 'x'` for names,
    /// `list object has no element 0` (no quotes, as jinja2 writes it) for anything else.
    static func attribute(of owner: Value, _ attribute: Value) -> Undefined {
        if case .string(let s) = attribute {
            return Undefined(message: "\(PythonText.stringRepr(objectTypeRepr(owner))) has no attribute \(PythonText.stringRepr(s))")
        }
        return Undefined(message: "\(objectTypeRepr(owner)) has no element \(PythonText.repr(attribute))")
    }

    /// jinja2's `object_type_repr`: `None`, `<builtin type> object`, or the class's full module path.
    static func objectTypeRepr(_ v: Value) -> String {
        switch v {
        case .none: return "None"
        case .namespace: return "transformers.utils.chat_template_utils.TemplateNamespace object"
        case .loop: return "jinja2.runtime.LoopContext object"
        case .function(let f) where f.isMacro: return "jinja2.runtime.Macro object"
        default: return "\(v.typeName) object"
        }
    }
}

/// A Python dict with insertion order. Lookups are linear: template dicts are small, and keys compare
/// with Python equality (`1 == 1.0 == True`), which a Swift hash would not reproduce cheaply.
struct ValueDict {
    private(set) var keys: [Value] = []
    private(set) var values: [Value] = []

    var count: Int { keys.count }

    func index(of key: Value) -> Int? { keys.firstIndex { Value.pythonEquals($0, key) } }

    subscript(key: Value) -> Value? {
        get { index(of: key).map { values[$0] } }
        set {
            if let i = index(of: key) {
                if let newValue { values[i] = newValue } else { keys.remove(at: i); values.remove(at: i) }
            } else if let newValue {
                keys.append(key)
                values.append(newValue)
            }
        }
    }

    subscript(string key: String) -> Value? { self[.string(key)] }

    var pairs: [(Value, Value)] { Array(zip(keys, values)) }
}

/// `namespace(...)`: the one mutable object, shared by reference so `{% set ns.x = ... %}` inside a loop is
/// seen after it.
final class Namespace {
    var attributes = ValueDict()
}

/// A callable value: a global (`raise_exception`), a bound method (`'x'.strip`), or a macro.
struct Function {
    var name: String
    var isMacro = false
    var call: (_ args: [Value], _ kwargs: [(String, Value)]) throws -> Value
}

/// jinja2's `loop` variable for the current iteration.
final class LoopState {
    let items: [Value]
    var index0 = 0
    let depth0: Int
    var lastChanged: [Value]?

    init(items: [Value], depth0: Int) {
        self.items = items
        self.depth0 = depth0
    }
}

extension Value {
    /// Python `==` as used by jinja2's `==`, `in` and the `equalto` test.
    static func pythonEquals(_ a: Value, _ b: Value) -> Bool {
        if let x = a.number, let y = b.number {
            switch (x, y) {
            case (.int(let i), .int(let j)): return i == j
            case (.int(let i), .double(let d)), (.double(let d), .int(let i)): return Double(i) == d
            case (.double(let d), .double(let e)): return d == e
            }
        }
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let s), .string(let t)): return PythonText.same(s, t)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { pythonEquals($0, $1) }
        case (.dict(let x), .dict(let y)):
            guard x.count == y.count else { return false }
            return x.pairs.allSatisfy { k, v in y[k].map { pythonEquals(v, $0) } ?? false }
        case (.namespace(let x), .namespace(let y)): return x === y
        case (.loop(let x), .loop(let y)): return x === y
        default: return false
        }
    }

    /// Python ordering for `<`, `sort`, `min`/`max`; throws Python's TypeError on mixed kinds.
    static func pythonCompare(_ a: Value, _ b: Value, op: String = "<") throws -> Int {
        if let x = a.number, let y = b.number {
            switch (x, y) {
            case (.int(let i), .int(let j)): return i < j ? -1 : (i == j ? 0 : 1)
            default:
                let d = x.asDouble, e = y.asDouble
                return d < e ? -1 : (d == e ? 0 : 1)
            }
        }
        switch (a, b) {
        case (.string(let s), .string(let t)): return PythonText.compare(s, t)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !pythonEquals(p, q) { return try pythonCompare(p, q, op: op) }
            return x.count < y.count ? -1 : (x.count == y.count ? 0 : 1)
        case (.undefined(let u), _), (_, .undefined(let u)):
            throw TemplateFailure(u.unsafe ? "SecurityError" : "UndefinedError", u.message)
        default:
            throw TemplateFailure(
                "TypeError", "'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }
}

extension Value.Number {
    var asDouble: Double {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        }
    }
}

/// A failure inside an operation, named after the Python exception jinja2 would raise. The interpreter
/// adds the template line when it turns this into a `ChatTemplateError`.
struct TemplateFailure: Error {
    var kind: String
    var message: String
    init(_ kind: String, _ message: String) {
        self.kind = kind
        self.message = message
    }

    static func undefined(_ u: Undefined) -> TemplateFailure {
        TemplateFailure(u.unsafe ? "SecurityError" : "UndefinedError", u.message)
    }
}

/// The longest string or sequence a template may build, and the longest output it may render. A chat
/// prompt is kilobytes; `'a' * 10**10` or a width of 10**10 would exhaust memory, where Python raises
/// MemoryError, so they fail the same way here before anything is allocated.
enum TemplateLimit {
    static let maxLength = 1 << 26

    static func check(_ length: Int, _ what: String) throws {
        guard length <= maxLength else {
            throw TemplateFailure("MemoryError", "\(what) of \(length) would exceed the template limit of \(maxLength)")
        }
    }
}
