// JinjaValue.swift — the public data model that callers hand to a template (messages, tools,
// kwargs), and its JSON reader. Objects keep their keys in insertion order, as Python dicts do,
// because templates iterate over them (`tool.parameters.properties.items()`) and `tojson` prints
// them in that order. Integers and floats stay distinct (`1` vs `1.0`), as json.loads keeps them.
// The JSON reader is hand-written: Foundation's JSONSerialization loses key order on Linux.

import Foundation

/// A value passed into a chat template: the JSON data model plus Jinja's `undefined`.
public enum JinjaValue: Sendable, Equatable {
    /// A missing variable: falsy, prints as empty, `is defined` is false.
    case undefined
    /// Python's `None` (JSON `null`).
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    /// A dictionary whose keys keep their insertion order.
    case object(JinjaObject)

    /// Parses one JSON text (objects keep key order; `1` is an int, `1.0` a double).
    public init(json: String) throws(JinjaError) {
        var parser = JSONReader(bytes: Array(json.utf8))
        self = try parser.parseDocument()
    }

    /// Parses one JSON text from UTF-8 bytes.
    public init(jsonData: Data) throws(JinjaError) {
        var parser = JSONReader(bytes: [UInt8](jsonData))
        self = try parser.parseDocument()
    }

    /// The value as JSON text, with Python `json.dumps(ensure_ascii=False)` formatting.
    public var jsonString: String {
        (try? JSONWriter.dump(OspreyJinja.Value(self), options: .init())) ?? "null"
    }
}

/// An insertion-ordered string-keyed dictionary, the model of a Python `dict` from JSON.
public struct JinjaObject: Sendable, Equatable {
    /// The keys in insertion order.
    public private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    /// An empty object.
    public init() {}

    /// An object with the given entries in order; a repeated key keeps its first position and last value.
    public init(_ entries: [(String, JinjaValue)]) {
        for (key, value) in entries { self[key] = value }
    }

    /// The number of entries.
    public var count: Int { keys.count }

    /// The entries in insertion order.
    public var entries: [(key: String, value: JinjaValue)] { keys.map { ($0, storage[$0]!) } }

    /// Reads or writes one entry; writing a new key appends it, writing `nil` removes it.
    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// Equality as in Python: same keys with equal values, in any order.
    public static func == (lhs: JinjaObject, rhs: JinjaObject) -> Bool {
        lhs.storage == rhs.storage
    }
}

extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) { self = .object(JinjaObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}

// MARK: - JSON reader

/// A strict JSON reader over UTF-8 bytes (plus Python's NaN/Infinity), with a nesting limit.
struct JSONReader {
    let bytes: [UInt8]
    var pos = 0
    var depth = 0
    static let maxDepth = 512

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseDocument() throws(JinjaError) -> JinjaValue {
        skipSpace()
        let value = try parseValue()
        skipSpace()
        if pos != bytes.count { throw fail("extra data after the JSON value") }
        return value
    }

    func fail(_ message: String) -> JinjaError {
        .invalidJSON("\(message) at byte \(pos)")
    }

    mutating func skipSpace() {
        while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
    }

    mutating func consume(_ literal: String) -> Bool {
        let lit = Array(literal.utf8)
        guard pos + lit.count <= bytes.count, Array(bytes[pos..<pos + lit.count]) == lit else { return false }
        pos += lit.count
        return true
    }

    mutating func parseValue() throws(JinjaError) -> JinjaValue {
        guard pos < bytes.count else { throw fail("unexpected end of JSON") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        default:
            if consume("true") { return .bool(true) }
            if consume("false") { return .bool(false) }
            if consume("null") { return .null }
            if consume("NaN") { return .double(.nan) }
            if consume("Infinity") { return .double(.infinity) }
            if consume("-Infinity") { return .double(-.infinity) }
            return try parseNumber()
        }
    }

    mutating func enter() throws(JinjaError) {
        depth += 1
        if depth > Self.maxDepth { throw fail("JSON nested deeper than \(Self.maxDepth) levels") }
    }

    mutating func parseObject() throws(JinjaError) -> JinjaValue {
        try enter()
        defer { depth -= 1 }
        pos += 1
        var object = JinjaObject()
        skipSpace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(object) }
        while true {
            skipSpace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try parseString()
            skipSpace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            pos += 1
            skipSpace()
            object[key] = try parseValue()
            skipSpace()
            guard pos < bytes.count else { throw fail("unterminated object") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(object) }
            throw fail("expected ',' or '}'")
        }
    }

    mutating func parseArray() throws(JinjaError) -> JinjaValue {
        try enter()
        defer { depth -= 1 }
        pos += 1
        var items: [JinjaValue] = []
        skipSpace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try parseValue())
            skipSpace()
            guard pos < bytes.count else { throw fail("unterminated array") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func parseHex4() throws(JinjaError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("truncated \\u escape") }
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

    mutating func parseString() throws(JinjaError) -> String {
        pos += 1
        var out: [UInt8] = []
        while true {
            guard pos < bytes.count else { throw fail("unterminated string") }
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") { pos += 1; break }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); pos += 1; continue }
            pos += 1
            guard pos < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try parseHex4()
                if (0xD800..<0xDC00).contains(code), pos + 1 < bytes.count,
                   bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                    let save = pos
                    pos += 2
                    let low = try parseHex4()
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        pos = save
                    }
                }
                // A lone surrogate cannot live in a Swift String; it becomes U+FFFD.
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(scalar).utf8))
            default: throw fail("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
        return s
    }

    mutating func parseNumber() throws(JinjaError) -> JinjaValue {
        let start = pos
        var isFloat = false
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        let digitsStart = pos
        while pos < bytes.count, (0x30...0x39).contains(bytes[pos]) { pos += 1 }
        if pos == digitsStart { throw fail("unexpected character") }
        if bytes[digitsStart] == 0x30, pos - digitsStart > 1 { throw fail("leading zero in number") }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            isFloat = true
            pos += 1
            let f = pos
            while pos < bytes.count, (0x30...0x39).contains(bytes[pos]) { pos += 1 }
            if pos == f { throw fail("digits expected after '.'") }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            isFloat = true
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            let f = pos
            while pos < bytes.count, (0x30...0x39).contains(bytes[pos]) { pos += 1 }
            if pos == f { throw fail("digits expected in exponent") }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        if !isFloat, let i = Int(text) { return .int(i) }
        // Integers beyond 64 bits fall back to a double (Python would keep an exact big int).
        guard let d = Double(text) else { throw fail("invalid number") }
        return .double(d)
    }
}
