// ExpressionParser.swift — jinja2's expression grammar and precedence: conditional < or < and <
// not < comparisons (chained, `in`, `not in`) < `+ -` < `~` < `* / // %` < `**` < unary minus/plus,
// postfix (`.x`, `[i]`, `[a:b:c]`, calls), with filters `|f` and tests `is t` binding to the unary
// operand. Unknown filters and tests are syntax errors at parse time, as jinja2 reports them at
// compile time. Nesting depth is bounded so hostile input cannot exhaust the stack.

extension Parser {
    // MARK: - Expressions

    mutating func enter() throws(JinjaError) {
        depth += 1
        if depth > Self.maxDepth { throw fail("expression nested deeper than \(Self.maxDepth) levels") }
    }

    /// A comma-separated expression list; a tuple when a comma appears.
    mutating func parseTuple(withCondexpr: Bool = true, endNames: Set<String> = [], explicitParens: Bool = false) throws(JinjaError) -> Expr {
        var items: [Expr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if current.kind == .variableEnd || current.kind == .blockEnd || isOp(")") { break }
            if case .name(let n) = current.kind, endNames.contains(n) { break }
            items.append(withCondexpr ? try parseExpression() : try parseOr())
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let only = items.first { return only }
            if !explicitParens { throw fail("expected an expression, got \(describe(current.kind))") }
        }
        return .tuple(items)
    }

    mutating func parseExpression() throws(JinjaError) -> Expr {
        try enter()
        defer { depth -= 1 }
        var e = try parseOr()
        while isName("if") {
            advance()
            let test = try parseOr()
            var otherwise: Expr?
            if isName("else") { advance(); otherwise = try parseExpression() }
            e = .conditional(test: test, then: e, else: otherwise)
        }
        return e
    }

    mutating func parseOr() throws(JinjaError) -> Expr {
        var e = try parseAnd()
        while isName("or") { advance(); e = .or(e, try parseAnd()) }
        return e
    }

    mutating func parseAnd() throws(JinjaError) -> Expr {
        var e = try parseNot()
        while isName("and") { advance(); e = .and(e, try parseNot()) }
        return e
    }

    mutating func parseNot() throws(JinjaError) -> Expr {
        if isName("not") {
            try enter()
            defer { depth -= 1 }
            advance()
            return .not(try parseNot())
        }
        return try parseCompare()
    }

    mutating func parseCompare() throws(JinjaError) -> Expr {
        let first = try parseMath1()
        var ops: [(CompareOp, Expr)] = []
        while true {
            if case .op(let o) = current.kind, let op = CompareOp(rawValue: o), op != .in, op != .notIn {
                advance()
                ops.append((op, try parseMath1()))
            } else if isName("in") {
                advance()
                ops.append((.in, try parseMath1()))
            } else if isName("not"), peek.kind == .name("in") {
                advance(); advance()
                ops.append((.notIn, try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? first : .compare(first, ops)
    }

    mutating func parseMath1() throws(JinjaError) -> Expr {
        var e = try parseConcat()
        while isOp("+") || isOp("-") {
            let op: BinaryOp = isOp("+") ? .add : .sub
            advance()
            e = .binary(op, e, try parseConcat())
        }
        return e
    }

    mutating func parseConcat() throws(JinjaError) -> Expr {
        var e = try parseMath2()
        while isOp("~") { advance(); e = .binary(.concat, e, try parseMath2()) }
        return e
    }

    mutating func parseMath2() throws(JinjaError) -> Expr {
        var e = try parsePow()
        while case .op(let o) = current.kind, ["*", "/", "//", "%"].contains(o) {
            advance()
            e = .binary(BinaryOp(rawValue: o)!, e, try parsePow())
        }
        return e
    }

    mutating func parsePow() throws(JinjaError) -> Expr {
        var e = try parseUnary()
        while isOp("**") { advance(); e = .binary(.pow, e, try parseUnary()) }
        return e
    }

    mutating func parseUnary(withFilter: Bool = true) throws(JinjaError) -> Expr {
        try enter()
        defer { depth -= 1 }
        var e: Expr
        if isOp("-") {
            advance()
            e = .negate(try parseUnary(withFilter: false))
        } else if isOp("+") {
            advance()
            e = .plus(try parseUnary(withFilter: false))
        } else {
            e = try parsePrimary()
        }
        e = try parsePostfix(e)
        if withFilter { e = try parseFilterExpression(e) }
        return e
    }

    mutating func parsePrimary() throws(JinjaError) -> Expr {
        let token = current
        switch token.kind {
        case .name(let n):
            advance()
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .string(var s):
            advance()
            while case .string(let more) = current.kind { s += more; advance() }
            return .literal(.string(s))
        case .integer(let i): advance(); return .literal(.int(i))
        case .float(let d): advance(); return .literal(.double(d))
        case .op("("):
            advance()
            let e = try parseTuple(explicitParens: true)
            try expectOp(")")
            return e
        case .op("["):
            advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(","); if isOp("]") { break } }
                items.append(try parseExpression())
            }
            advance()
            return .list(items)
        case .op("{"):
            advance()
            var pairs: [(Expr, Expr)] = []
            while !isOp("}") {
                if !pairs.isEmpty { try expectOp(","); if isOp("}") { break } }
                let key = try parseExpression()
                try expectOp(":")
                pairs.append((key, try parseExpression()))
            }
            advance()
            return .dict(pairs)
        default:
            throw fail("unexpected \(describe(token.kind))")
        }
    }

    mutating func parsePostfix(_ base: Expr) throws(JinjaError) -> Expr {
        var e = base
        while true {
            if isOp(".") {
                advance()
                switch current.kind {
                case .name(let n): advance(); e = .attribute(e, n)
                case .integer(let i): advance(); e = .item(e, .literal(.int(i)))
                default: throw fail("expected a name after '.'")
                }
            } else if isOp("[") {
                advance()
                e = try parseSubscript(e)
            } else if isOp("(") {
                advance()
                e = .call(e, try parseCallArguments())
            } else {
                return e
            }
        }
    }

    mutating func parseSubscript(_ base: Expr) throws(JinjaError) -> Expr {
        var start: Expr?
        if !isOp(":") {
            start = try parseExpression()
            if isOp("]") { advance(); return .item(base, start!) }
            if isOp(",") {
                var items = [start!]
                while isOp(",") { advance(); if isOp("]") { break }; items.append(try parseExpression()) }
                try expectOp("]")
                return .item(base, .tuple(items))
            }
        }
        try expectOp(":")
        var stop: Expr?, step: Expr?
        if !isOp("]") && !isOp(":") { stop = try parseExpression() }
        if isOp(":") {
            advance()
            if !isOp("]") { step = try parseExpression() }
        }
        try expectOp("]")
        return .slice(base, start: start, stop: stop, step: step)
    }

    /// Arguments after an opening parenthesis, through the closing one.
    mutating func parseCallArguments() throws(JinjaError) -> [Argument] {
        var args: [Argument] = []
        while !isOp(")") {
            if !args.isEmpty { try expectOp(","); if isOp(")") { break } }
            if isOp("*") {
                advance(); args.append(.splat(try parseExpression()))
            } else if isOp("**") {
                advance(); args.append(.doubleSplat(try parseExpression()))
            } else if case .name(let n) = current.kind, peek.kind == .op("=") {
                advance(); advance()
                args.append(.keyword(n, try parseExpression()))
            } else {
                args.append(.positional(try parseExpression()))
            }
        }
        advance()
        return args
    }

    mutating func parseDottedName() throws(JinjaError) -> String {
        var name = try expectName()
        while isOp("."), case .name(let more) = peek.kind { advance(); advance(); name += "." + more }
        return name
    }

    mutating func parseFilterCall() throws(JinjaError) -> FilterCall {
        let line = current.line
        let name = try parseDottedName()
        guard Builtins.filterNames.contains(name) else { throw .syntax(message: "No filter named '\(name)'.", line: line) }
        var args: [Argument] = []
        if isOp("(") { advance(); args = try parseCallArguments() }
        return FilterCall(name: name, arguments: args)
    }

    mutating func parseFilterExpression(_ base: Expr) throws(JinjaError) -> Expr {
        var e = base
        while true {
            if isOp("|") {
                advance()
                let f = try parseFilterCall()
                e = .filter(e, name: f.name, f.arguments)
            } else if isName("is") {
                advance()
                var negated = false
                if isName("not") { advance(); negated = true }
                let line = current.line
                let name = try parseDottedName()
                guard Builtins.testNames.contains(name) else { throw .syntax(message: "No test named '\(name)'.", line: line) }
                var args: [Argument] = []
                if isOp("(") {
                    advance()
                    args = try parseCallArguments()
                } else if startsSingleTestArgument() {
                    if isName("is") { throw fail("You cannot chain multiple tests with is") }
                    args = [.positional(try parsePostfix(try parsePrimary()))]
                }
                e = .test(e, name: name, args)
                if negated { e = .not(e) }
            } else if isOp("(") {
                advance()
                e = .call(e, try parseCallArguments())
            } else {
                return e
            }
        }
    }

    func startsSingleTestArgument() -> Bool {
        switch current.kind {
        case .name(let n): return !["else", "or", "and"].contains(n)
        case .string, .integer, .float: return true
        case .op(let o): return o == "(" || o == "[" || o == "{"
        default: return false
        }
    }
}
