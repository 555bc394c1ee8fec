// Lexer.swift — turns template text into tokens, applying whitespace control exactly as jinja2's
// lexer does under transformers' settings: trim_blocks (drop the first newline after a block or
// comment tag), lstrip_blocks (drop spaces/tabs before a block or comment tag that starts a line,
// never before `{{`), `-` / `+` modifiers, `{% raw %}`, newline normalisation and the removal of
// one trailing newline (keep_trailing_newline=False). Works on Unicode scalars so that string
// literals and data keep Python's code-point semantics.

enum TokenKind: Equatable, Sendable {
    case data(String)
    case variableBegin, variableEnd, blockBegin, blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
    case eof
}

struct Token: Sendable {
    var kind: TokenKind
    var line: Int
}

/// Python's `str.isspace()` / regex `\s` for one scalar.
func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
    switch s.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0: return true
    case 0..<0x80: return false
    default: return s.properties.isWhitespace
    }
}

struct Lexer {
    let src: [Unicode.Scalar]
    var pos = 0
    var line = 1
    var tokens: [Token] = []
    var lineStarting = true

    static func tokenize(_ source: String) throws(JinjaError) -> [Token] {
        var lexer = Lexer(src: normalizeNewlines(source))
        try lexer.run()
        return lexer.tokens
    }

    /// `\r\n` and `\r` become `\n`; one trailing newline is removed.
    static func normalizeNewlines(_ source: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(source.unicodeScalars.count)
        var previousCR = false
        for s in source.unicodeScalars {
            if s == "\r" { out.append("\n"); previousCR = true; continue }
            if s == "\n", previousCR { previousCR = false; continue }
            previousCR = false
            out.append(s)
        }
        if out.last == "\n" { out.removeLast() }
        return out
    }

    func at(_ i: Int) -> Unicode.Scalar? { i < src.count ? src[i] : nil }

    func matches(_ text: String, at i: Int) -> Bool {
        var j = i
        for s in text.unicodeScalars {
            guard j < src.count, src[j] == s else { return false }
            j += 1
        }
        return true
    }

    func fail(_ message: String) -> JinjaError { .syntax(message: message, line: line) }

    mutating func emit(_ kind: TokenKind) { tokens.append(Token(kind: kind, line: line)) }

    mutating func advance(to end: Int) {
        for k in pos..<end where src[k] == "\n" { line += 1 }
        pos = end
    }

    // MARK: - Root state (data between tags)

    mutating func run() throws(JinjaError) {
        while pos < src.count {
            guard let start = nextTagStart(from: pos) else {
                emitData(Array(src[pos...]))
                advance(to: src.count)
                break
            }
            var text = Array(src[pos..<start])
            let opener = String(String.UnicodeScalarView(src[start..<start + 2]))
            let modifier = at(start + 2)
            let stripSign: Unicode.Scalar? = (modifier == "-" || modifier == "+") ? modifier : nil
            let rawEnd = opener == "{%" ? rawOpeningEnd(at: start) : nil
            if stripSign == "-" {
                while let last = text.last, isPythonSpace(last) { text.removeLast() }
            } else if stripSign != "+", opener != "{{" {
                let lPos = (text.lastIndex(of: "\n") ?? -1) + 1
                if lPos > 0 || lineStarting, !text[lPos...].contains(where: { $0 != " " && $0 != "\t" }) {
                    text.removeSubrange(lPos...)
                }
            }
            emitData(text)
            advance(to: start)
            if let rawEnd {
                advance(to: rawEnd)
                try lexRaw()
                continue
            }
            advance(to: start + 2 + (stripSign == nil ? 0 : 1))
            switch opener {
            case "{#": try lexComment()
            case "{{":
                emit(.variableBegin)
                try lexInsideTag(closer: "}}", trimNewline: false)
                emit(.variableEnd)
            default:
                emit(.blockBegin)
                try lexInsideTag(closer: "%}", trimNewline: true)
                emit(.blockEnd)
            }
        }
        emit(.eof)
    }

    mutating func emitData(_ text: [Unicode.Scalar]) {
        if !text.isEmpty { emit(.data(String(String.UnicodeScalarView(text)))) }
    }

    func nextTagStart(from i: Int) -> Int? {
        var k = i
        while k + 1 < src.count {
            if src[k] == "{", src[k + 1] == "{" || src[k + 1] == "%" || src[k + 1] == "#" { return k }
            k += 1
        }
        return nil
    }

    /// If `{%[-+]? raw [-]?%}` starts at `i`, the index just past it.
    func rawOpeningEnd(at i: Int) -> Int? {
        var k = i + 2
        if at(k) == "-" || at(k) == "+" { k += 1 }
        while let s = at(k), isPythonSpace(s) { k += 1 }
        guard matches("raw", at: k) else { return nil }
        k += 3
        while let s = at(k), isPythonSpace(s) { k += 1 }
        if matches("-%}", at: k) {
            k += 3
            while let s = at(k), isPythonSpace(s) { k += 1 }
            return k
        }
        return matches("%}", at: k) ? k + 2 : nil
    }

    /// Finds the end of a tag closer (`+%}`, `-%}` plus whitespace, or `%}` plus one newline) at `k`.
    func closerEnd(_ closer: String, at k: Int, trimNewline: Bool) -> Int? {
        if trimNewline, at(k) == "+", matches(closer, at: k + 1) { return k + 1 + closer.unicodeScalars.count }
        if at(k) == "-", matches(closer, at: k + 1) {
            var e = k + 1 + closer.unicodeScalars.count
            while let s = at(e), isPythonSpace(s) { e += 1 }
            return e
        }
        if matches(closer, at: k) {
            var e = k + closer.unicodeScalars.count
            if trimNewline, at(e) == "\n" { e += 1 }
            return e
        }
        return nil
    }

    mutating func finishTag(at end: Int) {
        lineStarting = end > 0 && src[end - 1] == "\n"
        advance(to: end)
    }

    mutating func lexComment() throws(JinjaError) {
        var k = pos
        while k < src.count {
            if let end = closerEnd("#}", at: k, trimNewline: true) {
                finishTag(at: end)
                return
            }
            k += 1
        }
        throw fail("Missing end of comment tag")
    }

    mutating func lexRaw() throws(JinjaError) {
        var k = pos
        while k + 1 < src.count {
            if src[k] == "{", src[k + 1] == "%" {
                var j = k + 2
                let sign = at(j)
                if sign == "-" || sign == "+" { j += 1 }
                while let s = at(j), isPythonSpace(s) { j += 1 }
                if matches("endraw", at: j) {
                    j += 6
                    while let s = at(j), isPythonSpace(s) { j += 1 }
                    if let end = closerEnd("%}", at: j, trimNewline: true) {
                        var text = Array(src[pos..<k])
                        if sign == "-" {
                            while let last = text.last, isPythonSpace(last) { text.removeLast() }
                        } else if sign != "+" {
                            let lPos = (text.lastIndex(of: "\n") ?? -1) + 1
                            if lPos > 0, !text[lPos...].contains(where: { $0 != " " && $0 != "\t" }) {
                                text.removeSubrange(lPos...)
                            }
                        }
                        emitData(text)
                        finishTag(at: end)
                        return
                    }
                }
            }
            k += 1
        }
        throw fail("Missing end of raw directive")
    }

    // MARK: - Inside `{{ }}` and `{% %}`

    static let operators = ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]",
                            "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"]

    mutating func lexInsideTag(closer: String, trimNewline: Bool) throws(JinjaError) {
        var brackets: [Unicode.Scalar] = []
        while true {
            while let s = at(pos), isPythonSpace(s) { advance(to: pos + 1) }
            guard let c = at(pos) else {
                throw fail("unexpected end of template, expected '\(closer)'")
            }
            if brackets.isEmpty, let end = closerEnd(closer, at: pos, trimNewline: trimNewline) {
                finishTag(at: end)
                return
            }
            if c.properties.numericType == .decimal, c.isASCII {
                try lexNumber()
            } else if c == "_" || c.properties.isAlphabetic {
                var e = pos
                while let s = at(e), s == "_" || s.properties.isAlphabetic || (s.isASCII && s.properties.numericType == .decimal) { e += 1 }
                emit(.name(String(String.UnicodeScalarView(src[pos..<e]))))
                advance(to: e)
            } else if c == "'" || c == "\"" {
                try lexString(quote: c)
            } else if let op = Self.operators.first(where: { matches($0, at: pos) }) {
                switch op {
                case "(", "[", "{": brackets.append(op.unicodeScalars.first!)
                case ")", "]", "}":
                    let want: Unicode.Scalar = op == ")" ? "(" : op == "]" ? "[" : "{"
                    guard brackets.last == want else { throw fail("unexpected '\(op)'") }
                    brackets.removeLast()
                default: break
                }
                emit(.op(op))
                advance(to: pos + op.unicodeScalars.count)
            } else {
                throw fail("unexpected char '\(Character(c))'")
            }
        }
    }

    mutating func lexNumber() throws(JinjaError) {
        func digits(_ k: inout Int) -> Bool {
            let start = k
            while let s = at(k), s.isASCII, s.properties.numericType == .decimal || (s == "_" && k > start) { k += 1 }
            return k > start
        }
        let start = pos
        var k = pos
        _ = digits(&k)
        var isFloat = false
        if at(k) == ".", let d = at(k + 1), d.isASCII, d.properties.numericType == .decimal {
            k += 1
            _ = digits(&k)
            isFloat = true
        }
        if at(k) == "e" || at(k) == "E" {
            var e = k + 1
            if at(e) == "+" || at(e) == "-" { e += 1 }
            if digits(&e) { k = e; isFloat = true }
        }
        let text = String(String.UnicodeScalarView(src[start..<k])).replacingOccurrences(of: "_", with: "")
        if isFloat {
            guard let d = Double(text) else { throw fail("invalid number '\(text)'") }
            emit(.float(d))
        } else {
            guard let i = Int(text) else { throw fail("integer literal '\(text)' is too large") }
            emit(.integer(i))
        }
        advance(to: k)
    }

    /// A string literal, unescaped with Python's `unicode-escape` rules.
    mutating func lexString(quote: Unicode.Scalar) throws(JinjaError) {
        var out = String.UnicodeScalarView()
        var k = pos + 1
        func hex(_ count: Int, _ k: inout Int) -> UInt32? {
            var v: UInt32 = 0
            for _ in 0..<count {
                guard let s = at(k), let d = hexDigit(s) else { return nil }
                v = v * 16 + UInt32(d)
                k += 1
            }
            return v
        }
        while true {
            guard let c = at(k) else { throw fail("unterminated string literal") }
            if c == quote { break }
            if c != "\\" { out.append(c); k += 1; continue }
            guard let e = at(k + 1) else { throw fail("unterminated string literal") }
            k += 2
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "\n": break
            case "0"..."7":
                var v = UInt32(e.value - 0x30)
                var n = 1
                while n < 3, let d = at(k), ("0"..."7").contains(d) { v = v * 8 + (d.value - 0x30); k += 1; n += 1 }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            case "x", "u", "U":
                let count = e == "x" ? 2 : e == "u" ? 4 : 8
                guard let v = hex(count, &k), let scalar = Unicode.Scalar(v) else {
                    throw fail("invalid \\\(e) escape in string literal")
                }
                out.append(scalar)
            default:
                out.append("\\")
                out.append(e)
            }
        }
        emit(.string(String(out)))
        advance(to: k + 1)
    }
}

private func hexDigit(_ s: Unicode.Scalar) -> Int? {
    switch s {
    case "0"..."9": return Int(s.value - 48)
    case "a"..."f": return Int(s.value - 97 + 10)
    case "A"..."F": return Int(s.value - 65 + 10)
    default: return nil
    }
}
