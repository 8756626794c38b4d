/// Splits a template into tokens exactly as jinja2's lexer does under transformers' settings
/// (`trim_blocks=True`, `lstrip_blocks=True`, `keep_trailing_newline=False`), including the `-`/`+`
/// whitespace-control markers and the `{% raw %}` block.
struct Token {
    enum Kind: Equatable {
        case data(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case op(String)
        case eof
    }
    var kind: Kind
    var line: Int
}

struct Lexer {
    private let src: [Unicode.Scalar]
    private var pos = 0
    private var line = 1
    private var tokens: [Token] = []
    /// jinja2's `line_starting`: the previous match ended with a newline, so text before a block tag
    /// may be the indentation that `lstrip_blocks` removes.
    private var lineStarting = true

    static func tokenize(_ source: String) throws -> [Token] {
        var lexer = Lexer(source: source)
        try lexer.run()
        return lexer.tokens
    }

    private init(source: String) {
        // jinja2 turns \r\n and \r into \n, then drops one trailing newline.
        var s: [Unicode.Scalar] = []
        var it = source.unicodeScalars.makeIterator()
        var pending = it.next()
        while let c = pending {
            pending = it.next()
            if c == "\r" {
                s.append("\n")
                if pending == "\n" { pending = it.next() }
            } else {
                s.append(c)
            }
        }
        if s.last == "\n" { s.removeLast() }
        src = s
    }

    private func at(_ i: Int, _ text: String) -> Bool {
        var k = i
        for c in text.unicodeScalars {
            guard k < src.count, src[k] == c else { return false }
            k += 1
        }
        return true
    }

    private mutating func advance(to newPos: Int) {
        for k in pos..<newPos where src[k] == "\n" { line += 1 }
        lineStarting = newPos > pos && src[newPos - 1] == "\n"
        pos = newPos
    }

    private func skipSpaces(from i: Int) -> Int {
        var k = i
        while k < src.count, PythonText.isSpace(src[k]) { k += 1 }
        return k
    }

    private mutating func run() throws {
        while pos < src.count {
            // Find the next tag opener: `{{`, `{%` or `{#`.
            var k = pos
            var opener: Unicode.Scalar?
            while k + 1 < src.count {
                if src[k] == "{", src[k + 1] == "{" || src[k + 1] == "%" || src[k + 1] == "#" {
                    opener = src[k + 1]
                    break
                }
                k += 1
            }
            guard let opener else {
                emitData(Array(src[pos...]), line: line)
                advance(to: src.count)
                return
            }
            var sign: Unicode.Scalar? = k + 2 < src.count ? src[k + 2] : nil
            if sign != "-" && sign != "+" { sign = nil }
            var text = Array(src[pos..<k])
            if sign == "-" {
                while let l = text.last, PythonText.isSpace(l) { text.removeLast() }
            } else if sign == nil && opener != "{" {
                // lstrip_blocks: drop the indentation before a block or comment tag alone at a line start.
                let lpos = (text.lastIndex(of: "\n") ?? -1) + 1
                if (lpos > 0 || lineStarting), lpos < text.count, text[lpos...].allSatisfy(PythonText.isSpace) {
                    text.removeSubrange(lpos...)
                }
            }
            emitData(text, line: line)
            let tagLine = line + src[pos..<k].filter { $0 == "\n" }.count
            let afterOpener = k + 2 + (sign == nil ? 0 : 1)
            advance(to: afterOpener)
            switch opener {
            case "#": try lexComment(startLine: tagLine)
            case "%":
                if try lexRawBlock() { continue }
                tokens.append(Token(kind: .blockBegin, line: tagLine))
                try lexTagBody(isBlock: true)
            default:
                tokens.append(Token(kind: .variableBegin, line: tagLine))
                try lexTagBody(isBlock: false)
            }
        }
    }

    private mutating func emitData(_ text: [Unicode.Scalar], line: Int) {
        if !text.isEmpty { tokens.append(Token(kind: .data(PythonText.string(text)), line: line)) }
    }

    /// Matches `-#}\s*`, `+#}` or `#}\n?` at the earliest position.
    private mutating func lexComment(startLine: Int) throws {
        var k = pos
        while k < src.count {
            if at(k, "+#}") { advance(to: k + 3); return }
            if at(k, "-#}") { advance(to: skipSpaces(from: k + 3)); return }
            if at(k, "#}") { advance(to: k + 2 < src.count && src[k + 2] == "\n" ? k + 3 : k + 2); return }
            k += 1
        }
        throw ChatTemplateError.syntax(line: startLine, message: "Missing end of comment tag")
    }

    /// `{% raw %}...{% endraw %}`: the body is data, unparsed. Returns false when the block is not `raw`.
    private mutating func lexRawBlock() throws -> Bool {
        var k = skipSpaces(from: pos)
        guard at(k, "raw") else { return false }
        k = skipSpaces(from: k + 3)
        if at(k, "-%}") {
            k = skipSpaces(from: k + 3)
        } else if at(k, "%}") {
            k += 2
        } else {
            return false
        }
        let startLine = line
        advance(to: k)
        var e = pos
        while e < src.count {
            if at(e, "{%") {
                let sign: Unicode.Scalar? = e + 2 < src.count && (src[e + 2] == "-" || src[e + 2] == "+") ? src[e + 2] : nil
                var j = skipSpaces(from: e + 2 + (sign == nil ? 0 : 1))
                if at(j, "endraw") {
                    j = skipSpaces(from: j + 6)
                    var end: Int?
                    if at(j, "+%}") { end = j + 3 }
                    else if at(j, "-%}") { end = skipSpaces(from: j + 3) }
                    else if at(j, "%}") { end = j + 2 < src.count && src[j + 2] == "\n" ? j + 3 : j + 2 }
                    if let end {
                        var text = Array(src[pos..<e])
                        if sign == "-" {
                            while let l = text.last, PythonText.isSpace(l) { text.removeLast() }
                        } else if sign == nil {
                            let lpos = (text.lastIndex(of: "\n") ?? -1) + 1
                            if lpos > 0 || lineStarting, lpos < text.count, text[lpos...].allSatisfy(PythonText.isSpace) {
                                text.removeSubrange(lpos...)
                            }
                        }
                        emitData(text, line: line)
                        advance(to: end)
                        return true
                    }
                }
            }
            e += 1
        }
        throw ChatTemplateError.syntax(line: startLine, message: "Missing end of raw directive")
    }

    private mutating func lexTagBody(isBlock: Bool) throws {
        var balance: [Unicode.Scalar] = []
        let startLine = line
        while true {
            if pos >= src.count {
                throw ChatTemplateError.syntax(
                    line: startLine, message: "unexpected end of template, expected '\(isBlock ? "%}" : "}}")'")
            }
            if balance.isEmpty {
                if isBlock {
                    if at(pos, "+%}") { return endTag(.blockEnd, to: pos + 3) }
                    if at(pos, "-%}") { return endTag(.blockEnd, to: skipSpaces(from: pos + 3)) }
                    if at(pos, "%}") {
                        return endTag(.blockEnd, to: pos + 2 < src.count && src[pos + 2] == "\n" ? pos + 3 : pos + 2)
                    }
                } else {
                    if at(pos, "-}}") { return endTag(.variableEnd, to: skipSpaces(from: pos + 3)) }
                    if at(pos, "}}") { return endTag(.variableEnd, to: pos + 2) }
                }
            }
            let c = src[pos]
            if PythonText.isSpace(c) { advance(to: pos + 1); continue }
            let tokenLine = line
            if let (kind, end) = try lexNumber() ?? lexName() ?? lexString() {
                tokens.append(Token(kind: kind, line: tokenLine))
                advance(to: end)
                continue
            }
            if let op = ["//", "**", "==", "!=", ">=", "<="].first(where: { at(pos, $0) }) {
                tokens.append(Token(kind: .op(op), line: tokenLine))
                advance(to: pos + 2)
                continue
            }
            if "+-/*%~[](){}><=.:|,;".unicodeScalars.contains(c) {
                switch c {
                case "{", "(", "[": balance.append(c == "{" ? "}" : c == "(" ? ")" : "]")
                case "}", ")", "]":
                    guard let expected = balance.popLast() else {
                        throw ChatTemplateError.syntax(line: tokenLine, message: "unexpected '\(c)'")
                    }
                    if expected != c {
                        throw ChatTemplateError.syntax(line: tokenLine, message: "unexpected '\(c)', expected '\(expected)'")
                    }
                default: break
                }
                tokens.append(Token(kind: .op(String(c)), line: tokenLine))
                advance(to: pos + 1)
                continue
            }
            throw ChatTemplateError.syntax(line: tokenLine, message: "unexpected char \(PythonText.stringRepr(String(c)))")
        }
    }

    private mutating func endTag(_ kind: Token.Kind, to end: Int) {
        tokens.append(Token(kind: kind, line: line))
        advance(to: end)
    }

    private func isDigit(_ i: Int) -> Bool { i < src.count && src[i].properties.numericType == .decimal && src[i].isASCII }

    /// Digits with optional `_` separators, as jinja2's integer and float patterns allow.
    private func digits(from i: Int) -> Int? {
        guard isDigit(i) else { return nil }
        var k = i + 1
        while true {
            if isDigit(k) { k += 1 } else if k < src.count, src[k] == "_", isDigit(k + 1) { k += 2 } else { return k }
        }
    }

    private func lexNumber() throws -> (Token.Kind, Int)? {
        guard let intEnd = digits(from: pos) else { return nil }
        let text = { (a: Int, b: Int) in PythonText.string(src[a..<b]).replacingOccurrences(of: "_", with: "") }
        let afterDot = pos > 0 && src[pos - 1] == "."
        if !afterDot {
            var k = intEnd
            var isFloat = false
            if k < src.count, src[k] == ".", let f = digits(from: k + 1) { k = f; isFloat = true }
            if k < src.count, src[k] == "e" || src[k] == "E" {
                var e = k + 1
                if e < src.count, src[e] == "+" || src[e] == "-" { e += 1 }
                if let end = digits(from: e) { k = end; isFloat = true }
            }
            if isFloat, let d = Double(text(pos, k)) { return (.float(d), k) }
        }
        if src[pos] == "0", pos + 1 < src.count, "bBoOxX".unicodeScalars.contains(src[pos + 1]) {
            let radix = "bB".unicodeScalars.contains(src[pos + 1]) ? 2 : "oO".unicodeScalars.contains(src[pos + 1]) ? 8 : 16
            var k = pos + 2
            while k < src.count, src[k] == "_" || Int(String(src[k]), radix: radix) != nil { k += 1 }
            guard let v = Int(text(pos + 2, k), radix: radix) else {
                throw ChatTemplateError.syntax(line: line, message: "invalid integer literal")
            }
            return (.integer(v), k)
        }
        guard let v = Int(text(pos, intEnd)) else {
            throw ChatTemplateError.syntax(line: line, message: "integer literal too large: \(text(pos, intEnd))")
        }
        return (.integer(v), intEnd)
    }

    private func lexName() -> (Token.Kind, Int)? {
        let isStart: (Unicode.Scalar) -> Bool = { $0 == "_" || $0.properties.isXIDStart }
        guard pos < src.count, isStart(src[pos]) else { return nil }
        var k = pos + 1
        while k < src.count, src[k] == "_" || src[k].properties.isXIDContinue { k += 1 }
        return (.name(PythonText.string(src[pos..<k])), k)
    }

    private func lexString() throws -> (Token.Kind, Int)? {
        guard pos < src.count, src[pos] == "'" || src[pos] == "\"" else { return nil }
        let quote = src[pos]
        var k = pos + 1
        while k < src.count, src[k] != quote {
            k += src[k] == "\\" ? 2 : 1
        }
        guard k < src.count else { throw ChatTemplateError.syntax(line: line, message: "unexpected char \(PythonText.stringRepr(String(quote)))") }
        return (.string(try StringEscapes.decode(Array(src[(pos + 1)..<k]), line: line)), k + 1)
    }
}

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
