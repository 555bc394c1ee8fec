// Builtins.swift — the names a template can reach without a context: jinja2's tests (`is defined`,
// `is none`, `is string`, `is mapping`, `is iterable`, `equalto`, ...), the globals of
// transformers' environment (`raise_exception`, `strftime_now`, `namespace`, `range`, `dict`), and
// the fixed-clock `strftime` behind `strftime_now` (glibc/C-locale output). The filter, test and
// global name tables here are what the parser checks names against.

enum Builtins {
    static let filterNames: Set<String> = [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list",
        "lower", "map", "max", "min", "pprint", "reject", "rejectattr", "replace", "reverse", "round", "safe",
        "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "truncate", "unique", "upper",
        "wordcount",
    ]
    static let testNames: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false", "filter",
        "float", "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable", "le", "<=", "lower", "lt",
        "lessthan", "<", "mapping", "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "test",
        "true", "undefined", "upper",
    ]
    static let globalNames: Set<String> = ["raise_exception", "strftime_now", "namespace", "range", "dict"]
    /// The sandbox's limit on `range()`.
    static let maxRange = 100_000
}

extension Interpreter {
    func applyTest(_ name: String, _ value: Value, _ args: Arguments) throws(JinjaError) -> Bool {
        let other = args.value(0, name == "in" ? "seq" : "other") ?? .undefined("missing test argument")
        switch name {
        case "boolean": if case .bool = value { return true }; return false
        case "callable": if case .callable = value { return true }; return false
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNone
        case "true": if case .bool(true) = value { return true }; return false
        case "false": if case .bool(false) = value { return true }; return false
        case "string": if case .string = value { return true }; return false
        case "mapping": if case .dict = value { return true }; return false
        case "number": return value.number != nil
        case "integer": if case .int = value { return true }; return false
        case "float": if case .double = value { return true }; return false
        case "iterable", "sequence":
            switch value {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "escaped": return false
        case "filter": return Builtins.filterNames.contains(value.str)
        case "test": return Builtins.testNames.contains(value.str)
        case "lower":
            let s = value.str
            return s.lowercased() == s && s.uppercased() != s
        case "upper":
            let s = value.str
            return s.uppercased() == s && s.lowercased() != s
        case "even", "odd":
            guard let i = value.integer else { throw .type("not all arguments converted during string formatting") }
            return (i % 2 == 0) == (name == "even")
        case "divisibleby":
            guard case .int(0) = other else {
                let r = try binary(.mod, value, other)
                return pyEquals(r, .int(0))
            }
            throw .runtime("integer division or modulo by zero", exception: "ZeroDivisionError")
        case "eq", "equalto", "==": return pyEquals(value, other)
        case "ne", "!=": return !pyEquals(value, other)
        case "lt", "lessthan", "<": return try compare(.lt, value, other)
        case "le", "<=": return try compare(.le, value, other)
        case "gt", "greaterthan", ">": return try compare(.gt, value, other)
        case "ge", ">=": return try compare(.ge, value, other)
        case "in": return try contains(other, value)
        case "sameas":
            switch (value, other) {
            case (.none, .none), (.undefined, .undefined): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.int(let a), .int(let b)): return a == b && (-5...256).contains(a)
            case (.namespace(let a), .namespace(let b)): return a === b
            default: return false
            }
        default: throw .runtime("No test named '\(name)'.")
        }
    }

    func callGlobal(_ name: String, _ args: Arguments) throws(JinjaError) -> Value {
        switch name {
        case "raise_exception":
            throw .raised(args.value(0, "message")?.str ?? "")
        case "strftime_now":
            guard let format = args.value(0, "format") else { throw .type("strftime_now() missing 1 required positional argument: 'format'") }
            return .string(strftime(format.str, clock))
        case "namespace":
            let ns = Namespace()
            for p in args.positional {
                guard case .dict(let d) = p else { throw .type("namespace() positional argument must be a mapping") }
                for (k, v) in d.entries { ns.attributes[k] = v }
            }
            for (k, v) in args.keyword { ns.attributes[k] = v }
            return .namespace(ns)
        case "dict":
            var d = PyDict()
            for p in args.positional {
                guard case .dict(let m) = p else { throw .type("dict() positional argument must be a mapping") }
                for (k, v) in m.entries { d[k] = v }
            }
            for (k, v) in args.keyword { d[k] = v }
            return .dict(d)
        case "range":
            var bounds: [Int] = []
            for p in args.positional {
                guard let i = p.integer else { throw .type("'\(p.typeName)' object cannot be interpreted as an integer") }
                bounds.append(i)
            }
            let (start, stop, step): (Int, Int, Int)
            switch bounds.count {
            case 1: (start, stop, step) = (0, bounds[0], 1)
            case 2: (start, stop, step) = (bounds[0], bounds[1], 1)
            case 3: (start, stop, step) = (bounds[0], bounds[1], bounds[2])
            default: throw .type("range expected 1 to 3 arguments, got \(bounds.count)")
            }
            guard step != 0 else { throw .runtime("range() arg 3 must not be zero", exception: "ValueError") }
            let count = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0)
                                 : (start > stop ? (start - stop - step - 1) / -step : 0)
            guard count <= Builtins.maxRange else {
                throw .runtime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(Builtins.maxRange)).", exception: "OverflowError")
            }
            return .list((0..<count).map { .int(start + $0 * step) })
        default:
            throw .runtime("unknown global '\(name)'")
        }
    }
}

// MARK: - strftime

private let weekdayNames = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
private let monthNames = ["January", "February", "March", "April", "May", "June", "July", "August",
                          "September", "October", "November", "December"]

/// Days since 1970-01-01 of a proleptic Gregorian date.
private func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
    let y = m <= 2 ? y0 - 1 : y0
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146097 + doe - 719468
}

/// C-locale `strftime` of a naive local time (so `%Z` and `%z` are empty, as in Python).
func strftime(_ format: String, _ t: LocalTime) -> String {
    let days = daysFromCivil(t.year, t.month, t.day)
    let weekday = ((days % 7) + 7 + 3) % 7  // 0 = Monday
    let dayOfYear = days - daysFromCivil(t.year, 1, 1) + 1
    let sundayWeek = (dayOfYear + 6 - (weekday + 1) % 7) / 7
    let mondayWeek = (dayOfYear + 6 - weekday) / 7
    // ISO 8601 week-based year and week.
    var isoYear = t.year
    var isoWeek = (dayOfYear - weekday + 9) / 7
    if isoWeek < 1 {
        isoYear -= 1
        let lastDays = daysFromCivil(isoYear, 12, 31)
        let lastWeekday = ((lastDays % 7) + 7 + 3) % 7
        isoWeek = (lastDays - daysFromCivil(isoYear, 1, 1) + 1 - lastWeekday + 9) / 7
    } else if isoWeek == 53 {
        let jan1Next = ((daysFromCivil(t.year + 1, 1, 1) % 7) + 7 + 3) % 7
        if jan1Next <= 3 { isoYear += 1; isoWeek = 1 }
    }
    let hour12 = t.hour % 12 == 0 ? 12 : t.hour % 12
    var out = ""
    var chars = Array(format.unicodeScalars)[...]
    while let c = chars.popFirst() {
        guard c == "%", !chars.isEmpty else { out.unicodeScalars.append(c); continue }
        var pad: Character? = nil
        if let f = chars.first, f == "-" || f == "_" || f == "0" { pad = Character(f); chars.removeFirst() }
        guard let d = chars.popFirst() else { out += "%"; break }
        func num(_ v: Int, _ width: Int, _ defaultPad: Character = "0") -> String {
            let s = String(v)
            let p = pad ?? defaultPad
            if p == "-" || s.count >= width { return s }
            return String(repeating: p == "_" ? " " : String(p), count: width - s.count) + s
        }
        switch d {
        case "a": out += String(weekdayNames[weekday].prefix(3))
        case "A": out += weekdayNames[weekday]
        case "b", "h": out += String(monthNames[t.month - 1].prefix(3))
        case "B": out += monthNames[t.month - 1]
        case "c": out += strftime("%a %b %e %H:%M:%S %Y", t)
        case "C": out += num(t.year / 100, 2)
        case "d": out += num(t.day, 2)
        case "D": out += strftime("%m/%d/%y", t)
        case "e": out += num(t.day, 2, "_")
        case "f": out += num(t.microsecond, 6)
        case "F": out += strftime("%Y-%m-%d", t)
        case "G": out += String(isoYear)
        case "g": out += num(isoYear % 100, 2)
        case "H": out += num(t.hour, 2)
        case "I": out += num(hour12, 2)
        case "j": out += num(dayOfYear, 3)
        case "k": out += num(t.hour, 2, "_")
        case "l": out += num(hour12, 2, "_")
        case "m": out += num(t.month, 2)
        case "M": out += num(t.minute, 2)
        case "n": out += "\n"
        case "p": out += t.hour < 12 ? "AM" : "PM"
        case "P": out += t.hour < 12 ? "am" : "pm"
        case "r": out += strftime("%I:%M:%S %p", t)
        case "R": out += strftime("%H:%M", t)
        case "S": out += num(t.second, 2)
        case "t": out += "\t"
        case "T", "X": out += strftime("%H:%M:%S", t)
        case "u": out += String(weekday + 1)
        case "U": out += num(sundayWeek, 2)
        case "V": out += num(isoWeek, 2)
        case "w": out += String((weekday + 1) % 7)
        case "W": out += num(mondayWeek, 2)
        case "x": out += strftime("%m/%d/%y", t)
        case "y": out += num(t.year % 100, 2)
        case "Y": out += String(t.year)
        case "z", "Z": break
        case "%": out += "%"
        default:
            out += "%"
            if let pad { out.append(pad) }
            out.unicodeScalars.append(d)
        }
    }
    return out
}
