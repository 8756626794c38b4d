/// The Python methods templates call on strings, dicts and lists, and the `loop` object's attributes.
/// Mutating methods are refused as transformers' immutable sandbox refuses them.
enum Methods {
    private static func unsafe(_ owner: Value, _ name: String) -> Value {
        .undefined(Undefined(message: "access to attribute '\(name)' of '\(owner.typeName)' object is unsafe.", unsafe: true))
    }

    private static func method(_ name: String, _ body: @escaping (EvaluatedArguments) throws -> Value) -> Value {
        .function(Function(name: name) { args, kwargs in try body(EvaluatedArguments(positional: args, keywords: kwargs)) })
    }

    static func dictMethod(_ d: ValueDict, _ name: String) -> Value? {
        let owner = Value.dict(d)
        switch name {
        case "get":
            return method(name) { a in
                let b = try a.bind(["key", "default"], function: "get")
                guard let key = b[0] else { throw TemplateFailure("TypeError", "get expected at least 1 argument, got 0") }
                try Operators.checkHashable(key)
                return d[key] ?? b[1] ?? .none
            }
        case "items":
            return method(name) { a in
                _ = try a.bind([], function: "items")
                return .list(d.pairs.map { .tuple([$0.0, $0.1]) })
            }
        case "keys": return method(name) { a in _ = try a.bind([], function: "keys"); return .list(d.keys) }
        case "values": return method(name) { a in _ = try a.bind([], function: "values"); return .list(d.values) }
        case "copy": return method(name) { _ in owner }
        case "pop", "popitem", "setdefault", "update", "clear": return unsafe(owner, name)
        default: return nil
        }
    }

    static func method(of v: Value, _ name: String) -> Value? {
        switch v {
        case .string(let s): return stringMethod(s, name)
        case .list(let l), .tuple(let l):
            switch name {
            case "count": return method(name) { a in
                let b = try a.bind(["value"], function: "count")
                return .int(l.filter { Value.pythonEquals($0, b[0] ?? .none) }.count)
            }
            case "index": return method(name) { a in
                let b = try a.bind(["value"], function: "index")
                guard let i = l.firstIndex(where: { Value.pythonEquals($0, b[0] ?? .none) }) else {
                    throw TemplateFailure("ValueError", "\(PythonText.repr(b[0] ?? .none)) is not in list")
                }
                return .int(i)
            }
            case "copy" where v.typeName == "list": return method(name) { _ in v }
            case "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse":
                return v.typeName == "list" ? unsafe(v, name) : nil
            default: return nil
            }
        default: return nil
        }
    }

    private static func string(_ v: Value?, _ what: String) throws -> String? {
        switch v {
        case nil, .none?: return nil
        case .string(let s)?: return s
        default: throw TemplateFailure("TypeError", "\(what) arg must be None or str, not \(v!.typeName)")
        }
    }

    private static func int(_ v: Value?, default d: Int) throws -> Int {
        guard let v else { return d }
        if case .none = v { return d }
        guard case .int(let i)? = v.number, v.isIntegral else {
            throw TemplateFailure("TypeError", "'\(v.typeName)' object cannot be interpreted as an integer")
        }
        return i
    }

    // swiftlint:disable:next cyclomatic_complexity
    static func stringMethod(_ s: String, _ name: String) -> Value? {
        switch name {
        case "strip", "lstrip", "rstrip":
            return method(name) { a in
                let chars = try string(try a.bind(["chars"], function: name)[0], name)
                return .string(PythonText.strip(s, chars, leading: name != "rstrip", trailing: name != "lstrip"))
            }
        case "split", "rsplit":
            return method(name) { a in
                let b = try a.bind(["sep", "maxsplit"], function: name)
                let sep = try string(b[0], name), maxSplit = try int(b[1], default: -1)
                if name == "split" || maxSplit < 0 {
                    return .list(try PythonText.split(s, sep, maxSplit: maxSplit).map { .string($0) })
                }
                // rsplit is split on the reversed text, reversed back.
                let rev = { (t: String) in PythonText.string(t.unicodeScalars.reversed()) }
                let parts = try PythonText.split(rev(s), sep.map(rev), maxSplit: maxSplit)
                return .list(parts.reversed().map { .string(rev($0)) })
            }
        case "splitlines":
            return method(name) { a in
                let keep = (try a.bind(["keepends"], function: name)[0])?.truthy ?? false
                return .list(PythonText.splitLines(s, keepEnds: keep).map { .string($0) })
            }
        case "startswith", "endswith":
            return method(name) { a in
                let b = try a.bind(["prefix", "start", "end"], function: name)
                var text = PythonText.scalars(s)
                if b[1] != nil || b[2] != nil {
                    guard case .string(let sliced) = try Operators.slice(.string(s), b[1] ?? .none, b[2] ?? .none, .none) else {
                        return .bool(false)
                    }
                    text = PythonText.scalars(sliced)
                }
                let candidates: [Value]
                switch b[0] {
                case .tuple(let t)?: candidates = t
                case .string?: candidates = [b[0]!]
                default:
                    throw TemplateFailure("TypeError", "\(name) first arg must be str or a tuple of str, not \(b[0]?.typeName ?? "nothing")")
                }
                let t = PythonText.string(text)
                for c in candidates {
                    guard case .string(let p) = c else { throw TemplateFailure("TypeError", "tuple for \(name) must only contain str") }
                    if name == "startswith" ? PythonText.hasPrefix(t, p) : PythonText.hasSuffix(t, p) { return .bool(true) }
                }
                return .bool(false)
            }
        case "upper": return method(name) { _ in .string(s.uppercased()) }
        case "lower": return method(name) { _ in .string(s.lowercased()) }
        case "casefold": return method(name) { _ in .string(s.lowercased()) }
        case "title": return method(name) { _ in .string(PythonText.title(s)) }
        case "capitalize": return method(name) { _ in .string(PythonText.capitalize(s)) }
        case "replace":
            return method(name) { a in
                let b = try a.bind(["old", "new", "count"], function: name)
                guard case .string(let old)? = b[0], case .string(let new)? = b[1] else {
                    throw TemplateFailure("TypeError", "replace() arguments must be str")
                }
                return .string(PythonText.replace(s, old, new, count: try int(b[2], default: -1)))
            }
        case "find", "rfind", "index", "rindex", "count":
            return method(name) { a in
                let b = try a.bind(["sub", "start", "end"], function: name)
                guard case .string(let sub)? = b[0] else { throw TemplateFailure("TypeError", "must be str, not \(b[0]?.typeName ?? "nothing")") }
                let all = PythonText.scalars(s)
                var lo = try int(b[1], default: 0), hi = try int(b[2], default: all.count)
                if lo < 0 { lo = max(0, lo + all.count) }
                if hi < 0 { hi = max(0, hi + all.count) }
                hi = min(hi, all.count)
                let needle = PythonText.scalars(sub)
                var hits: [Int] = []
                if lo <= hi {
                    let window = Array(all[lo..<hi])
                    var from = 0
                    while let i = PythonText.find(window, needle, from: from) {
                        hits.append(lo + i)
                        if name != "rfind" && name != "rindex" && name != "count" { break }
                        from = i + max(1, name == "count" ? needle.count : 1)
                    }
                }
                switch name {
                case "count": return .int(hits.count)
                case "find": return .int(hits.first ?? -1)
                case "rfind": return .int(hits.last ?? -1)
                default:
                    guard let h = name == "index" ? hits.first : hits.last else { throw TemplateFailure("ValueError", "substring not found") }
                    return .int(h)
                }
            }
        case "join":
            return method(name) { a in
                let items = try Operators.iterate(try a.bind(["iterable"], function: name)[0] ?? .none)
                return .string(try items.enumerated().map { i, v in
                    guard case .string(let t) = v else {
                        throw TemplateFailure("TypeError", "sequence item \(i): expected str instance, \(v.typeName) found")
                    }
                    return t
                }.joined(separator: s))
            }
        case "format":
            return method(name) { a in .string(try BraceFormat.format(s, a)) }
        case "removeprefix", "removesuffix":
            return method(name) { a in
                guard case .string(let p)? = try a.bind(["fix"], function: name)[0] else { throw TemplateFailure("TypeError", "\(name)() argument must be str") }
                let n = p.unicodeScalars.count
                if name == "removeprefix", PythonText.hasPrefix(s, p) { return .string(PythonText.string(s.unicodeScalars.dropFirst(n))) }
                if name == "removesuffix", n > 0, PythonText.hasSuffix(s, p) { return .string(PythonText.string(s.unicodeScalars.dropLast(n))) }
                return .string(s)
            }
        case "isdigit", "isnumeric", "isdecimal":
            return method(name) { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil }) }
        case "isalpha": return method(name) { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic }) }
        case "isalnum":
            return method(name) { _ in
                .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
            }
        case "isspace": return method(name) { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(PythonText.isSpace)) }
        case "isupper", "islower":
            return method(name) { _ in
                let cased = s.unicodeScalars.filter { $0.properties.isCased }
                let ok = cased.allSatisfy { name == "isupper" ? !$0.properties.isLowercase : !$0.properties.isUppercase }
                return .bool(!cased.isEmpty && ok)
            }
        default: return nil
        }
    }

    static func loopAttribute(_ state: LoopState, _ name: String) -> Value? {
        let i = state.index0, n = state.items.count
        switch name {
        case "index": return .int(i + 1)
        case "index0": return .int(i)
        case "revindex": return .int(n - i)
        case "revindex0": return .int(n - i - 1)
        case "first": return .bool(i == 0)
        case "last": return .bool(i == n - 1)
        case "length": return .int(n)
        case "depth": return .int(state.depth0 + 1)
        case "depth0": return .int(state.depth0)
        case "previtem": return i > 0 ? state.items[i - 1] : .undefined(Undefined(message: "there is no previous item"))
        case "nextitem": return i + 1 < n ? state.items[i + 1] : .undefined(Undefined(message: "there is no next item"))
        case "cycle":
            return method(name) { a in
                guard !a.positional.isEmpty else { throw TemplateFailure("TypeError", "no items for cycling given") }
                return a.positional[i % a.positional.count]
            }
        case "changed":
            return method(name) { a in
                if let last = state.lastChanged, last.count == a.positional.count,
                    zip(last, a.positional).allSatisfy({ Value.pythonEquals($0, $1) })
                {
                    return .bool(false)
                }
                state.lastChanged = a.positional
                return .bool(true)
            }
        default: return nil
        }
    }
}
