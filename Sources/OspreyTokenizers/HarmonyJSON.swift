// HarmonyJSON: the JSON value type the harmony code reads conversations and tool schemas into.
//
// Why not Foundation's JSONSerialization/JSONDecoder: harmony renders tool parameters in the
// order their properties appear in the schema (openai-harmony builds serde_json with
// `preserve_order`), and Foundation's dictionaries forget that order. So this file owns a small
// order-keeping JSON value, a strict RFC 8259 parser (depth-limited, no NaN/Infinity, no lone
// surrogates) and a compact writer that prints exactly as serde_json's `Display` does, which is
// how harmony writes `// default: ...` comments: integers stay integers, floats print in the
// shortest round-trip form with ryu's layout (`1.0`, `0.001`, `1e-7`, `1.5e30`).
// Limits: numbers are Int64/UInt64 or Double (like serde_json without arbitrary_precision).

import Foundation

/// A JSON value that keeps the order of object members, as openai-harmony's serde_json does.
public enum HarmonyJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Number)
    case string(String)
    case array([HarmonyJSON])
    case object(Object)

    /// A JSON number, kept as serde_json keeps it: an integer when the literal is one and fits 64 bits.
    public enum Number: Sendable, Equatable {
        case int(Int64)
        case uint(UInt64)
        case double(Double)
    }

    /// A JSON object whose members keep their first-seen order; a repeated key keeps its first
    /// position and takes the last value (Python's `json.loads` and serde_json's IndexMap agree).
    public struct Object: Sendable, Equatable {
        public private(set) var keys: [String] = []
        private var storage: [String: HarmonyJSON] = [:]

        public init() {}

        public init(_ members: [(String, HarmonyJSON)]) {
            for (key, value) in members { self[key] = value }
        }

        public subscript(key: String) -> HarmonyJSON? {
            get { storage[key] }
            set {
                if let newValue {
                    if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
                } else if storage.removeValue(forKey: key) != nil {
                    keys.removeAll { $0 == key }
                }
            }
        }

        public var members: [(key: String, value: HarmonyJSON)] {
            keys.map { ($0, storage[$0]!) }
        }

        public var isEmpty: Bool { keys.isEmpty }

        /// Objects are equal when they hold the same members, in any order.
        public static func == (a: Object, b: Object) -> Bool { a.storage == b.storage }
    }

    /// Parses one JSON document from UTF-8 bytes.
    public static func parse(_ data: some Collection<UInt8>) throws(HarmonyError) -> HarmonyJSON {
        var parser = JSONParser(bytes: Array(data))
        return try parser.parseDocument()
    }

    /// Parses one JSON document from a string.
    public static func parse(_ text: String) throws(HarmonyError) -> HarmonyJSON {
        try parse(Array(text.utf8))
    }

    public subscript(key: String) -> HarmonyJSON? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var arrayValue: [HarmonyJSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: Object? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// Compact JSON text, byte for byte as serde_json's `Display` writes it.
    public var compactText: String {
        var out = ""
        write(into: &out)
        return out
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n.text
        case .string(let s): HarmonyJSON.writeString(s, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case .object(let object):
            out += "{"
            for (i, member) in object.members.enumerated() {
                if i > 0 { out += "," }
                HarmonyJSON.writeString(member.key, into: &out)
                out += ":"
                member.value.write(into: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

extension HarmonyJSON.Number {
    // The number as serde_json prints it.
    var text: String {
        switch self {
        case .int(let i): return String(i)
        case .uint(let u): return String(u)
        case .double(let d): return HarmonyJSON.Number.ryuText(d)
        }
    }

    // Shortest round-trip digits laid out as the ryu crate's `format64` does.
    static func ryuText(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description is also shortest round-trip; take its digits and exponent.
        var desc = value.magnitude.description
        var exp10 = 0
        if let e = desc.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exp10 = Int(desc[desc.index(after: e)...]) ?? 0
            desc = String(desc[..<e])
        }
        var digits = ""
        var pointSeen = false
        for ch in desc {
            if ch == "." { pointSeen = true; continue }
            digits.append(ch)
            if pointSeen { exp10 -= 1 }
        }
        while digits.count > 1, digits.first == "0" { digits.removeFirst() }
        while digits.count > 1, digits.last == "0" { digits.removeLast(); exp10 += 1 }
        // value = digits * 10^exp10; kk is the position of the decimal point.
        let length = digits.count
        let kk = length + exp10
        var out = value.sign == .minus ? "-" : ""
        if exp10 >= 0 && kk <= 16 {
            out += digits + String(repeating: "0", count: exp10) + ".0"
        } else if kk > 0 && kk <= 16 {
            out += String(digits.prefix(kk)) + "." + String(digits.dropFirst(kk))
        } else if kk > -5 && kk <= 0 {
            out += "0." + String(repeating: "0", count: -kk) + digits
        } else if length == 1 {
            out += digits + "e" + String(kk - 1)
        } else {
            out += String(digits.prefix(1)) + "." + String(digits.dropFirst(1)) + "e" + String(kk - 1)
        }
        return out
    }
}

// MARK: - Parser

private struct JSONParser {
    let bytes: [UInt8]
    var pos = 0
    static let maxDepth = 512

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseDocument() throws(HarmonyError) -> HarmonyJSON {
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        if pos != bytes.count { throw fail("unexpected data after the JSON value") }
        return value
    }

    func fail(_ reason: String) -> HarmonyError {
        .invalidJSON("\(reason) at byte \(pos)")
    }

    mutating func skipWhitespace() {
        while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
    }

    mutating func parseValue(depth: Int) throws(HarmonyError) -> HarmonyJSON {
        guard depth < JSONParser.maxDepth else { throw fail("nesting deeper than \(JSONParser.maxDepth)") }
        guard pos < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[pos] {
        case UInt8(ascii: "{"):
            pos += 1
            var object = HarmonyJSON.Object()
            skipWhitespace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(object) }
            while true {
                skipWhitespace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                skipWhitespace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                pos += 1
                skipWhitespace()
                object[key] = try parseValue(depth: depth + 1)
                skipWhitespace()
                guard pos < bytes.count else { throw fail("unterminated object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(object) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            pos += 1
            var items: [HarmonyJSON] = []
            skipWhitespace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            while true {
                skipWhitespace()
                items.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                guard pos < bytes.count else { throw fail("unterminated array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw fail("unexpected character")
        }
    }

    mutating func literal(_ word: String) throws(HarmonyError) {
        let w = Array(word.utf8)
        guard pos + w.count <= bytes.count, Array(bytes[pos..<pos + w.count]) == w else {
            throw fail("invalid literal")
        }
        pos += w.count
    }

    mutating func parseNumber() throws(HarmonyError) -> HarmonyJSON.Number {
        let start = pos
        var isInteger = true
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        func isDigit(_ i: Int) -> Bool { i < bytes.count && bytes[i] >= 0x30 && bytes[i] <= 0x39 }
        guard isDigit(pos) else { throw fail("invalid number") }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
        } else {
            while isDigit(pos) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            isInteger = false
            pos += 1
            guard isDigit(pos) else { throw fail("invalid number") }
            while isDigit(pos) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            isInteger = false
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard isDigit(pos) else { throw fail("invalid number") }
            while isDigit(pos) { pos += 1 }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        if isInteger {
            // serde_json: integers that fit stay integers; `-0` and overflow become floats.
            if text.hasPrefix("-") {
                if text != "-0", let i = Int64(text) { return .int(i) }
            } else if let u = UInt64(text) {
                return .uint(u)
            }
        }
        guard let d = Double(text), d.isFinite else { throw fail("number out of range") }
        return .double(d)
    }

    mutating func parseString() throws(HarmonyError) -> String {
        pos += 1  // opening quote
        var runStart = pos
        var out = ""
        func flushRun(_ end: Int) { out += String(decoding: bytes[runStart..<end], as: UTF8.self) }
        while true {
            guard pos < bytes.count else { throw fail("unterminated string") }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                flushRun(pos)
                pos += 1
                return out
            }
            if b < 0x20 { throw fail("control character in string") }
            if b == UInt8(ascii: "\\") {
                flushRun(pos)
                pos += 1
                guard pos < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out += "\""
                case UInt8(ascii: "\\"): out += "\\"
                case UInt8(ascii: "/"): out += "/"
                case UInt8(ascii: "b"): out += "\u{08}"
                case UInt8(ascii: "f"): out += "\u{0C}"
                case UInt8(ascii: "n"): out += "\n"
                case UInt8(ascii: "r"): out += "\r"
                case UInt8(ascii: "t"): out += "\t"
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if code >= 0xD800 && code < 0xDC00 {
                        guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("lone surrogate in string")
                        }
                        pos += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("lone surrogate in string") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if code >= 0xDC00 && code < 0xE000 {
                        throw fail("lone surrogate in string")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw fail("invalid escape") }
                    out.unicodeScalars.append(scalar)
                default:
                    throw fail("invalid escape")
                }
                runStart = pos
                continue
            }
            if b >= 0x80 {
                // Validate multi-byte UTF-8 so invalid input is an error, not U+FFFD.
                guard case .valid(let len) = HarmonyUTF8.sequence(in: bytes, at: pos) else {
                    throw fail("invalid UTF-8 in string")
                }
                pos += len
                continue
            }
            pos += 1
        }
    }

    mutating func hex4() throws(HarmonyError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v * 16 + d
            pos += 1
        }
        return v
    }
}

// MARK: - Codable (order is only as good as the Decoder's allKeys)

extension HarmonyJSON: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        if let keyed = try? decoder.container(keyedBy: Key.self) {
            var object = Object()
            for key in keyed.allKeys { object[key.stringValue] = try keyed.decode(HarmonyJSON.self, forKey: key) }
            self = .object(object)
            return
        }
        if var list = try? decoder.unkeyedContainer() {
            var items: [HarmonyJSON] = []
            while !list.isAtEnd { items.append(try list.decode(HarmonyJSON.self)) }
            self = .array(items)
            return
        }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .number(.int(i)) }
        else if let u = try? c.decode(UInt64.self) { self = .number(.uint(u)) }
        else if let d = try? c.decode(Double.self) { self = .number(.double(d)) }
        else { self = .string(try c.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .object(let object):
            var c = encoder.container(keyedBy: Key.self)
            for m in object.members { try c.encode(m.value, forKey: Key(stringValue: m.key)) }
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for item in items { try c.encode(item) }
        default:
            var c = encoder.singleValueContainer()
            switch self {
            case .null: try c.encodeNil()
            case .bool(let b): try c.encode(b)
            case .number(.int(let i)): try c.encode(i)
            case .number(.uint(let u)): try c.encode(u)
            case .number(.double(let d)): try c.encode(d)
            case .string(let s): try c.encode(s)
            default: break
            }
        }
    }
}
