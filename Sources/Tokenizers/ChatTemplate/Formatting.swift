import Foundation

/// Python's `str % args` (used by the `format` filter and the `%` operator), for the conversions
/// templates use: `%s %r %d %i %f %F %e %x %X %o %c %%`, with `(name)`, flags, width and precision.
enum PrintfFormat {
    static func format(_ template: String, _ args: Value) throws -> String {
        var positional: [Value]
        var mapping: ValueDict?
        switch args {
        case .tuple(let t): positional = t
        case .dict(let d): positional = [args]; mapping = d
        default: positional = [args]
        }
        var out = ""
        var chars = PythonText.scalars(template)[...]
        var used = 0
        func nextArg() throws -> Value {
            guard used < positional.count else { throw TemplateFailure("TypeError", "not enough arguments for format string") }
            defer { used += 1 }
            return positional[used]
        }
        while let c = chars.popFirst() {
            guard c == "%" else { out.unicodeScalars.append(c); continue }
            var key: String?
            if chars.first == "(" {
                chars.removeFirst()
                var name = ""
                while let k = chars.popFirst(), k != ")" { name.unicodeScalars.append(k) }
                key = name
            }
            var flags = ""
            while let f = chars.first, "-+ #0".unicodeScalars.contains(f) { flags.unicodeScalars.append(f); chars.removeFirst() }
            var width = ""
            while let d = chars.first, d.properties.numericType == .decimal { width.unicodeScalars.append(d); chars.removeFirst() }
            var precision: Int?
            if chars.first == "." {
                chars.removeFirst()
                var p = ""
                while let d = chars.first, d.properties.numericType == .decimal { p.unicodeScalars.append(d); chars.removeFirst() }
                precision = Int(p) ?? Int.max
                try TemplateLimit.check(precision!, "a % format's precision")
            }
            try TemplateLimit.check(Int(width) ?? (width.isEmpty ? 0 : Int.max), "a % format's width")
            guard let conversion = chars.popFirst() else { throw TemplateFailure("ValueError", "incomplete format") }
            if conversion == "%" { out += "%"; continue }
            let value: Value
            if let key {
                guard let mapping, let v = mapping[string: key] else { throw TemplateFailure("KeyError", PythonText.stringRepr(key)) }
                value = v
            } else {
                value = try nextArg()
            }
            var text: String
            switch conversion {
            case "s": text = PythonText.str(value); if let precision { text = String(text.unicodeScalars.prefix(precision)) }
            case "r", "a": text = PythonText.repr(value)
            case "d", "i", "x", "X", "o":
                guard let n = value.number else { throw TemplateFailure("TypeError", "%\(conversion) format: a real number is required, not \(value.typeName)") }
                let i: Int
                switch n {
                case .int(let v): i = v
                case .double(let d): i = Int(d.rounded(.towardZero))
                }
                let radix = conversion == "x" || conversion == "X" ? 16 : conversion == "o" ? 8 : 10
                text = String(i.magnitude, radix: radix, uppercase: conversion == "X")
                if let precision, text.count < precision { text = String(repeating: "0", count: precision - text.count) + text }
                text = (i < 0 ? "-" : flags.contains("+") ? "+" : flags.contains(" ") ? " " : "") + text
            case "f", "F", "e", "E", "g", "G":
                guard let n = value.number else { throw TemplateFailure("TypeError", "must be real number, not \(value.typeName)") }
                text = String(format: "%\(flags.contains("+") ? "+" : "").\(precision ?? 6)\(conversion)", n.asDouble)
            case "c":
                if case .string(let s) = value, s.unicodeScalars.count == 1 { text = s }
                else if case .int(let v)? = value.number, let u = Unicode.Scalar(UInt32(clamping: v)) { text = String(u) }
                else { throw TemplateFailure("TypeError", "%c requires int or char") }
            default:
                throw TemplateFailure("ValueError", "unsupported format character '\(conversion)'")
            }
            if let w = Int(width), text.unicodeScalars.count < w {
                let pad = w - text.unicodeScalars.count
                if flags.contains("-") { text += String(repeating: " ", count: pad) }
                else if flags.contains("0"), "dixXofFeEgG".unicodeScalars.contains(conversion) {
                    let sign = text.first.map { "+- ".contains($0) } == true ? String(text.removeFirst()) : ""
                    text = sign + String(repeating: "0", count: pad) + text
                } else { text = String(repeating: " ", count: pad) + text }
            }
            out += text
        }
        if mapping == nil, used < positional.count {
            throw TemplateFailure("TypeError", "not all arguments converted during string formatting")
        }
        return out
    }
}

/// Python's `str.format` for plain fields: `{}`, `{0}`, `{name}`, `{name.attr}`, `{{`/`}}`, and `!r`/`!s`.
/// Format specifications after `:` are not supported and throw rather than print something else.
enum BraceFormat {
    static func format(_ template: String, _ args: EvaluatedArguments) throws -> String {
        var out = ""
        var chars = PythonText.scalars(template)[...]
        var auto = 0
        while let c = chars.popFirst() {
            if c == "}" {
                guard chars.popFirst() == "}" else { throw TemplateFailure("ValueError", "Single '}' encountered in format string") }
                out += "}"
                continue
            }
            guard c == "{" else { out.unicodeScalars.append(c); continue }
            if chars.first == "{" { chars.removeFirst(); out += "{"; continue }
            var field = ""
            while let k = chars.popFirst(), k != "}" { field.unicodeScalars.append(k) }
            var conversion: Character?
            if let bang = field.firstIndex(of: "!") {
                conversion = field[field.index(after: bang)...].first
                field = String(field[..<bang])
            }
            if field.contains(":") { throw TemplateFailure("ValueError", "format specifications are not supported: {\(field)}") }
            let path = field.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            var value: Value
            let head = path[0]
            if head.isEmpty {
                guard auto < args.positional.count else { throw TemplateFailure("IndexError", "Replacement index \(auto) out of range for positional args tuple") }
                value = args.positional[auto]
                auto += 1
            } else if let i = Int(head) {
                guard i < args.positional.count else { throw TemplateFailure("IndexError", "Replacement index \(i) out of range for positional args tuple") }
                value = args.positional[i]
            } else {
                guard let v = args.keywords.first(where: { $0.0 == head })?.1 else { throw TemplateFailure("KeyError", PythonText.stringRepr(head)) }
                value = v
            }
            for attribute in path.dropFirst() { value = try Operators.attribute(value, attribute) }
            out += conversion == "r" ? PythonText.repr(value) : PythonText.str(value)
        }
        return out
    }
}
