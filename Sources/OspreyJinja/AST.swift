// AST.swift — the syntax tree the parser builds and the interpreter walks: expressions (with
// jinja2's precedence already resolved) and statements. Plain immutable values, so a parsed
// ChatTemplate is Sendable and can be rendered from any thread.

enum Literal: Sendable {
    case none, bool(Bool), int(Int), double(Double), string(String)
}

enum BinaryOp: String, Sendable {
    case add = "+", sub = "-", mul = "*", div = "/", floordiv = "//", mod = "%", pow = "**", concat = "~"
}

enum CompareOp: String, Sendable {
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=", `in` = "in", notIn = "not in"
}

/// One argument at a call site: `f(x)`, `f(name=x)`, `f(*xs)`, `f(**kw)`.
enum Argument: Sendable {
    case positional(Expr)
    case keyword(String, Expr)
    case splat(Expr)
    case doubleSplat(Expr)
}

indirect enum Expr: Sendable {
    case literal(Literal)
    case name(String)
    case list([Expr])
    case tuple([Expr])
    case dict([(Expr, Expr)])
    case attribute(Expr, String)
    case item(Expr, Expr)
    case slice(Expr, start: Expr?, stop: Expr?, step: Expr?)
    case call(Expr, [Argument])
    case filter(Expr, name: String, [Argument])
    case test(Expr, name: String, [Argument])
    case negate(Expr)
    case plus(Expr)
    case not(Expr)
    case and(Expr, Expr)
    case or(Expr, Expr)
    case binary(BinaryOp, Expr, Expr)
    case compare(Expr, [(CompareOp, Expr)])
    case conditional(test: Expr, then: Expr, else: Expr?)
}

/// The left side of `set` and the variables of `for`.
enum AssignTarget: Sendable {
    case name(String)
    case tuple([AssignTarget])
    case namespaceAttribute(String, String)
}

struct FilterCall: Sendable {
    var name: String
    var arguments: [Argument]
}

struct MacroDefinition: Sendable {
    var name: String
    var parameters: [(name: String, defaultValue: Expr?)]
    var body: [Stmt]
}

struct Stmt: Sendable {
    var kind: StmtKind
    var line: Int
}

indirect enum StmtKind: Sendable {
    case data(String)
    case output(Expr)
    case ifChain([(Expr, [Stmt])], otherwise: [Stmt])
    case forLoop(target: AssignTarget, iterable: Expr, condition: Expr?, body: [Stmt], otherwise: [Stmt])
    case set(AssignTarget, Expr)
    case setBlock(String, filters: [FilterCall], body: [Stmt])
    case macro(MacroDefinition)
    case filterBlock([FilterCall], body: [Stmt])
    case with([(AssignTarget, Expr)], body: [Stmt])
    case scope([Stmt])
    case breakLoop
    case continueLoop
}
