/// jinja2 decodes string literals with Python's `unicode-escape` codec: the usual backslash escapes,
/// `\xhh`, `\uXXXX`, `\UXXXXXXXX` and octal; an unknown escape such as `\d` stays as written.
enum StringEscapes {
    static func decode(_ body: [Unicode.Scalar], line: Int) throws -> String {
        var out = String.UnicodeScalarView()
        var i = 0
        func fail(_ what: String) -> ChatTemplateError {
            .syntax(line: line, message: "invalid escape in string literal: \(what)")
        }
        while i < body.count {
            let c = body[i]
            guard c == "\\", i + 1 < body.count else {
                out.append(c)
                i += 1
                continue
            }
            let e = body[i + 1]
            i += 2
            switch e {
            case "\n": break
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "x", "u", "U":
                let width = e == "x" ? 2 : e == "u" ? 4 : 8
                guard i + width <= body.count, let v = UInt32(PythonText.string(body[i..<(i + width)]), radix: 16),
                    let scalar = Unicode.Scalar(v)
                else { throw fail("\\\(e)") }
                out.append(scalar)
                i += width
            case "0"..."7":
                var v = e.value - 48
                var n = 1
                while n < 3, i < body.count, ("0"..."7").contains(body[i]) {
                    v = v * 8 + body[i].value - 48
                    i += 1
                    n += 1
                }
                guard let scalar = Unicode.Scalar(v) else { throw fail("octal") }
                out.append(scalar)
            case "N": throw fail("\\N{...} is not supported")
            default:
                out.append("\\")
                out.append(e)
            }
        }
        return String(out)
    }
}
