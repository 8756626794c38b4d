import Foundation

/// The global functions transformers adds to jinja2's defaults: `raise_exception`, `strftime_now`,
/// its restricted `namespace` and `dict`, plus jinja2's `range`.
enum Globals {
    static func lookup(_ name: String) -> Value? {
        switch name {
        case "raise_exception":
            return function(name) { a in
                let message = try a.bind(["message"], function: name)[0] ?? .none
                throw TemplateFailure("TemplateError", PythonText.str(message))
            }
        case "strftime_now":
            return function(name) { a in
                guard case .string(let format)? = try a.bind(["format"], function: name)[0] else {
                    throw TemplateFailure("TypeError", "strftime() argument 1 must be str")
                }
                return .string(strftimeNow(format))
            }
        case "namespace":
            return function(name) { a in
                let ns = Namespace()
                ns.attributes = try dictionary(a, function: name)
                for key in ns.attributes.keys {
                    if case .string(let k) = key, k.hasPrefix("_") {
                        throw TemplateFailure("SecurityError", underscoreMessage(k))
                    }
                }
                return .namespace(ns)
            }
        case "dict":
            return function(name) { a in .dict(try dictionary(a, function: name)) }
        case "range":
            return function(name) { a in
                let ints = try a.positional.map { v -> Int in
                    guard case .int(let i)? = v.number, v.isIntegral else {
                        throw TemplateFailure("TypeError", "'\(v.typeName)' object cannot be interpreted as an integer")
                    }
                    return i
                }
                guard !ints.isEmpty, ints.count <= 3, a.keywords.isEmpty else {
                    throw TemplateFailure("TypeError", "range expected 1 to 3 integer arguments")
                }
                let (start, stop, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count == 3 ? ints[2] : 1)
                if step == 0 { throw TemplateFailure("ValueError", "range() arg 3 must not be zero") }
                // jinja2's sandbox caps ranges at 100000 items.
                let items = stride(from: start, to: stop, by: step)
                guard items.underestimatedCount <= 100_000 else {
                    throw TemplateFailure("OverflowError", "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
                }
                return .list(items.map { .int($0) })
            }
        default:
            return nil
        }
    }

    static func underscoreMessage(_ name: String) -> String {
        "Chat templates cannot store underscore-prefixed attributes on a namespace, but got \(PythonText.stringRepr(name)). "
            + "Please rename the attribute."
    }

    private static func function(_ name: String, _ body: @escaping (EvaluatedArguments) throws -> Value) -> Value {
        .function(Function(name: name) { args, kwargs in try body(EvaluatedArguments(positional: args, keywords: kwargs)) })
    }

    /// Python's `dict(mapping_or_pairs, **kwargs)`.
    private static func dictionary(_ a: EvaluatedArguments, function: String) throws -> ValueDict {
        var d = ValueDict()
        if a.positional.count > 1 {
            throw TemplateFailure("TypeError", "\(function) expected at most 1 argument, got \(a.positional.count)")
        }
        if let first = a.positional.first {
            switch first {
            case .dict(let src): d = src
            case .namespace(let ns): d = ns.attributes
            default:
                for pair in try Operators.iterate(first) {
                    let items = try Operators.iterate(pair)
                    guard items.count == 2 else {
                        throw TemplateFailure("ValueError", "dictionary update sequence element has length \(items.count); 2 is required")
                    }
                    try Operators.checkHashable(items[0])
                    d[items[0]] = items[1]
                }
            }
        }
        for (k, v) in a.keywords { d[.string(k)] = v }
        return d
    }

    /// `datetime.now().strftime(format)`: Python hands the format to the C library's strftime on Linux.
    static func strftimeNow(_ format: String) -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var size = 256
        while size <= 1 << 16 {
            var buffer = [CChar](repeating: 0, count: size)
            let n = strftime(&buffer, size, format, &parts)
            if n > 0 || format.isEmpty {
                return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            size *= 4
        }
        return ""
    }
}
