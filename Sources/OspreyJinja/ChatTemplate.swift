// ChatTemplate.swift — the public face of OspreyJinja: parse a Hugging Face chat template once,
// render it many times, and the typed errors both can throw. Rendering follows transformers'
// jinja2 environment (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
// raise_exception, strftime_now, transformers' tojson). Everything else lives in the lexer,
// parser and interpreter files of this module.

import Foundation

/// A parsed Jinja chat template, ready to render with a context of variables.
public struct ChatTemplate: Sendable {
    let body: [Stmt]

    /// Parses a template; malformed syntax throws `JinjaError.syntax` with the line number.
    public init(source: String) throws(JinjaError) {
        let tokens = try Lexer.tokenize(source)
        var parser = Parser(tokens: tokens)
        body = try parser.parseTemplate()
    }

    /// Renders the template. `raise_exception(msg)` in the template throws `JinjaError.raised(msg)`.
    ///
    /// - Parameters:
    ///   - context: top-level variables (`messages`, `tools`, `add_generation_prompt`, `bos_token`, ...).
    ///   - now: the local time `strftime_now` reports; the current time when nil.
    public func render(_ context: [String: JinjaValue], now: Date? = nil) throws(JinjaError) -> String {
        var globals: [String: Value] = [:]
        for (key, value) in context { globals[key] = Value(value) }
        var interpreter = Interpreter(globals: globals, clock: LocalTime(now ?? Date()))
        return try interpreter.render(body)
    }

    /// The variables transformers' `apply_chat_template` hands a template: `messages`, `tools`
    /// (None when absent), `documents` (None), and every kwarg (special tokens,
    /// `add_generation_prompt`, ...) at top level.
    public static func context(messages: JinjaValue, tools: JinjaValue? = nil,
                               kwargs: JinjaObject = JinjaObject()) -> [String: JinjaValue] {
        var context: [String: JinjaValue] = ["messages": messages, "tools": tools ?? .null, "documents": .null]
        for (key, value) in kwargs.entries { context[key] = value }
        return context
    }

    /// Renders with a fixed wall-clock time for `strftime_now`, given as calendar fields.
    public func render(_ context: [String: JinjaValue], year: Int, month: Int, day: Int,
                       hour: Int = 0, minute: Int = 0, second: Int = 0) throws(JinjaError) -> String {
        var globals: [String: Value] = [:]
        for (key, value) in context { globals[key] = Value(value) }
        let clock = LocalTime(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        var interpreter = Interpreter(globals: globals, clock: clock)
        return try interpreter.render(body)
    }
}

/// Errors from parsing or rendering a template, or from reading JSON input.
public enum JinjaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The template text is malformed (jinja2's TemplateSyntaxError).
    case syntax(message: String, line: Int)
    /// The template called `raise_exception(message)` (transformers' TemplateError).
    case raised(String)
    /// An operation on values of the wrong type, e.g. `'x' in None` (Python's TypeError).
    case type(String)
    /// An undefined variable was used in a way that needs a value (jinja2's UndefinedError).
    case undefined(String)
    /// Any other failure while rendering, with the Python exception it stands for
    /// (ZeroDivisionError, ValueError, SecurityError, ...).
    case runtime(String, exception: String = "TemplateRuntimeError")
    /// Evaluation nested deeper than the given limit: runaway macro recursion or a pathologically
    /// deep template or value (Python's RecursionError).
    case recursionLimit(Int)
    /// JSON input could not be read.
    case invalidJSON(String)

    /// The error in the `"<ExceptionType>: <message>"` form of the reference fixtures.
    public var description: String {
        switch self {
        case .syntax(let message, let line): return "TemplateSyntaxError: \(message) (line \(line))"
        case .raised(let message): return "TemplateError: \(message)"
        case .type(let message): return "TypeError: \(message)"
        case .undefined(let message): return "UndefinedError: \(message)"
        case .runtime(let message, let exception): return "\(exception): \(message)"
        case .recursionLimit(let depth): return "RecursionError: maximum recursion depth exceeded (limit \(depth))"
        case .invalidJSON(let message): return "JSONDecodeError: \(message)"
        }
    }
}

/// A naive local wall-clock time, as Python's `datetime.now()` gives it.
struct LocalTime: Sendable {
    var year, month, day, hour, minute, second: Int
    var microsecond = 0

    init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        (self.year, self.month, self.day, self.hour, self.minute, self.second) = (year, month, day, hour, minute, second)
    }

    init(_ date: Date) {
        let c = Calendar.current.dateComponents([.year, .month, .day, .hour, .minute, .second, .nanosecond], from: date)
        self.init(year: c.year ?? 1970, month: c.month ?? 1, day: c.day ?? 1,
                  hour: c.hour ?? 0, minute: c.minute ?? 0, second: c.second ?? 0)
        microsecond = (c.nanosecond ?? 0) / 1000
    }
}
