// Value.swift — the interpreter's run-time value: the JSON data model plus what only exists while
// rendering (undefined with its hint, tuples, namespaces, macros, bound methods), and the Python
// semantics every other file leans on: truthiness, `str()` and `repr()` formatting (True/None,
// '...' quoting, float repr), equality and ordering, and transformers' `tojson` (json.dumps).
// Strings compare by code point (UTF-8 bytes), never by Swift's canonical equivalence.

import Foundation

/// An insertion-ordered dictionary with string keys (Python dict from JSON or a literal).
struct PyDict {
    private(set) var keys: [String] = []
    private var storage: [String: Value] = [:]

    subscript(key: String) -> Value? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    var count: Int { keys.count }
    var entries: [(String, Value)] { keys.map { ($0, storage[$0]!) } }
    var values: [Value] { keys.map { storage[$0]! } }
}

/// A `namespace()` object: the one mutable container templates may write to (`set ns.x = ...`).
final class Namespace {
    var attributes = PyDict()
}

/// A callable value: a macro, a global function, a bound method or `loop.cycle`.
indirect enum Callable {
    case macro(MacroValue)
    case global(String)
    case method(Value, String)
    case loopCycle(Int)
}

struct MacroValue {
    let definition: MacroDefinition
    /// The scopes visible where the macro was defined; nil for a top-level macro (sees the live root).
    let closure: [[String: Value]]?
}

enum Value {
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(PyDict)
    case namespace(Namespace)
    case callable(Callable)

    init(_ v: JinjaValue) {
        switch v {
        case .undefined: self = .undefined("value is undefined")
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map(Value.init))
        case .object(let o):
            var d = PyDict()
            for (k, v) in o.entries { d[k] = Value(v) }
            self = .dict(d)
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true } else { return false } }
    var isNone: Bool { if case .none = self { return true } else { return false } }

    /// Python truthiness.
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return d.count > 0
        case .namespace, .callable: return true
        }
    }

    /// Python's type name, for error messages.
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
        case .callable(let c):
            if case .macro = c { return "Macro" }
            return "builtin_function_or_method"
        }
    }

    /// Python `str(value)`, which is what `{{ value }}` prints.
    var str: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr
        }
    }

    /// Containers nested deeper than this print as `...` instead of recursing further.
    static let maxPrintDepth = 500

    /// Python `repr(value)`.
    var repr: String { repr(depth: 0) }

    func repr(depth: Int) -> String {
        if depth > Value.maxPrintDepth { return "..." }
        switch self {
        case .undefined: return "Undefined"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return pythonFloatRepr(d)
        case .string(let s): return pythonStringRepr(s)
        case .list(let a): return "[" + a.map { $0.repr(depth: depth + 1) }.joined(separator: ", ") + "]"
        case .tuple(let a):
            let items = a.map { $0.repr(depth: depth + 1) }
            return a.count == 1 ? "(\(items[0]),)" : "(" + items.joined(separator: ", ") + ")"
        case .dict(let d): return "{" + d.entries.map { pythonStringRepr($0.0) + ": " + $0.1.repr(depth: depth + 1) }.joined(separator: ", ") + "}"
        case .namespace(let n): return "<Namespace " + Value.dict(n.attributes).repr(depth: depth + 1) + ">"
        case .callable(let c):
            switch c {
            case .macro(let m): return "<Macro '\(m.definition.name)'>"
            case .global(let name): return "<function \(name)>"
            case .method(let v, let name): return "<built-in method \(name) of \(v.typeName) object>"
            case .loopCycle: return "<bound method LoopContext.cycle>"
            }
        }
    }

    /// Numeric view for arithmetic (bool counts as int, as in Python).
    var number: Double? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    var integer: Int? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return i
        default: return nil
        }
    }
}

// MARK: - Equality and ordering

func pyEquals(_ a: Value, _ b: Value, depth: Int = 0) -> Bool {
    if depth > Value.maxPrintDepth { return false }
    switch (a, b) {
    case (.undefined, .undefined), (.none, .none): return true
    case (.string(let x), .string(let y)): return x.utf8.elementsEqual(y.utf8)
    case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
        return x.count == y.count && zip(x, y).allSatisfy { pyEquals($0, $1, depth: depth + 1) }
    case (.dict(let x), .dict(let y)):
        return x.count == y.count && x.entries.allSatisfy { k, v in y[k].map { pyEquals(v, $0, depth: depth + 1) } ?? false }
    case (.namespace(let x), .namespace(let y)): return x === y
    default:
        if let i = a.integer, let j = b.integer { return i == j }
        if let x = a.number, let y = b.number { return x == y }
        return false
    }
}

/// Python ordering (`<`); nil when the types cannot be ordered.
func pyLess(_ a: Value, _ b: Value, depth: Int = 0) -> Bool? {
    if depth > Value.maxPrintDepth { return nil }
    switch (a, b) {
    case (.string(let x), .string(let y)): return x.utf8.lexicographicallyPrecedes(y.utf8)
    case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
        for (p, q) in zip(x, y) where !pyEquals(p, q) { return pyLess(p, q, depth: depth + 1) }
        return x.count < y.count
    default:
        if let i = a.integer, let j = b.integer { return i < j }
        if let x = a.number, let y = b.number { return x < y }
        return nil
    }
}

// MARK: - Python formatting

/// `repr(float)`: shortest round-trip digits, exponent form when the exponent is < -4 or >= 16.
func pythonFloatRepr(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
    // Swift's description also gives the shortest round-trip digits; re-layout them Python's way.
    var text = "\(abs(d))"
    var exponent = 0
    if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        exponent = Int(text[text.index(after: e)...]) ?? 0
        text = String(text[..<e])
    }
    var intPart = text, fracPart = ""
    if let dot = text.firstIndex(of: ".") {
        intPart = String(text[..<dot])
        fracPart = String(text[text.index(after: dot)...])
    }
    var digits = intPart + fracPart
    var decimalPoint = intPart.count + exponent
    while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); decimalPoint -= 1 }
    while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
    let sign = d < 0 ? "-" : ""
    if decimalPoint > 16 || decimalPoint < -3 {
        let mantissa = digits.count > 1 ? String(digits.first!) + "." + digits.dropFirst() : digits
        let e = decimalPoint - 1
        let eText = (e < 0 ? "-" : "+") + (abs(e) < 10 ? "0" : "") + String(abs(e))
        return sign + mantissa + "e" + eText
    }
    if decimalPoint <= 0 { return sign + "0." + String(repeating: "0", count: -decimalPoint) + digits }
    if decimalPoint >= digits.count { return sign + digits + String(repeating: "0", count: decimalPoint - digits.count) + ".0" }
    let cut = digits.index(digits.startIndex, offsetBy: decimalPoint)
    return sign + digits[..<cut] + "." + digits[cut...]
}

/// Python's `str.isprintable()` for one scalar (what `repr` keeps literal).
func isPythonPrintable(_ s: Unicode.Scalar) -> Bool {
    if s == " " { return true }
    switch s.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
        return false
    default: return true
    }
}

/// `repr(str)`: single quotes unless the text has `'` and no `"`; escapes as CPython does.
func pythonStringRepr(_ s: String) -> String {
    let quote: Unicode.Scalar = s.contains("'") && !s.contains("\"") ? "\"" : "'"
    var out = String.UnicodeScalarView()
    out.append(quote)
    for c in s.unicodeScalars {
        switch c {
        case quote, "\\": out.append("\\"); out.append(c)
        case "\n": out.append(contentsOf: "\\n".unicodeScalars)
        case "\r": out.append(contentsOf: "\\r".unicodeScalars)
        case "\t": out.append(contentsOf: "\\t".unicodeScalars)
        default:
            if isPythonPrintable(c) {
                out.append(c)
            } else {
                let hex = String(c.value, radix: 16)
                let (prefix, width) = c.value < 0x100 ? ("\\x", 2) : c.value < 0x10000 ? ("\\u", 4) : ("\\U", 8)
                out.append(contentsOf: (prefix + String(repeating: "0", count: width - hex.count) + hex).unicodeScalars)
            }
        }
    }
    out.append(quote)
    return String(out)
}

// MARK: - tojson

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
enum JSONWriter {
    struct Options {
        var ensureASCII = false
        var indent: String?
        var itemSeparator: String?
        var keySeparator = ": "
        var sortKeys = false
    }

    static func dump(_ value: Value, options: Options) throws(JinjaError) -> String {
        var out = ""
        let itemSeparator = options.itemSeparator ?? (options.indent == nil ? ", " : ",")
        try write(value, options, itemSeparator, level: 0, into: &out)
        return out
    }

    static func write(_ value: Value, _ o: Options, _ itemSeparator: String, level: Int, into out: inout String) throws(JinjaError) {
        if level > Value.maxPrintDepth { throw .recursionLimit(Value.maxPrintDepth) }
        switch value {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else { out += pythonFloatRepr(d) }
        case .string(let s): writeString(s, ascii: o.ensureASCII, into: &out)
        case .list(let items), .tuple(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (n, item) in items.enumerated() {
                if n > 0 { out += itemSeparator }
                newline(o, level + 1, into: &out)
                try write(item, o, itemSeparator, level: level + 1, into: &out)
            }
            newline(o, level, into: &out)
            out += "]"
        case .dict(let d):
            if d.count == 0 { out += "{}"; return }
            var entries = d.entries
            if o.sortKeys { entries.sort { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) } }
            out += "{"
            for (n, (k, v)) in entries.enumerated() {
                if n > 0 { out += itemSeparator }
                newline(o, level + 1, into: &out)
                writeString(k, ascii: o.ensureASCII, into: &out)
                out += o.keySeparator
                try write(v, o, itemSeparator, level: level + 1, into: &out)
            }
            newline(o, level, into: &out)
            out += "}"
        case .undefined, .namespace, .callable:
            let name = value.isUndefined ? "Undefined" : value.typeName
            throw .type("Object of type \(name) is not JSON serializable")
        }
    }

    static func newline(_ o: Options, _ level: Int, into out: inout String) {
        guard let indent = o.indent else { return }
        out += "\n" + String(repeating: indent, count: level)
    }

    static func writeString(_ s: String, ascii: Bool, into out: inout String) {
        var buf = String.UnicodeScalarView()
        buf.append("\"")
        for c in s.unicodeScalars {
            switch c {
            case "\"": buf.append(contentsOf: "\\\"".unicodeScalars)
            case "\\": buf.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": buf.append(contentsOf: "\\n".unicodeScalars)
            case "\r": buf.append(contentsOf: "\\r".unicodeScalars)
            case "\t": buf.append(contentsOf: "\\t".unicodeScalars)
            case "\u{08}": buf.append(contentsOf: "\\b".unicodeScalars)
            case "\u{0C}": buf.append(contentsOf: "\\f".unicodeScalars)
            default:
                if c.value < 0x20 || (ascii && c.value > 0x7F) {
                    for unit in String(c).utf16 {
                        let hex = String(unit, radix: 16)
                        buf.append(contentsOf: ("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).unicodeScalars)
                    }
                } else {
                    buf.append(c)
                }
            }
        }
        buf.append("\"")
        out += String(buf)
    }
}
