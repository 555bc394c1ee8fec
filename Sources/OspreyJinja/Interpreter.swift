// Interpreter.swift — walks the AST and writes the output: statements (if/for/set/macro/filter
// blocks, break/continue), expression evaluation, variable scopes and macro calls. Scoping follows
// jinja2: every loop iteration and every macro call gets its own frame, so `set` inside them does
// not leak out; `namespace()` objects are the shared mutable escape hatch. Top-level macros see the
// live root frame. Macro nesting and the total nesting of statements and expressions being
// evaluated are capped (stack use per level is a few hundred bytes in release builds, tens of KB in
// debug), so runaway recursion is a typed error, never a stack overflow.
// Operators live in Operators.swift, filters/tests/globals in Builtins.swift, methods in Methods.swift.

struct Arguments {
    var positional: [Value] = []
    var keyword: [(String, Value)] = []

    /// The argument bound to Python parameter `name` at position `index`.
    func value(_ index: Int, _ name: String) -> Value? {
        if index < positional.count { return positional[index] }
        return keyword.first { $0.0 == name }?.1
    }
}

enum Flow { case normal, breakLoop, continueLoop }

struct Interpreter {
    var scopes: [[String: Value]] = [[:]]
    let globals: [String: Value]
    let clock: LocalTime
    var macroDepth = 0
    var nesting = 0
    /// jinja2 itself stops near 190 levels (Python's recursion limit).
    static let maxMacroDepth = 150
    /// Budget for statements + expressions being evaluated at once, across macro calls.
    static let maxNesting = 500

    init(globals: [String: Value], clock: LocalTime) {
        self.globals = globals
        self.clock = clock
    }

    mutating func render(_ body: [Stmt]) throws(JinjaError) -> String {
        var out = ""
        _ = try exec(body, into: &out)
        return out
    }

    // MARK: - Variables

    func lookup(_ name: String) -> Value {
        for scope in scopes.reversed() { if let v = scope[name] { return v } }
        if let v = globals[name] { return v }
        if Builtins.globalNames.contains(name) { return .callable(.global(name)) }
        return .undefined("'\(name)' is undefined")
    }

    mutating func assign(_ target: AssignTarget, _ value: Value) throws(JinjaError) {
        switch target {
        case .name(let n):
            scopes[scopes.count - 1][n] = value
        case .tuple(let targets):
            let items = try iterate(value)
            guard items.count == targets.count else {
                throw .runtime(items.count > targets.count
                    ? "too many values to unpack (expected \(targets.count))"
                    : "not enough values to unpack (expected \(targets.count), got \(items.count))")
            }
            for (t, v) in zip(targets, items) { try assign(t, v) }
        case .namespaceAttribute(let ns, let attr):
            guard case .namespace(let n) = lookup(ns) else {
                throw .runtime("cannot assign attribute on non-namespace object")
            }
            n.attributes[attr] = value
        }
    }

    /// Python `iter(value)` materialised: list items, dict keys, string characters.
    func iterate(_ value: Value) throws(JinjaError) -> [Value] {
        switch value {
        case .list(let a), .tuple(let a): return a
        case .dict(let d): return d.keys.map { .string($0) }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        default: throw .type("'\(value.typeName)' object is not iterable")
        }
    }

    // MARK: - Statements

    mutating func exec(_ body: [Stmt], into out: inout String) throws(JinjaError) -> Flow {
        for stmt in body {
            let flow = try exec(stmt, into: &out)
            if flow != .normal { return flow }
        }
        return .normal
    }

    mutating func exec(_ stmt: Stmt, into out: inout String) throws(JinjaError) -> Flow {
        nesting += 1
        defer { nesting -= 1 }
        if nesting > Self.maxNesting { throw .recursionLimit(Self.maxNesting) }
        switch stmt.kind {
        case .data(let text):
            out += text
        case .output(let e):
            out += try eval(e).str
        case .ifChain(let branches, let otherwise):
            for (condition, body) in branches where try eval(condition).truthy {
                return try exec(body, into: &out)
            }
            return try exec(otherwise, into: &out)
        case .forLoop(let target, let iterable, let condition, let body, let otherwise):
            return try execFor(target, iterable, condition, body, otherwise, into: &out)
        case .set(let target, let e):
            try assign(target, try eval(e))
        case .setBlock(let name, let filters, let body):
            try execSetBlock(name, filters, body)
        case .macro(let definition):
            let closure = scopes.count == 1 ? nil : scopes
            scopes[scopes.count - 1][definition.name] = .callable(.macro(MacroValue(definition: definition, closure: closure)))
        case .filterBlock(let filters, let body):
            try execFilterBlock(filters, body, into: &out)
        case .with(let assignments, let body):
            return try execWith(assignments, body, into: &out)
        case .scope(let body):
            scopes.append([:])
            defer { scopes.removeLast() }
            return try exec(body, into: &out)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    mutating func execSetBlock(_ name: String, _ filters: [FilterCall], _ body: [Stmt]) throws(JinjaError) {
        var captured = ""
        _ = try exec(body, into: &captured)
        scopes[scopes.count - 1][name] = try applyFilters(filters, to: .string(captured))
    }

    mutating func execFilterBlock(_ filters: [FilterCall], _ body: [Stmt], into out: inout String) throws(JinjaError) {
        var captured = ""
        scopes.append([:])
        defer { scopes.removeLast() }
        _ = try exec(body, into: &captured)
        out += try applyFilters(filters, to: .string(captured)).str
    }

    mutating func execWith(_ assignments: [(AssignTarget, Expr)], _ body: [Stmt], into out: inout String) throws(JinjaError) -> Flow {
        var values: [(AssignTarget, Value)] = []
        for (target, e) in assignments { values.append((target, try eval(e))) }
        scopes.append([:])
        defer { scopes.removeLast() }
        for (target, v) in values { try assign(target, v) }
        return try exec(body, into: &out)
    }

    mutating func execFor(_ target: AssignTarget, _ iterable: Expr, _ condition: Expr?, _ body: [Stmt],
                          _ otherwise: [Stmt], into out: inout String) throws(JinjaError) -> Flow {
        var items = try iterate(try eval(iterable))
        if let condition {
            var kept: [Value] = []
            for item in items {
                scopes.append([:])
                defer { scopes.removeLast() }
                try assign(target, item)
                if try eval(condition).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty { return try exec(otherwise, into: &out) }
        let n = items.count
        for (i, item) in items.enumerated() {
            var loop = PyDict()
            loop["index"] = .int(i + 1)
            loop["index0"] = .int(i)
            loop["revindex"] = .int(n - i)
            loop["revindex0"] = .int(n - i - 1)
            loop["first"] = .bool(i == 0)
            loop["last"] = .bool(i == n - 1)
            loop["length"] = .int(n)
            loop["depth"] = .int(1)
            loop["depth0"] = .int(0)
            loop["previtem"] = i > 0 ? items[i - 1] : .undefined("there is no previous item")
            loop["nextitem"] = i < n - 1 ? items[i + 1] : .undefined("there is no next item")
            loop["cycle"] = .callable(.loopCycle(i))
            scopes.append(["loop": .dict(loop)])
            defer { scopes.removeLast() }
            try assign(target, item)
            if try exec(body, into: &out) == .breakLoop { break }
        }
        return .normal
    }

    mutating func applyFilters(_ filters: [FilterCall], to value: Value) throws(JinjaError) -> Value {
        var v = value
        for f in filters {
            let args = try evalArguments(f.arguments)
            v = try applyFilter(f.name, v, args)
        }
        return v
    }

    // MARK: - Expressions

    /// A thin dispatcher: each case lives in its own function so the recursive path keeps small
    /// stack frames (one big switch costs ~10 KB per level in debug builds).
    mutating func eval(_ e: Expr) throws(JinjaError) -> Value {
        nesting += 1
        defer { nesting -= 1 }
        if nesting > Self.maxNesting { throw .recursionLimit(Self.maxNesting) }
        switch e {
        case .literal(let l): return literal(l)
        case .name(let n): return lookup(n)
        case .list(let items): return .list(try evalAll(items))
        case .tuple(let items): return .tuple(try evalAll(items))
        case .dict(let pairs): return try evalDict(pairs)
        case .attribute(let base, let name): return try getAttribute(try eval(base), name)
        case .item(let base, let index): return try evalItem(base, index)
        case .slice(let base, let start, let stop, let step): return try evalSlice(base, start, stop, step)
        case .call(let callee, let arguments): return try evalCall(callee, arguments)
        case .filter(let base, let name, let arguments): return try evalFilter(base, name, arguments)
        case .test(let base, let name, let arguments): return try evalTest(base, name, arguments)
        case .negate(let x): return try evalNegate(x)
        case .plus(let x): return try evalPlus(x)
        case .not(let x): return .bool(!(try eval(x).truthy))
        case .and(let a, let b): return try evalAnd(a, b)
        case .or(let a, let b): return try evalOr(a, b)
        case .binary(let op, let a, let b): return try evalBinary(op, a, b)
        case .compare(let first, let ops): return try evalCompare(first, ops)
        case .conditional(let test, let then, let otherwise): return try evalConditional(test, then, otherwise)
        }
    }

    func literal(_ l: Literal) -> Value {
        switch l {
        case .none: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        }
    }

    mutating func evalAll(_ items: [Expr]) throws(JinjaError) -> [Value] {
        var values: [Value] = []
        for item in items { values.append(try eval(item)) }
        return values
    }

    mutating func evalDict(_ pairs: [(Expr, Expr)]) throws(JinjaError) -> Value {
        var d = PyDict()
        for (k, v) in pairs {
            let key = try eval(k)
            guard case .string(let ks) = key else { throw .type("only string keys are supported in dict literals, got \(key.typeName)") }
            d[ks] = try eval(v)
        }
        return .dict(d)
    }

    mutating func evalItem(_ base: Expr, _ index: Expr) throws(JinjaError) -> Value {
        let b = try eval(base)
        return try getItem(b, try eval(index))
    }

    mutating func evalOptional(_ e: Expr?) throws(JinjaError) -> Value? {
        guard let e else { return nil }
        return try eval(e)
    }

    mutating func evalSlice(_ base: Expr, _ start: Expr?, _ stop: Expr?, _ step: Expr?) throws(JinjaError) -> Value {
        let b = try eval(base)
        return try slice(b, start: try evalOptional(start), stop: try evalOptional(stop), step: try evalOptional(step))
    }

    mutating func evalCall(_ callee: Expr, _ arguments: [Argument]) throws(JinjaError) -> Value {
        let f = try eval(callee)
        let args = try evalArguments(arguments)
        return try call(f, args)
    }

    mutating func evalFilter(_ base: Expr, _ name: String, _ arguments: [Argument]) throws(JinjaError) -> Value {
        let v = try eval(base)
        return try applyFilter(name, v, try evalArguments(arguments))
    }

    mutating func evalTest(_ base: Expr, _ name: String, _ arguments: [Argument]) throws(JinjaError) -> Value {
        let v = try eval(base)
        return .bool(try applyTest(name, v, try evalArguments(arguments)))
    }

    mutating func evalNegate(_ x: Expr) throws(JinjaError) -> Value {
        switch try eval(x) {
        case .int(let i): return .int(0 &- i)
        case .bool(let b): return .int(b ? -1 : 0)
        case .double(let d): return .double(-d)
        case .undefined(let hint): throw .undefined(hint)
        case let v: throw .type("bad operand type for unary -: '\(v.typeName)'")
        }
    }

    mutating func evalPlus(_ x: Expr) throws(JinjaError) -> Value {
        let v = try eval(x)
        if case .undefined(let hint) = v { throw .undefined(hint) }
        guard v.number != nil else { throw .type("bad operand type for unary +: '\(v.typeName)'") }
        return v
    }

    mutating func evalAnd(_ a: Expr, _ b: Expr) throws(JinjaError) -> Value {
        let l = try eval(a)
        return l.truthy ? try eval(b) : l
    }

    mutating func evalOr(_ a: Expr, _ b: Expr) throws(JinjaError) -> Value {
        let l = try eval(a)
        return l.truthy ? l : try eval(b)
    }

    mutating func evalBinary(_ op: BinaryOp, _ a: Expr, _ b: Expr) throws(JinjaError) -> Value {
        let l = try eval(a)
        return try binary(op, l, try eval(b))
    }

    mutating func evalCompare(_ first: Expr, _ ops: [(CompareOp, Expr)]) throws(JinjaError) -> Value {
        var left = try eval(first)
        for (op, e) in ops {
            let right = try eval(e)
            if !(try compare(op, left, right)) { return .bool(false) }
            left = right
        }
        return .bool(true)
    }

    mutating func evalConditional(_ test: Expr, _ then: Expr, _ otherwise: Expr?) throws(JinjaError) -> Value {
        if try eval(test).truthy { return try eval(then) }
        return try evalOptional(otherwise) ?? .undefined("the inline if-expression evaluated to false and no else section was defined")
    }

    mutating func evalArguments(_ arguments: [Argument]) throws(JinjaError) -> Arguments {
        var args = Arguments()
        for a in arguments {
            switch a {
            case .positional(let e): args.positional.append(try eval(e))
            case .keyword(let k, let e): args.keyword.append((k, try eval(e)))
            case .splat(let e): args.positional.append(contentsOf: try iterate(try eval(e)))
            case .doubleSplat(let e):
                guard case .dict(let d) = try eval(e) else { throw .type("argument after ** must be a mapping") }
                args.keyword.append(contentsOf: d.entries)
            }
        }
        return args
    }

    mutating func call(_ f: Value, _ args: Arguments) throws(JinjaError) -> Value {
        guard case .callable(let c) = f else {
            if case .undefined(let hint) = f { throw .undefined(hint) }
            throw .type("'\(f.typeName)' object is not callable")
        }
        switch c {
        case .macro(let m): return try callMacro(m, args)
        case .global(let name): return try callGlobal(name, args)
        case .method(let receiver, let name): return try callMethod(receiver, name, args)
        case .loopCycle(let i):
            guard !args.positional.isEmpty else { throw .runtime("no items for cycling given") }
            return args.positional[i % args.positional.count]
        }
    }

    mutating func callMacro(_ m: MacroValue, _ args: Arguments) throws(JinjaError) -> Value {
        let def = m.definition
        guard macroDepth < Self.maxMacroDepth else { throw .recursionLimit(Self.maxMacroDepth) }
        let saved = scopes
        macroDepth += 1
        defer { scopes = saved; macroDepth -= 1 }
        scopes = (m.closure ?? [saved[0]]) + [[def.name: .callable(.macro(m))]]
        var keyword = args.keyword
        for (i, p) in def.parameters.enumerated() {
            var value: Value
            if i < args.positional.count {
                value = args.positional[i]
            } else if let k = keyword.firstIndex(where: { $0.0 == p.name }) {
                value = keyword.remove(at: k).1
            } else if let d = p.defaultValue {
                value = try eval(d)
            } else {
                value = .undefined("'\(p.name)' is undefined")
            }
            scopes[scopes.count - 1][p.name] = value
        }
        if let extra = keyword.first {
            throw .type("macro '\(def.name)' takes no keyword argument '\(extra.0)'")
        }
        let varargs = args.positional.count > def.parameters.count ? Array(args.positional[def.parameters.count...]) : []
        scopes[scopes.count - 1]["varargs"] = .list(varargs)
        scopes[scopes.count - 1]["kwargs"] = .dict(PyDict())
        var out = ""
        _ = try exec(def.body, into: &out)
        return .string(out)
    }
}
