// ChatTemplateCommand.swift — `osprey chat-template --template FILE.jinja`: reads one JSON object
// per line from stdin (`{"messages": [...], "tools": [...]?, "kwargs": {...}}`, the shape of
// ../shared/fixtures/chat_templates/cases.jsonl; other keys are ignored) and prints, per line, the
// rendered text as a JSON string, or `{"error": "<Type>: <message>"}` when rendering fails (the
// fixtures' `error` form, e.g. "TemplateError: ..." from raise_exception). The context is what
// transformers passes: messages, tools (None when absent), documents=None, kwargs at top level.

import ArgumentParser
import Foundation
import OspreyJinja

struct ChatTemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-template",
        abstract: "Render a Jinja chat template for each JSON line of messages read from stdin.")

    @Option(name: .long, help: "The chat template file (.jinja).")
    var template: String

    @Option(name: .long, help: "Local time that strftime_now reports, as YYYY-MM-DD[THH:MM[:SS]] (default: the current time).")
    var now: String?

    func run() throws {
        guard let data = FileManager.default.contents(atPath: template),
              let source = String(data: data, encoding: .utf8) else {
            throw ValidationError("cannot read template file '\(template)' as UTF-8")
        }
        let chatTemplate: ChatTemplate
        do {
            chatTemplate = try ChatTemplate(source: source)
        } catch {
            throw ValidationError("\(template): \(error)")
        }
        let clock = try now.map(Self.parseTime)
        while let line = readLine(strippingNewline: true) {
            if line.allSatisfy(\.isWhitespace) { continue }
            print(Self.renderLine(line, chatTemplate, clock))
        }
    }

    static func renderLine(_ line: String, _ template: ChatTemplate, _ clock: [Int]?) -> String {
        func error(_ message: String) -> String {
            JinjaValue.object(JinjaObject([("error", .string(message))])).jsonString
        }
        do {
            guard case .object(let record) = try JinjaValue(json: line) else {
                return error("invalid input: each line must be a JSON object")
            }
            var kwargs = JinjaObject()
            if case .object(let k)? = record["kwargs"] { kwargs = k }
            let context = ChatTemplate.context(messages: record["messages"] ?? .array([]), tools: record["tools"], kwargs: kwargs)
            let text: String
            if let c = clock {
                text = try template.render(context, year: c[0], month: c[1], day: c[2], hour: c[3], minute: c[4], second: c[5])
            } else {
                text = try template.render(context)
            }
            return JinjaValue.string(text).jsonString
        } catch .invalidJSON(let message) {
            return error("invalid input: \(message)")
        } catch let e {
            return error(e.description)
        }
    }

    static func parseTime(_ text: String) throws -> [Int] {
        let fields = text.split(whereSeparator: { "-T: ".contains($0) }).map { Int($0) }
        guard fields.count >= 3, fields.count <= 6, fields.allSatisfy({ $0 != nil }) else {
            throw ValidationError("--now must look like 2025-07-26T14:30:00")
        }
        return (fields.map { $0! } + [0, 0, 0]).prefix(6).map { $0 }
    }
}
