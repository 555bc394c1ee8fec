// Filters.swift — jinja2's built-in filters as the chat templates use them (trim, length, first,
// last, join, map, select/reject(attr), list, string, items, default, dictsort, sort, unique,
// replace, indent, round, int, float, ...) plus transformers' `tojson` override (json.dumps with
// ensure_ascii=False, indent, separators, sort_keys). Filters return lists where jinja2 returns
// generators; the printed text differs only if a template prints a generator object.

import Foundation

extension Interpreter {
    func applyFilter(_ name: String, _ value: Value, _ args: Arguments) throws(JinjaError) -> Value {
        func arg(_ i: Int, _ n: String) -> Value? { args.value(i, n) }
        func text(_ v: Value) -> String { v.str }
        switch name {
        case "abs":
            switch value {
            case .int(let i): return .int(i.magnitude > UInt(Int.max) ? i : abs(i))
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return .double(abs(d))
            default: throw .type("bad operand type for abs(): '\(value.typeName)'")
            }
        case "attr":
            return try getAttribute(value, arg(0, "name")?.str ?? "")
        case "batch":
            let size = arg(0, "linecount")?.integer ?? 1
            guard size > 0 else { throw .runtime("batch size must be positive") }
            let items = try iterate(value)
            var out: [Value] = []
            var i = 0
            while i < items.count {
                var chunk = Array(items[i..<min(i + size, items.count)])
                if let fill = arg(1, "fill_with"), !fill.isNone, chunk.count < size {
                    chunk += Array(repeating: fill, count: size - chunk.count)
                }
                out.append(.list(chunk))
                i += size
            }
            return .list(out)
        case "capitalize":
            return .string(pyCapitalize(text(value)))
        case "center":
            return try callMethod(.string(text(value)), "center", Arguments(positional: [arg(0, "width") ?? .int(80)]))
        case "count", "length":
            return .int(try length(value))
        case "d", "default":
            let fallback = arg(0, "default_value") ?? .string("")
            let boolean = arg(1, "boolean")?.truthy ?? false
            if value.isUndefined || (boolean && !value.truthy) { return fallback }
            return value
        case "dictsort":
            guard case .dict(let d) = value else { throw .runtime("You can only sort by either \"key\" or \"value\"") }
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let byValue = arg(1, "by")?.str == "value"
            let reverse = arg(2, "reverse")?.truthy ?? false
            let pairs = d.entries.map { Value.tuple([.string($0.0), $0.1]) }
            return .list(try sortValues(pairs, reverse: reverse, caseSensitive: caseSensitive) { v throws(JinjaError) in
                guard case .tuple(let t) = v else { return v }
                return byValue ? t[1] : t[0]
            })
        case "e", "escape", "forceescape":
            return .string(htmlEscape(text(value)))
        case "first":
            return try iterate(value).first ?? .undefined("No first item, sequence was empty.")
        case "last":
            if case .undefined(let hint) = value { throw .undefined(hint) }
            return try iterate(value).last ?? .undefined("No last item, sequence was empty.")
        case "float":
            let fallback = arg(0, "default") ?? .double(0)
            switch value {
            case .double: return value
            case .int, .bool: return .double(value.number!)
            case .string(let s):
                return Double(s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")).map(Value.double) ?? fallback
            default: return fallback
            }
        case "format":
            if !args.keyword.isEmpty {
                var d = PyDict()
                for (k, v) in args.keyword { d[k] = v }
                return .string(try percentFormat(text(value), .dict(d)))
            }
            return .string(try percentFormat(text(value), .tuple(args.positional)))
        case "indent":
            let widthValue = arg(0, "width") ?? .int(4)
            let indent = widthValue.integer.map { String(repeating: " ", count: max($0, 0)) } ?? widthValue.str
            let first = arg(1, "first")?.truthy ?? false
            let blank = arg(2, "blank")?.truthy ?? false
            var s = text(value)
            let newline = "\n"
            s += newline
            var lines = s.components(separatedBy: newline)
            let head = lines.removeFirst()
            lines.removeLast()
            let rest = lines.map { blank || !$0.unicodeScalars.allSatisfy(isPythonSpace) ? indent + $0 : $0 }
            var out = ([head] + rest).joined(separator: newline)
            if first { out = indent + out }
            return .string(out)
        case "int":
            let fallback = arg(0, "default") ?? .int(0)
            let base = arg(1, "base")?.integer ?? 10
            switch value {
            case .int: return value
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return d.isFinite && abs(d) < 9.2e18 ? .int(Int(d)) : fallback
            case .string(let s):
                let t = s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
                if let i = Int(t, radix: base) { return .int(i) }
                if base == 10, let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
                return fallback
            default: return fallback
            }
        case "items":
            switch value {
            case .dict(let d): return .list(d.entries.map { .tuple([.string($0.0), $0.1]) })
            case .undefined: return .list([])
            default: throw .type("Can only get item pairs from a mapping.")
            }
        case "join":
            let separator = arg(0, "d")?.str ?? ""
            var items = try iterate(value)
            if let attribute = arg(1, "attribute"), !attribute.isNone {
                items = try items.map { v throws(JinjaError) in try attributePath(v, attribute) }
            }
            return .string(items.map(\.str).joined(separator: separator))
        case "list":
            return .list(try iterate(value))
        case "lower":
            return .string(text(value).lowercased())
        case "upper":
            return .string(text(value).uppercased())
        case "map":
            let items = try iterate(value)
            if let attribute = args.keyword.first(where: { $0.0 == "attribute" })?.1 {
                let fallback = args.keyword.first { $0.0 == "default" }?.1
                return .list(try items.map { v throws(JinjaError) in
                    let r = try attributePath(v, attribute)
                    if let fallback, r.isUndefined { return fallback }
                    return r
                })
            }
            guard let filterName = args.positional.first?.str else { return .list(items) }
            guard Builtins.filterNames.contains(filterName) else { throw .runtime("No filter named '\(filterName)'.") }
            let rest = Arguments(positional: Array(args.positional.dropFirst()), keyword: args.keyword)
            return .list(try items.map { v throws(JinjaError) in try applyFilter(filterName, v, rest) })
        case "max", "min":
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let attribute = arg(1, "attribute")
            let sorted = try sortValues(try iterate(value), reverse: name == "max", caseSensitive: caseSensitive) { v throws(JinjaError) in
                if let attribute, !attribute.isNone { return try attributePath(v, attribute) }
                return v
            }
            return sorted.first ?? .undefined("No aggregated item, sequence was empty.")
        case "pprint":
            return .string(value.repr)
        case "reject", "select", "rejectattr", "selectattr":
            let byAttribute = name.hasSuffix("attr")
            let wantTrue = name.hasPrefix("select")
            var rest = args.positional
            let attribute = byAttribute ? (rest.isEmpty ? Value.undefined("missing attribute") : rest.removeFirst()) : nil
            let testName = rest.isEmpty ? nil : rest.removeFirst().str
            if let testName, !Builtins.testNames.contains(testName) { throw .runtime("No test named '\(testName)'.") }
            var out: [Value] = []
            for item in try iterate(value) {
                let subject = try attribute.map { a throws(JinjaError) in try attributePath(item, a) } ?? item
                let ok = try testName.map { t throws(JinjaError) in try applyTest(t, subject, Arguments(positional: rest, keyword: args.keyword)) } ?? subject.truthy
                if ok == wantTrue { out.append(item) }
            }
            return .list(out)
        case "replace":
            return try callMethod(.string(text(value)), "replace", Arguments(positional: [arg(0, "old") ?? .string(""), arg(1, "new") ?? .string(""), arg(2, "count") ?? .int(-1)]))
        case "reverse":
            if case .string(let s) = value { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
            return .list(try iterate(value).reversed())
        case "round":
            let precision = arg(0, "precision")?.integer ?? 0
            let method = arg(1, "method")?.str ?? "common"
            guard let n = value.number else { throw .type("type \(value.typeName) doesn't define __round__ method") }
            let scale = Foundation.pow(10.0, Double(precision))
            switch method {
            case "common":
                // Python round(): correctly rounded, ties to even; an int stays an int.
                if let i = value.integer, precision >= 0 { return .int(i) }
                if precision >= 0, precision < 300, n.isFinite { return .double(Double(String(format: "%.\(precision)f", n)) ?? n) }
                return .double((n * scale).rounded(.toNearestOrEven) / scale)
            case "ceil": return .double((n * scale).rounded(.up) / scale)
            case "floor": return .double((n * scale).rounded(.down) / scale)
            default: throw .runtime("method must be 'common', 'ceil' or 'floor'")
            }
        case "safe", "string":
            return .string(value.str)
        case "sort":
            let reverse = arg(0, "reverse")?.truthy ?? false
            let caseSensitive = arg(1, "case_sensitive")?.truthy ?? false
            let attribute = arg(2, "attribute")
            return .list(try sortValues(try iterate(value), reverse: reverse, caseSensitive: caseSensitive) { v throws(JinjaError) in
                if let attribute, !attribute.isNone { return try attributePath(v, attribute) }
                return v
            })
        case "sum":
            let attribute = arg(0, "attribute")
            var total = arg(1, "start") ?? .int(0)
            for item in try iterate(value) {
                let v = try attribute.map { a throws(JinjaError) in a.isNone ? item : try attributePath(item, a) } ?? item
                total = try binary(.add, total, v)
            }
            return total
        case "title":
            return .string(jinjaTitle(text(value)))
        case "tojson":
            return .string(try JSONWriter.dump(value, options: try jsonOptions(args)))
        case "trim":
            let chars = arg(0, "chars")
            return try callMethod(.string(text(value)), "strip", Arguments(positional: chars.map { [$0] } ?? []))
        case "truncate":
            let length = arg(0, "length")?.integer ?? 255
            let killwords = arg(1, "killwords")?.truthy ?? false
            let end = arg(2, "end")?.str ?? "..."
            let leeway = arg(3, "leeway")?.integer ?? 5
            let s = Array(text(value).unicodeScalars)
            if s.count <= length + leeway { return .string(text(value)) }
            var cut = Array(s.prefix(max(length - end.unicodeScalars.count, 0)))
            if !killwords, let space = cut.lastIndex(of: " ") { cut = Array(cut[..<space]) }
            return .string(String(String.UnicodeScalarView(cut)) + end)
        case "unique":
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let attribute = arg(1, "attribute")
            var seen: [Value] = []
            var out: [Value] = []
            for item in try iterate(value) {
                var key = item
                if let attribute, !attribute.isNone { key = try attributePath(item, attribute) }
                if !caseSensitive, case .string(let s) = key { key = .string(s.lowercased()) }
                if !seen.contains(where: { pyEquals($0, key) }) { seen.append(key); out.append(item) }
            }
            return .list(out)
        case "wordcount":
            return .int(text(value).unicodeScalars.split(whereSeparator: { !($0.properties.isAlphabetic || $0.properties.numericType != nil || $0 == "_") }).count)
        default:
            throw .runtime("No filter named '\(name)'.")
        }
    }

    /// Python `len(value)`.
    func length(_ value: Value) throws(JinjaError) -> Int {
        switch value {
        case .string(let s): return s.unicodeScalars.count
        case .list(let a), .tuple(let a): return a.count
        case .dict(let d): return d.count
        case .undefined: return 0
        default: throw .type("object of type '\(value.typeName)' has no len()")
        }
    }

    /// jinja2's attribute getter: a dotted path where integer parts index lists.
    func attributePath(_ value: Value, _ attribute: Value) throws(JinjaError) -> Value {
        if let i = attribute.integer { return try getItem(value, .int(i)) }
        var v = value
        for part in attribute.str.split(separator: ".", omittingEmptySubsequences: false) {
            v = try getItem(v, Int(part).map(Value.int) ?? .string(String(part)))
        }
        return v
    }

    /// A stable sort with Python ordering; strings compare lower-cased unless case-sensitive.
    func sortValues(_ items: [Value], reverse: Bool, caseSensitive: Bool,
                    key: (Value) throws(JinjaError) -> Value) throws(JinjaError) -> [Value] {
        var keyed: [(Value, Value)] = []
        for item in items {
            var k = try key(item)
            if !caseSensitive, case .string(let s) = k { k = .string(s.lowercased()) }
            keyed.append((k, item))
        }
        var failure: JinjaError?
        let sorted = keyed.enumerated().sorted { a, b in
            let (x, y) = reverse ? (b.element.0, a.element.0) : (a.element.0, b.element.0)
            guard let less = pyLess(x, y), let greater = pyLess(y, x) else {
                failure = .type("'<' not supported between instances of '\(x.typeName)' and '\(y.typeName)'")
                return false
            }
            if less { return true }
            if greater { return false }
            return a.offset < b.offset
        }
        if let failure { throw failure }
        return sorted.map { $0.element.1 }
    }

    func jsonOptions(_ args: Arguments) throws(JinjaError) -> JSONWriter.Options {
        var o = JSONWriter.Options()
        o.ensureASCII = args.value(0, "ensure_ascii")?.truthy ?? false
        if let indent = args.value(1, "indent"), !indent.isNone {
            if case .string(let s) = indent { o.indent = s } else if let n = indent.integer { o.indent = String(repeating: " ", count: max(n, 0)) }
        }
        if let separators = args.value(2, "separators"), !separators.isNone {
            let parts = try iterate(separators)
            guard parts.count == 2 else { throw .runtime("separators must be an (item_separator, key_separator) pair") }
            o.itemSeparator = parts[0].str
            o.keySeparator = parts[1].str
        }
        o.sortKeys = args.value(3, "sort_keys")?.truthy ?? false
        return o
    }
}

func htmlEscape(_ s: String) -> String {
    var out = ""
    for c in s.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&#34;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

/// Python `str.capitalize()`: first character upper-cased, the rest lower-cased.
func pyCapitalize(_ s: String) -> String {
    guard let first = s.unicodeScalars.first else { return s }
    return first.properties.titlecaseMapping + String(String.UnicodeScalarView(s.unicodeScalars.dropFirst())).lowercased()
}

/// jinja2's `title` filter: each word (split at `-`, whitespace, `(`, `{`, `[`, `<`) capitalised.
func jinjaTitle(_ s: String) -> String {
    var out = ""
    var word = String.UnicodeScalarView()
    func flush() { if !word.isEmpty { out += pyCapitalize(String(word)); word = String.UnicodeScalarView() } }
    for c in s.unicodeScalars {
        if c == "-" || c == "(" || c == "{" || c == "[" || c == "<" || isPythonSpace(c) {
            flush()
            out.unicodeScalars.append(c)
        } else {
            word.append(c)
        }
    }
    flush()
    return out
}
