// Format.swift — Python's `str.format` (replacement fields `{}`, `{0}`, `{name.attr}`, `{x[key]}`,
// `!r`/`!s` conversions) and the format-spec mini-language (fill, align, sign, zero padding, width,
// grouping, precision, and the s/d/b/o/x/X/c/e/f/g/% types) for strings, ints and floats.

import Foundation

extension Interpreter {
    func pyFormat(_ format: String, _ args: Arguments) throws(JinjaError) -> String {
        var out = ""
        var chars = Array(format.unicodeScalars)[...]
        var autoIndex = 0
        while let c = chars.popFirst() {
            if c == "}" {
                guard chars.first == "}" else { throw .runtime("Single '}' encountered in format string") }
                chars.removeFirst()
                out += "}"
                continue
            }
            guard c == "{" else { out.unicodeScalars.append(c); continue }
            if chars.first == "{" { chars.removeFirst(); out += "{"; continue }
            var field = String.UnicodeScalarView()
            var nesting = 0
            while true {
                guard let f = chars.popFirst() else { throw .runtime("expected '}' before end of string") }
                if f == "{" { nesting += 1 }
                if f == "}" { if nesting == 0 { break }; nesting -= 1 }
                field.append(f)
            }
            out += try formatField(String(field), args, &autoIndex)
        }
        return out
    }

    private func formatField(_ field: String, _ args: Arguments, _ autoIndex: inout Int) throws(JinjaError) -> String {
        var name = field, conversion: Character?, spec = ""
        if let colon = name.firstIndex(of: ":") {
            spec = String(name[name.index(after: colon)...])
            name = String(name[..<colon])
        }
        if let bang = name.firstIndex(of: "!") {
            conversion = name[name.index(after: bang)...].first
            name = String(name[..<bang])
        }
        // Split "a.b[c]" into the head and its accessors.
        let head = String(name.prefix { $0 != "." && $0 != "[" })
        var rest = Substring(name.dropFirst(head.count))
        var value: Value
        if head.isEmpty {
            guard autoIndex < args.positional.count else { throw .runtime("Replacement index \(autoIndex) out of range for positional args tuple") }
            value = args.positional[autoIndex]
            autoIndex += 1
        } else if let i = Int(head) {
            guard i < args.positional.count else { throw .runtime("Replacement index \(i) out of range for positional args tuple") }
            value = args.positional[i]
        } else {
            guard let v = args.keyword.first(where: { $0.0 == head })?.1 else { throw .runtime("KeyError: '\(head)'") }
            value = v
        }
        while let first = rest.first {
            rest = rest.dropFirst()
            if first == "." {
                let attr = rest.prefix { $0 != "." && $0 != "[" }
                rest = rest.dropFirst(attr.count)
                value = try getAttribute(value, String(attr))
            } else {
                let key = rest.prefix { $0 != "]" }
                rest = rest.dropFirst(key.count + 1)
                value = try getItem(value, Int(key).map(Value.int) ?? .string(String(key)))
            }
        }
        if conversion == "r" || conversion == "a" { value = .string(value.repr) } else if conversion == "s" { value = .string(value.str) }
        if spec.contains("{") { spec = try pyFormat(spec, args) }
        return try formatSpec(value, spec)
    }

    /// `format(value, spec)`.
    func formatSpec(_ value: Value, _ spec: String) throws(JinjaError) -> String {
        if spec.isEmpty { return value.str }
        var s = Array(spec)[...]
        var fill: Character = " ", align: Character?
        if s.count >= 2, "<>^=".contains(s[s.startIndex + 1]) { fill = s.removeFirst(); align = s.removeFirst() } else if let f = s.first, "<>^=".contains(f) { align = s.removeFirst() }
        var sign: Character = "-"
        if let f = s.first, "+- ".contains(f) { sign = s.removeFirst() }
        var alternate = false
        if s.first == "#" { alternate = true; s.removeFirst() }
        if s.first == "0" { if align == nil { fill = "0"; align = "=" }; s.removeFirst() }
        var width = 0
        while let d = s.first, let v = d.wholeNumberValue, d.isASCII { width = width * 10 + v; s.removeFirst() }
        var grouping: Character?
        if let g = s.first, g == "," || g == "_" { grouping = g; s.removeFirst() }
        var precision: Int?
        if s.first == "." {
            s.removeFirst()
            var p = 0
            while let d = s.first, let v = d.wholeNumberValue, d.isASCII { p = p * 10 + v; s.removeFirst() }
            precision = p
        }
        let type = s.popFirst()
        guard s.isEmpty else { throw .runtime("Invalid format specifier '\(spec)' for object of type '\(value.typeName)'") }
        var body: String
        var negative = false
        switch value {
        case .string(let str):
            guard type == nil || type == "s" else { throw .runtime("Unknown format code '\(type!)' for object of type 'str'") }
            body = precision.map { String(str.unicodeScalars.prefix($0).map(Character.init)) } ?? str
            align = align ?? "<"
        case .int, .bool, .double:
            let isInt = value.integer != nil && (type == nil || "dbxXoc".contains(type!))
            if isInt {
                let i = value.integer!
                negative = i < 0
                let m = i.magnitude
                switch type {
                case "b": body = (alternate ? "0b" : "") + String(m, radix: 2)
                case "o": body = (alternate ? "0o" : "") + String(m, radix: 8)
                case "x": body = (alternate ? "0x" : "") + String(m, radix: 16)
                case "X": body = (alternate ? "0X" : "") + String(m, radix: 16, uppercase: true)
                case "c": body = Unicode.Scalar(UInt32(clamping: i)).map { String($0) } ?? ""; negative = false
                default: body = String(m)
                }
                if case .bool(let b) = value, type == nil, precision == nil { body = b ? "True" : "False" }
            } else {
                guard let n = value.number else { throw .runtime("Invalid format specifier") }
                negative = n < 0 || (n == 0 && n.sign == .minus)
                let m = abs(n)
                switch type {
                case "f", "F": body = String(format: "%.\(precision ?? 6)f", m)
                case "e", "E": body = String(format: "%.\(precision ?? 6)\(type!)", m)
                case "g", "G": body = String(format: "%.\(precision ?? 6)\(type!)", m)
                case "%": body = String(format: "%.\(precision ?? 6)f", m * 100) + "%"
                case nil: body = precision.map { String(format: "%.\($0 == 0 ? 1 : $0)g", m) } ?? pythonFloatRepr(m)
                default: throw .runtime("Unknown format code '\(type!)' for object of type 'float'")
                }
            }
            if let grouping {
                let digits = body.prefix { $0.isNumber }
                var grouped = ""
                for (i, ch) in digits.enumerated() {
                    if i > 0 && (digits.count - i) % 3 == 0 { grouped.append(grouping) }
                    grouped.append(ch)
                }
                body = grouped + body.dropFirst(digits.count)
            }
            let signText = negative ? "-" : sign == "+" ? "+" : sign == " " ? " " : ""
            if align == "=" {
                let pad = max(width - body.count - signText.count, 0)
                return signText + String(repeating: fill, count: pad) + body
            }
            body = signText + body
            align = align ?? ">"
        default:
            throw .type("unsupported format string passed to \(value.typeName).__format__")
        }
        let pad = max(width - body.unicodeScalars.count, 0)
        switch align {
        case ">": return String(repeating: fill, count: pad) + body
        case "^": return String(repeating: fill, count: pad / 2) + body + String(repeating: fill, count: pad - pad / 2)
        default: return body + String(repeating: fill, count: pad)
        }
    }
}
