// Methods.swift — the Python methods templates call on values: str (strip/split/startswith/
// replace/format/...), dict (items/keys/values/get) and list (index/count). Strings are handled as
// code points (UTF-8 bytes for search), as CPython does. Methods that would mutate a value are
// refused, as jinja2's ImmutableSandboxedEnvironment refuses them.

import Foundation

enum Methods {
    static let stringMethods: Set<String> = [
        "capitalize", "casefold", "center", "count", "endswith", "find", "format", "index", "isalnum", "isalpha",
        "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust", "lower",
        "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill",
    ]
    static let dictMethods: Set<String> = ["items", "keys", "values", "get", "copy", "clear", "pop", "popitem", "setdefault", "update"]
    static let listMethods: Set<String> = ["index", "count", "copy", "append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"]
    static let mutating: Set<String> = ["clear", "pop", "popitem", "setdefault", "update", "append", "extend", "insert", "remove", "reverse", "sort"]
}

extension Interpreter {
    func callMethod(_ receiver: Value, _ name: String, _ args: Arguments) throws(JinjaError) -> Value {
        if Methods.mutating.contains(name), !(name == "count") {
            if case .string = receiver {} else {
                throw .runtime("access to attribute '\(name)' of '\(receiver.typeName)' object is unsafe.", exception: "SecurityError")
            }
        }
        func arg(_ i: Int, _ n: String) -> Value? { args.value(i, n) }
        switch receiver {
        case .dict(let d):
            switch name {
            case "items": return .list(d.entries.map { .tuple([.string($0.0), $0.1]) })
            case "keys": return .list(d.keys.map { .string($0) })
            case "values": return .list(d.values)
            case "copy": return receiver
            case "get":
                guard let key = arg(0, "key") else { throw .type("get expected at least 1 argument, got 0") }
                if case .string(let k) = key, let v = d[k] { return v }
                return arg(1, "default") ?? .none
            default: break
            }
        case .list(let a), .tuple(let a):
            switch name {
            case "copy": return receiver
            case "count":
                let x = arg(0, "value") ?? .none
                return .int(a.filter { pyEquals($0, x) }.count)
            case "index":
                let x = arg(0, "value") ?? .none
                guard let i = a.firstIndex(where: { pyEquals($0, x) }) else { throw .runtime("\(x.repr) is not in list", exception: "ValueError") }
                return .int(i)
            default: break
            }
        case .string(let s):
            return try stringMethod(s, name, args)
        default: break
        }
        throw .runtime("'\(receiver.typeName)' object has no attribute '\(name)'", exception: "AttributeError")
    }

    func stringArgument(_ v: Value?, _ what: String) throws(JinjaError) -> String? {
        guard let v, !v.isNone else { return nil }
        guard case .string(let s) = v else { throw .type("\(what) arg must be None or str") }
        return s
    }

    func stringMethod(_ s: String, _ name: String, _ args: Arguments) throws(JinjaError) -> Value {
        func arg(_ i: Int, _ n: String) -> Value? { args.value(i, n) }
        let scalars = Array(s.unicodeScalars)
        func string(_ x: some Sequence<Unicode.Scalar>) -> Value { .string(String(String.UnicodeScalarView(x))) }
        switch name {
        case "upper": return .string(s.uppercased())
        case "lower", "casefold": return .string(s.lowercased())
        case "capitalize": return .string(pyCapitalize(s))
        case "swapcase":
            return .string(scalars.map { c in c.properties.isLowercase ? String(c).uppercased() : String(c).lowercased() }.joined())
        case "title":
            var out = ""
            var previousCased = false
            for c in scalars {
                out += previousCased ? String(c).lowercased() : c.properties.titlecaseMapping
                previousCased = c.properties.isCased
            }
            return .string(out)
        case "strip", "lstrip", "rstrip":
            let chars = try stringArgument(arg(0, "chars"), name).map { Set($0.unicodeScalars) }
            let strip: (Unicode.Scalar) -> Bool = { chars?.contains($0) ?? isPythonSpace($0) }
            var lo = 0, hi = scalars.count
            if name != "rstrip" { while lo < hi, strip(scalars[lo]) { lo += 1 } }
            if name != "lstrip" { while hi > lo, strip(scalars[hi - 1]) { hi -= 1 } }
            return string(scalars[lo..<hi])
        case "startswith", "endswith":
            let target = arg(0, name == "startswith" ? "prefix" : "suffix") ?? .none
            var candidates: [Value]
            if case .tuple(let t) = target { candidates = t } else { candidates = [target] }
            let start = arg(1, "start")?.integer ?? 0
            let end = arg(2, "end")?.integer
            guard case .string(let window) = try slice(.string(s), start: .int(start), stop: end.map(Value.int), step: nil) else { return .bool(false) }
            for c in candidates {
                guard case .string(let p) = c else {
                    throw .type("\(name) first arg must be str or a tuple of str, not \(c.typeName)")
                }
                if name == "startswith" ? window.utf8.starts(with: p.utf8) : window.utf8.reversed().starts(with: p.utf8.reversed()) {
                    return .bool(true)
                }
            }
            return .bool(false)
        case "removeprefix", "removesuffix":
            guard case .string(let p) = arg(0, name == "removeprefix" ? "prefix" : "suffix") ?? .none else { throw .type("\(name) arg must be str") }
            let bytes = Array(s.utf8), pb = Array(p.utf8)
            if name == "removeprefix", bytes.starts(with: pb) { return .string(String(decoding: bytes[pb.count...], as: UTF8.self)) }
            if name == "removesuffix", !pb.isEmpty, bytes.reversed().starts(with: pb.reversed()) { return .string(String(decoding: bytes[..<(bytes.count - pb.count)], as: UTF8.self)) }
            return .string(s)
        case "split", "rsplit":
            let sep = try stringArgument(arg(0, "sep"), "sep")
            let maxsplit = arg(1, "maxsplit")?.integer ?? -1
            return .list(try pySplit(s, sep: sep, maxsplit: maxsplit, fromRight: name == "rsplit").map(Value.string))
        case "splitlines":
            let keepends = arg(0, "keepends")?.truthy ?? false
            var lines: [Value] = []
            var current: [Unicode.Scalar] = []
            var i = 0
            while i < scalars.count {
                let c = scalars[i]
                if [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(c.value) {
                    var ending = [c]
                    if c == "\r", i + 1 < scalars.count, scalars[i + 1] == "\n" { ending.append("\n"); i += 1 }
                    lines.append(string(keepends ? current + ending : current))
                    current = []
                } else {
                    current.append(c)
                }
                i += 1
            }
            if !current.isEmpty { lines.append(string(current)) }
            return .list(lines)
        case "replace":
            guard case .string(let old) = arg(0, "old") ?? .none, case .string(let new) = arg(1, "new") ?? .none else {
                throw .type("replace() arguments must be str")
            }
            let count = arg(2, "count")?.integer ?? -1
            return .string(pyReplace(s, old, new, count: count))
        case "find", "rfind", "index", "rindex", "count":
            guard case .string(let sub) = arg(0, "sub") ?? .none else { throw .type("must be str, not \(arg(0, "sub")?.typeName ?? "NoneType")") }
            let hay = Array(s.utf8), needle = Array(sub.utf8)
            var positions: [Int] = []
            var from = 0
            while let p = utf8Find(hay, needle, from: from) {
                positions.append(p)
                if name == "find" || name == "index" { break }
                from = p + max(needle.count, 1)
                if needle.isEmpty && p >= hay.count { break }
            }
            if name == "count" { return .int(positions.count) }
            guard let byte = name.hasPrefix("r") ? positions.last : positions.first else {
                if name.hasSuffix("index") { throw .runtime("substring not found", exception: "ValueError") }
                return .int(-1)
            }
            return .int(hay[..<byte].filter { $0 & 0xC0 != 0x80 }.count)
        case "join":
            var parts: [String] = []
            for (i, item) in try iterate(arg(0, "iterable") ?? .list([])).enumerated() {
                guard case .string(let p) = item else { throw .type("sequence item \(i): expected str instance, \(item.typeName) found") }
                parts.append(p)
            }
            return .string(parts.joined(separator: s))
        case "center", "ljust", "rjust":
            let width = arg(0, "width")?.integer ?? 0
            let fill = arg(1, "fillchar")?.str ?? " "
            guard fill.unicodeScalars.count == 1 else { throw .type("The fill character must be exactly one character long") }
            let pad = max(width - scalars.count, 0)
            let left = name == "ljust" ? 0 : name == "rjust" ? pad : pad / 2 + (pad & width & 1)
            return .string(String(repeating: fill, count: left) + s + String(repeating: fill, count: pad - left))
        case "zfill":
            let width = arg(0, "width")?.integer ?? 0
            let pad = max(width - scalars.count, 0)
            if let first = scalars.first, first == "-" || first == "+" {
                return .string(String(first) + String(repeating: "0", count: pad) + string(scalars.dropFirst()).str)
            }
            return .string(String(repeating: "0", count: pad) + s)
        case "partition", "rpartition":
            guard case .string(let sep) = arg(0, "sep") ?? .none, !sep.isEmpty else { throw .runtime("empty separator", exception: "ValueError") }
            let parts = try pySplit(s, sep: sep, maxsplit: 1, fromRight: name == "rpartition")
            if parts.count == 2 { return .tuple([.string(parts[0]), .string(sep), .string(parts[1])]) }
            return name == "partition" ? .tuple([.string(s), .string(""), .string("")]) : .tuple([.string(""), .string(""), .string(s)])
        case "format":
            return .string(try pyFormat(s, args))
        case "isalnum", "isalpha", "isdigit", "isdecimal", "isnumeric", "isspace", "islower", "isupper", "istitle":
            guard !scalars.isEmpty else { return .bool(false) }
            switch name {
            case "isalpha": return .bool(scalars.allSatisfy { $0.properties.isAlphabetic })
            case "isalnum": return .bool(scalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
            case "isdigit", "isdecimal": return .bool(scalars.allSatisfy { $0.properties.numericType == .decimal || ($0.properties.numericType == .digit && name == "isdigit") })
            case "isnumeric": return .bool(scalars.allSatisfy { $0.properties.numericType != nil })
            case "isspace": return .bool(scalars.allSatisfy(isPythonSpace))
            case "islower": return .bool(s.lowercased() == s && scalars.contains { $0.properties.isCased })
            case "isupper": return .bool(s.uppercased() == s && scalars.contains { $0.properties.isCased })
            default: return .bool(try stringMethod(s, "title", Arguments()).str == s && scalars.contains { $0.properties.isCased })
            }
        default:
            throw .runtime("'str' object has no attribute '\(name)'", exception: "AttributeError")
        }
    }

    /// Python `str.split` / `str.rsplit`.
    func pySplit(_ s: String, sep: String?, maxsplit: Int, fromRight: Bool) throws(JinjaError) -> [String] {
        let limit = maxsplit < 0 ? Int.max : maxsplit
        guard let sep else {
            // Runs of whitespace separate; leading/trailing whitespace never makes empty fields.
            var scalars = Array(s.unicodeScalars)
            if fromRight { scalars.reverse() }
            var parts: [[Unicode.Scalar]] = []
            var i = 0
            while i < scalars.count {
                while i < scalars.count, isPythonSpace(scalars[i]) { i += 1 }
                if i == scalars.count { break }
                if parts.count == limit {
                    var rest = Array(scalars[i...])
                    while let last = rest.last, isPythonSpace(last) { rest.removeLast() }
                    parts.append(rest)
                    break
                }
                let start = i
                while i < scalars.count, !isPythonSpace(scalars[i]) { i += 1 }
                parts.append(Array(scalars[start..<i]))
            }
            if fromRight { parts = parts.reversed().map { $0.reversed() } }
            return parts.map { String(String.UnicodeScalarView($0)) }
        }
        guard !sep.isEmpty else { throw .runtime("empty separator", exception: "ValueError") }
        var hay = Array(s.utf8), needle = Array(sep.utf8)
        if fromRight { hay.reverse(); needle.reverse() }
        var parts: [[UInt8]] = []
        var from = 0
        while parts.count < limit, let p = utf8Find(hay, needle, from: from) {
            parts.append(Array(hay[from..<p]))
            from = p + needle.count
        }
        parts.append(Array(hay[from...]))
        if fromRight { parts = parts.reversed().map { $0.reversed() } }
        return parts.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Python `str.replace`, byte-exact.
    func pyReplace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        let limit = count < 0 ? Int.max : count
        if old.isEmpty {
            var out = ""
            var n = 0
            for c in s.unicodeScalars {
                if n < limit { out += new; n += 1 }
                out.unicodeScalars.append(c)
            }
            if n < limit { out += new }
            return out
        }
        let hay = Array(s.utf8), needle = Array(old.utf8)
        var out: [UInt8] = []
        var from = 0, n = 0
        while n < limit, let p = utf8Find(hay, needle, from: from) {
            out += hay[from..<p]
            out += Array(new.utf8)
            from = p + needle.count
            n += 1
        }
        out += hay[from...]
        return String(decoding: out, as: UTF8.self)
    }
}
