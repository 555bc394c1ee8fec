// Operators.swift — Python semantics of jinja2 operators on run-time values: arithmetic with
// int/float distinction, `+` concatenation with CPython's TypeError texts, `~`, comparisons, `in`,
// attribute and item access through the sandbox's getattr/getitem fallbacks (dict methods win for
// `.name`, keys win for `['name']`), Python slicing, and printf-style `%` formatting.

import Foundation

extension Interpreter {
    func binary(_ op: BinaryOp, _ l: Value, _ r: Value) throws(JinjaError) -> Value {
        if op == .concat { return .string(l.str + r.str) }
        if case .undefined(let hint) = l { throw .undefined(hint) }
        if case .undefined(let hint) = r { throw .undefined(hint) }
        func unsupported() -> JinjaError {
            .type("unsupported operand type(s) for \(op.rawValue): '\(l.typeName)' and '\(r.typeName)'")
        }
        switch (op, l, r) {
        case (.add, .string(let a), .string(let b)): return .string(a + b)
        case (.add, .list(let a), .list(let b)): return .list(a + b)
        case (.add, .tuple(let a), .tuple(let b)): return .tuple(a + b)
        case (.add, .string, _): throw .type("can only concatenate str (not \"\(r.typeName)\") to str")
        case (.add, .list, _): throw .type("can only concatenate list (not \"\(r.typeName)\") to list")
        case (.add, .tuple, _): throw .type("can only concatenate tuple (not \"\(r.typeName)\") to tuple")
        case (.mul, .string(let s), _), (.mul, _, .string(let s)):
            guard let n = (l.integer != nil ? l.integer : r.integer) else { throw .type("can't multiply sequence by non-int of type '\(l.integer == nil && r.integer == nil ? "str" : r.typeName)'") }
            return .string(try repeatCount(n, s.utf8.count) == 0 ? "" : String(repeating: s, count: n))
        case (.mul, .list(let a), _), (.mul, _, .list(let a)):
            guard let n = (l.integer != nil ? l.integer : r.integer) else { throw unsupported() }
            let k = try repeatCount(n, a.count)
            return .list(k == 0 ? [] : Array((0..<k).flatMap { _ in a }))
        case (.mod, .string(let format), _):
            return .string(try percentFormat(format, r))
        default: break
        }
        if let a = l.integer, let b = r.integer {
            switch op {
            case .add: return try checked(a.addingReportingOverflow(b))
            case .sub: return try checked(a.subtractingReportingOverflow(b))
            case .mul: return try checked(a.multipliedReportingOverflow(by: b))
            case .div:
                guard b != 0 else { throw .runtime("division by zero", exception: "ZeroDivisionError") }
                return .double(Double(a) / Double(b))
            case .floordiv, .mod:
                guard b != 0 else { throw .runtime("integer division or modulo by zero", exception: "ZeroDivisionError") }
                if a == Int.min && b == -1 { throw .runtime("integer overflow", exception: "OverflowError") }
                var q = a / b
                var m = a % b
                if m != 0 && ((m < 0) != (b < 0)) { q -= 1; m += b }
                return .int(op == .floordiv ? q : m)
            case .pow:
                if b < 0 { return .double(Foundation.pow(Double(a), Double(b))) }
                var result = 1, base = a, e = b
                while e > 0 {
                    if e & 1 == 1 { result = try checkedInt(result.multipliedReportingOverflow(by: base)) }
                    e >>= 1
                    if e > 0 { base = try checkedInt(base.multipliedReportingOverflow(by: base)) }
                }
                return .int(result)
            case .concat: break
            }
        }
        guard let a = l.number, let b = r.number else { throw unsupported() }
        switch op {
        case .add: return .double(a + b)
        case .sub: return .double(a - b)
        case .mul: return .double(a * b)
        case .div:
            guard b != 0 else { throw .runtime("float division by zero", exception: "ZeroDivisionError") }
            return .double(a / b)
        case .floordiv:
            guard b != 0 else { throw .runtime("float floor division by zero", exception: "ZeroDivisionError") }
            return .double((a / b).rounded(.down))
        case .mod:
            guard b != 0 else { throw .runtime("float modulo", exception: "ZeroDivisionError") }
            var m = fmod(a, b)
            if m != 0 && ((m < 0) != (b < 0)) { m += b }
            return .double(m)
        case .pow: return .double(Foundation.pow(a, b))
        case .concat: return .string(l.str + r.str)
        }
    }

    func checked(_ r: (partialValue: Int, overflow: Bool)) throws(JinjaError) -> Value {
        .int(try checkedInt(r))
    }

    func checkedInt(_ r: (partialValue: Int, overflow: Bool)) throws(JinjaError) -> Int {
        if r.overflow { throw .runtime("integer overflow (values beyond 64 bits are not supported)", exception: "OverflowError") }
        return r.partialValue
    }

    /// Sequence repetition count, refusing results over 64 M elements.
    func repeatCount(_ n: Int, _ size: Int) throws(JinjaError) -> Int {
        let k = max(n, 0)
        if size > 0, k > (1 << 26) / size { throw .runtime("repetition result too large", exception: "MemoryError") }
        return k
    }

    func compare(_ op: CompareOp, _ l: Value, _ r: Value) throws(JinjaError) -> Bool {
        switch op {
        case .eq: return pyEquals(l, r)
        case .ne: return !pyEquals(l, r)
        case .in: return try contains(r, l)
        case .notIn: return try !contains(r, l)
        case .lt, .le, .gt, .ge:
            if case .undefined(let hint) = l { throw .undefined(hint) }
            if case .undefined(let hint) = r { throw .undefined(hint) }
            let (a, b) = (op == .lt || op == .le) ? (l, r) : (r, l)
            guard let less = pyLess(a, b) else {
                throw .type("'\(op.rawValue)' not supported between instances of '\(l.typeName)' and '\(r.typeName)'")
            }
            return (op == .lt || op == .gt) ? less : (less || pyEquals(a, b))
        }
    }

    /// Python `item in container`.
    func contains(_ container: Value, _ item: Value) throws(JinjaError) -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let needle) = item else {
                if case .undefined(let hint) = item { throw .undefined(hint) }
                throw .type("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return utf8Find(Array(s.utf8), Array(needle.utf8), from: 0) != nil
        case .list(let a), .tuple(let a): return a.contains { pyEquals($0, item) }
        case .dict(let d):
            if case .string(let k) = item { return d[k] != nil }
            return false
        case .undefined: return false
        default: throw .type("argument of type '\(container.typeName)' is not iterable")
        }
    }

    // MARK: - Attribute and item access

    func getAttribute(_ obj: Value, _ name: String) throws(JinjaError) -> Value {
        if case .undefined(let hint) = obj { throw .undefined(hint) }
        if name.hasPrefix("_") { return .undefined("access to attribute '\(name)' of '\(obj.typeName)' object is unsafe") }
        if let method = boundMethod(obj, name) { return method }
        switch obj {
        case .dict(let d): if let v = d[name] { return v }
        case .namespace(let n): if let v = n.attributes[name] { return v }
        default: break
        }
        return .undefined("'\(objectTypeRepr(obj))' has no attribute '\(name)'")
    }

    func boundMethod(_ obj: Value, _ name: String) -> Value? {
        let names: Set<String>
        switch obj {
        case .string: names = Methods.stringMethods
        case .dict: names = Methods.dictMethods
        case .list, .tuple: names = Methods.listMethods
        default: return nil
        }
        return names.contains(name) ? .callable(.method(obj, name)) : nil
    }

    func objectTypeRepr(_ obj: Value) -> String {
        switch obj {
        case .none: return "None"
        case .namespace: return "jinja2.utils.Namespace object"
        default: return "\(obj.typeName) object"
        }
    }

    func getItem(_ obj: Value, _ key: Value) throws(JinjaError) -> Value {
        if case .undefined(let hint) = obj { throw .undefined(hint) }
        switch (obj, key) {
        case (.dict(let d), .string(let k)):
            if let v = d[k] { return v }
        case (.namespace(let n), .string(let k)):
            if let v = n.attributes[k] { return v }
        case (.list(let a), _), (.tuple(let a), _):
            if let i = key.integer {
                let j = i < 0 ? i + a.count : i
                if j >= 0 && j < a.count { return a[j] }
            }
        case (.string(let s), _):
            if let i = key.integer {
                let scalars = Array(s.unicodeScalars)
                let j = i < 0 ? i + scalars.count : i
                if j >= 0 && j < scalars.count { return .string(String(scalars[j])) }
            }
        default: break
        }
        if case .string(let k) = key {
            if !k.hasPrefix("_"), let method = boundMethod(obj, k) { return method }
            return .undefined("'\(objectTypeRepr(obj))' has no attribute '\(k)'")
        }
        return .undefined("'\(objectTypeRepr(obj))' has no element \(key.repr)")
    }

    func slice(_ obj: Value, start: Value?, stop: Value?, step: Value?) throws(JinjaError) -> Value {
        if case .undefined(let hint) = obj { throw .undefined(hint) }
        func index(_ v: Value?) throws(JinjaError) -> Int? {
            guard let v, !v.isNone else { return nil }
            guard let i = v.integer else { throw .type("slice indices must be integers or None or have an __index__ method") }
            return i
        }
        let (a, b, c) = (try index(start), try index(stop), try index(step) ?? 1)
        guard c != 0 else { throw .runtime("slice step cannot be zero", exception: "ValueError") }
        func pick(_ n: Int) -> [Int] {
            func adjust(_ v: Int?, _ fallback: Int) -> Int {
                guard var v else { return fallback }
                if v < 0 { v += n; if v < 0 { v = c < 0 ? -1 : 0 } } else if v >= n { v = c < 0 ? n - 1 : n }
                return v
            }
            var i = adjust(a, c < 0 ? n - 1 : 0)
            let end = adjust(b, c < 0 ? -1 : n)
            var out: [Int] = []
            while c > 0 ? i < end : i > end { out.append(i); i += c }
            return out
        }
        switch obj {
        case .list(let items): return .list(pick(items.count).map { items[$0] })
        case .tuple(let items): return .tuple(pick(items.count).map { items[$0] })
        case .string(let s):
            let scalars = Array(s.unicodeScalars)
            var out = String.UnicodeScalarView()
            for i in pick(scalars.count) { out.append(scalars[i]) }
            return .string(String(out))
        default: return .undefined("'\(objectTypeRepr(obj))' has no element slice")
        }
    }

    // MARK: - printf-style formatting

    /// Python `format % values` for the common conversions (`s r d i f e g x o c %`), with flags and widths.
    func percentFormat(_ format: String, _ values: Value) throws(JinjaError) -> String {
        var args: [Value]
        if case .tuple(let t) = values { args = t } else { args = [values] }
        var mapping: PyDict?
        if case .dict(let d) = values { mapping = d }
        var out = ""
        var chars = Array(format.unicodeScalars)[...]
        var argIndex = 0
        while let c = chars.popFirst() {
            guard c == "%" else { out.unicodeScalars.append(c); continue }
            var value: Value?
            if chars.first == "(" {
                guard let close = chars.firstIndex(of: ")") else { throw .runtime("incomplete format key") }
                let key = String(String.UnicodeScalarView(chars[chars.index(after: chars.startIndex)..<close]))
                chars = chars[chars.index(after: close)...]
                guard let v = mapping?[key] else { throw .runtime("format requires a mapping with key '\(key)'") }
                value = v
            }
            var spec = ""
            while let f = chars.first, "-+ #0123456789.".unicodeScalars.contains(f) { spec.unicodeScalars.append(f); chars.removeFirst() }
            guard let conv = chars.popFirst() else { throw .runtime("incomplete format") }
            if conv == "%" { out += "%"; continue }
            if value == nil {
                guard argIndex < args.count else { throw .type("not enough arguments for format string") }
                value = args[argIndex]
                argIndex += 1
            }
            out += try formatOne(value!, spec: spec, conversion: Character(conv))
        }
        if mapping == nil, argIndex < args.count { throw .type("not all arguments converted during string formatting") }
        return out
    }

    func formatOne(_ v: Value, spec: String, conversion: Character) throws(JinjaError) -> String {
        let leftAlign = spec.contains("-")
        let zeroPad = spec.first(where: { $0 != "-" && $0 != "+" && $0 != " " && $0 != "#" }) == "0"
        let sign = spec.contains("+") ? "+" : spec.contains(" ") ? " " : ""
        let numbers = spec.drop { "-+ #0".contains($0) }
        let parts = numbers.split(separator: ".", omittingEmptySubsequences: false)
        let width = Int(parts.first ?? "") ?? 0
        let precision = parts.count > 1 ? Int(parts[1]) ?? 0 : nil
        var body: String
        switch conversion {
        case "s": body = v.str; if let precision { body = String(body.unicodeScalars.prefix(precision)) }
        case "r", "a": body = v.repr
        case "d", "i", "u":
            guard let n = v.number else { throw .type("%\(conversion) format: a real number is required, not \(v.typeName)") }
            let i = v.integer ?? Int(n.rounded(.towardZero))
            body = (i >= 0 ? sign : "") + String(i)
        case "f", "F", "e", "E", "g", "G":
            guard let n = v.number else { throw .type("must be real number, not \(v.typeName)") }
            body = (n >= 0 ? sign : "") + String(format: "%.\(precision ?? 6)\(conversion)", n)
        case "x", "X", "o":
            guard let i = v.integer else { throw .type("%\(conversion) format: an integer is required, not \(v.typeName)") }
            body = (i < 0 ? "-" : sign) + String(abs(i), radix: conversion == "o" ? 8 : 16, uppercase: conversion == "X")
        case "c":
            if case .string(let s) = v { body = s } else if let i = v.integer, let u = Unicode.Scalar(UInt32(clamping: i)) { body = String(u) } else { throw .type("%c requires int or char") }
        default: throw .runtime("unsupported format character '\(conversion)'")
        }
        let length = body.unicodeScalars.count
        if length < width {
            let pad = width - length
            if leftAlign { body += String(repeating: " ", count: pad) } else if zeroPad && conversion != "s" && conversion != "r" {
                let signChars = body.first == "-" || body.first == "+" || body.first == " " ? String(body.removeFirst()) : ""
                body = signChars + String(repeating: "0", count: pad) + body
            } else { body = String(repeating: " ", count: pad) + body }
        }
        return body
    }
}

/// Byte offset of `needle` in `hay` at or after `from` (code-point exact for valid UTF-8).
func utf8Find(_ hay: [UInt8], _ needle: [UInt8], from: Int) -> Int? {
    if needle.isEmpty { return from <= hay.count ? from : nil }
    guard hay.count >= needle.count, from <= hay.count - needle.count else { return nil }
    let first = needle[0]
    var i = from
    let last = hay.count - needle.count
    while i <= last {
        if hay[i] == first {
            var j = 1
            while j < needle.count && hay[i + j] == needle[j] { j += 1 }
            if j == needle.count { return i }
        }
        i += 1
    }
    return nil
}
