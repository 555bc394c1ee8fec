// Parser.swift — recursive-descent parser from tokens to the AST: the token cursor and the
// statements (if/elif/else, for/else with an inline `if`, set and block set, macro, filter,
// with, block, generation, break/continue), following jinja2's parser.py. Unknown tags are syntax
// errors with the line. Expressions are parsed in ExpressionParser.swift.

struct Parser {
    let tokens: [Token]
    var index = 0
    var depth = 0
    var loopDepth = 0
    static let maxDepth = 200

    init(tokens: [Token]) { self.tokens = tokens }

    var current: Token { tokens[min(index, tokens.count - 1)] }
    var peek: Token { tokens[min(index + 1, tokens.count - 1)] }

    mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    func fail(_ message: String) -> JinjaError { .syntax(message: message, line: current.line) }

    func isOp(_ op: String) -> Bool { current.kind == .op(op) }
    func isName(_ name: String) -> Bool { current.kind == .name(name) }

    mutating func expectOp(_ op: String) throws(JinjaError) {
        guard isOp(op) else { throw fail("expected '\(op)', got \(describe(current.kind))") }
        advance()
    }

    mutating func expectName() throws(JinjaError) -> String {
        guard case .name(let n) = current.kind else { throw fail("expected a name, got \(describe(current.kind))") }
        advance()
        return n
    }

    mutating func expectBlockEnd() throws(JinjaError) {
        guard current.kind == .blockEnd else { throw fail("expected end of statement block, got \(describe(current.kind))") }
        advance()
    }

    func describe(_ kind: TokenKind) -> String {
        switch kind {
        case .data: return "template data"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "'}}'"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "end of statement block"
        case .name(let n): return "'\(n)'"
        case .string: return "string"
        case .integer(let i): return "'\(i)'"
        case .float(let d): return "'\(d)'"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }

    // MARK: - Statements

    mutating func parseTemplate() throws(JinjaError) -> [Stmt] {
        let (body, _) = try parseBody(until: [])
        return body
    }

    /// Parses statements until one of `ends` opens a block tag; returns the body and that tag's name.
    mutating func parseBody(until ends: Set<String>) throws(JinjaError) -> ([Stmt], String?) {
        var body: [Stmt] = []
        while true {
            let line = current.line
            switch current.kind {
            case .data(let text):
                body.append(Stmt(kind: .data(text), line: line))
                advance()
            case .variableBegin:
                advance()
                let e = try parseTuple()
                guard current.kind == .variableEnd else { throw fail("expected '}}', got \(describe(current.kind))") }
                advance()
                body.append(Stmt(kind: .output(e), line: line))
            case .blockBegin:
                advance()
                guard case .name(let tag) = current.kind else { throw fail("tag name expected") }
                if ends.contains(tag) {
                    advance()
                    return (body, tag)
                }
                body.append(contentsOf: try parseStatement(tag))
            case .eof:
                if ends.isEmpty { return (body, nil) }
                let wanted = ends.sorted().map { "'\($0)'" }.joined(separator: " or ")
                throw fail("Unexpected end of template. Jinja was looking for the following tags: \(wanted).")
            default:
                throw fail("unexpected \(describe(current.kind))")
            }
        }
    }

    mutating func parseStatement(_ tag: String) throws(JinjaError) -> [Stmt] {
        let line = current.line
        advance()
        func stmt(_ kind: StmtKind) -> [Stmt] { [Stmt(kind: kind, line: line)] }
        switch tag {
        case "if":
            var branches: [(Expr, [Stmt])] = []
            var condition = try parseTuple(withCondexpr: false)
            while true {
                try expectBlockEnd()
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                if end == "elif" { condition = try parseTuple(withCondexpr: false); continue }
                var otherwise: [Stmt] = []
                if end == "else" {
                    try expectBlockEnd()
                    (otherwise, _) = try parseBody(until: ["endif"])
                }
                try expectBlockEnd()
                return stmt(.ifChain(branches, otherwise: otherwise))
            }
        case "for":
            let target = try parseAssignTarget(withNamespace: false, endNames: ["in"])
            guard isName("in") else { throw fail("expected 'in' in for loop") }
            advance()
            let iterable = try parseTuple(withCondexpr: false, endNames: ["recursive", "if"])
            var condition: Expr?
            if isName("if") { advance(); condition = try parseExpression() }
            if isName("recursive") { throw fail("recursive for loops are not supported") }
            try expectBlockEnd()
            loopDepth += 1
            let (body, end) = try parseBody(until: ["endfor", "else"])
            loopDepth -= 1
            var otherwise: [Stmt] = []
            if end == "else" {
                try expectBlockEnd()
                (otherwise, _) = try parseBody(until: ["endfor"])
            }
            try expectBlockEnd()
            return stmt(.forLoop(target: target, iterable: iterable, condition: condition, body: body, otherwise: otherwise))
        case "set":
            let target = try parseAssignTarget(withNamespace: true, endNames: [])
            if isOp("=") {
                advance()
                let value = try parseTuple()
                try expectBlockEnd()
                return stmt(.set(target, value))
            }
            guard case .name(let name) = target else { throw fail("block set needs a single variable name") }
            var filters: [FilterCall] = []
            while isOp("|") { advance(); filters.append(try parseFilterCall()) }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endset"])
            try expectBlockEnd()
            return stmt(.setBlock(name, filters: filters, body: body))
        case "macro":
            let name = try expectName()
            try expectOp("(")
            var parameters: [(name: String, defaultValue: Expr?)] = []
            while !isOp(")") {
                if !parameters.isEmpty { try expectOp(","); if isOp(")") { break } }
                let p = try expectName()
                var defaultValue: Expr?
                if isOp("=") { advance(); defaultValue = try parseExpression() }
                parameters.append((p, defaultValue))
            }
            advance()
            try expectBlockEnd()
            let savedLoops = loopDepth
            loopDepth = 0
            let (body, _) = try parseBody(until: ["endmacro"])
            loopDepth = savedLoops
            if case .name = current.kind { advance() }
            try expectBlockEnd()
            return stmt(.macro(MacroDefinition(name: name, parameters: parameters, body: body)))
        case "filter":
            var filters = [try parseFilterCall()]
            while isOp("|") { advance(); filters.append(try parseFilterCall()) }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endfilter"])
            try expectBlockEnd()
            return stmt(.filterBlock(filters, body: body))
        case "with":
            var assignments: [(AssignTarget, Expr)] = []
            while current.kind != .blockEnd {
                if !assignments.isEmpty { try expectOp(",") }
                let target = try parseAssignTarget(withNamespace: false, endNames: [])
                try expectOp("=")
                assignments.append((target, try parseExpression()))
            }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endwith"])
            try expectBlockEnd()
            return stmt(.with(assignments, body: body))
        case "block":
            _ = try expectName()
            while isName("scoped") || isName("required") { advance() }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endblock"])
            if case .name = current.kind { advance() }
            try expectBlockEnd()
            return stmt(.scope(body))
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectBlockEnd()
            return body
        case "break", "continue":
            guard loopDepth > 0 else { throw .syntax(message: "'\(tag)' outside of a for loop", line: line) }
            try expectBlockEnd()
            return stmt(tag == "break" ? .breakLoop : .continueLoop)
        default:
            throw .syntax(message: "Encountered unknown tag '\(tag)'.", line: line)
        }
    }

    /// `x`, `a, b`, `(a, b)` or (for `set`) `ns.attr`.
    mutating func parseAssignTarget(withNamespace: Bool, endNames: Set<String>) throws(JinjaError) -> AssignTarget {
        if withNamespace, case .name(let ns) = current.kind, peek.kind == .op(".") {
            advance(); advance()
            return .namespaceAttribute(ns, try expectName())
        }
        var items: [AssignTarget] = []
        var sawComma = false
        while true {
            if case .name(let n) = current.kind, endNames.contains(n) { break }
            if isOp("=") || current.kind == .blockEnd || isOp(")") { break }
            if isOp("(") {
                advance()
                items.append(try parseAssignTarget(withNamespace: false, endNames: []))
                try expectOp(")")
            } else {
                let n = try expectName()
                if ["true", "false", "none", "True", "False", "None"].contains(n) { throw fail("can't assign to '\(n)'") }
                items.append(.name(n))
            }
            if isOp(",") { advance(); sawComma = true } else { break }
        }
        if items.isEmpty { throw fail("expected an assignment target") }
        return items.count == 1 && !sawComma ? items[0] : .tuple(items)
    }
}
