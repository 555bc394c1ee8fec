// Reading a reply back, token by token, into reasoning, answer and tool calls, as it streams.
// Harmony replies go through OspreyTokenizers' streaming parser: text on the analysis channel is
// reasoning, text on final (or a commentary preamble) is the answer, and a message to a recipient
// (`functions.NAME`, `browser.search`) is a tool call whose content is the JSON arguments. Replies of
// template models are decoded text, where a `<think>…</think>` block is reasoning and
// `<tool_call>{"name", "arguments"}</tool_call>` blocks (Qwen, Hermes) are tool calls.
// A reply that breaks its format — what a random-weight model produces — never throws: the
// parser notes why in `formatError` and reads the rest as plain text.
import Foundation
import OspreyTokenizers

/// Turns reply ids into chat deltas and a `ChatReply`.
public struct ChatReplyParser {
    private enum Mode {
        case harmony(HarmonyStreamParser)
        case text(StreamingDetokenizer)
    }

    /// The reply read so far.
    public private(set) var reply = ChatReply()
    private let format: ChatFormat
    private var mode: Mode
    private var pending: [Int32] = []  // harmony ids whose text has not surfaced yet
    private var raw = ""               // text mode: the decoded reply
    private var emitted = (reasoning: "", content: "")

    /// A parser for a reply generated after `format`'s generation prompt; `replyPrefix` is what
    /// the prompt prefilled of the reply (`ChatFormat.replyPrefix(forcing:)`), read as its start.
    public init(format: ChatFormat, replyPrefix: [Int32] = []) {
        self.format = format
        switch format.kind {
        case .harmony(let encoding): mode = .harmony(encoding.makeParser(role: .assistant))
        case .template: mode = .text(StreamingDetokenizer(tokenizer: format.tokenizer, skipSpecialTokens: true))
        }
        for id in replyPrefix { _ = append(id) }  // a prefilled header: it surfaces with the message it opens
    }

    /// Feeds one reply id; returns what it added.
    public mutating func append(_ id: Int32) -> [ChatDelta] {
        switch mode {
        case .harmony(var parser):
            pending.append(id)
            do {
                let event = try parser.process(Int(id))
                mode = .harmony(parser)
                return harmonyEvent(event, parser)
            } catch {
                return fallBackToText(error)
            }
        case .text(var detokenizer):
            let piece = (try? detokenizer.append(Int(id))) ?? "\u{FFFD}"
            mode = .text(detokenizer)
            return text(piece, final: false)
        }
    }

    /// Ends the reply; returns what the end added (the last message, held-back text, tool calls).
    public mutating func finish() -> [ChatDelta] {
        switch mode {
        case .harmony(var parser):
            do {
                let event = try parser.finish()
                mode = .harmony(parser)
                return harmonyEvent(event, parser)
            } catch .endOfStreamInHeader {
                // Cut off (max_tokens) before the header was complete: markup, not text; nothing to surface.
                pending = []
                return []
            } catch {
                return fallBackToText(error) + finish()
            }
        case .text(var detokenizer):
            let piece = (try? detokenizer.finish()) ?? ""
            mode = .text(detokenizer)
            return text(piece, final: true) + extractToolCalls()
        }
    }

    // MARK: - Harmony

    private mutating func harmonyEvent(_ event: HarmonyParserEvent?, _ parser: HarmonyStreamParser) -> [ChatDelta] {
        switch event {
        case nil: return []
        case .headerComplete:
            pending = []
            guard parser.currentRecipient == nil else { return [] }
            // Separate consecutive messages of the same kind with a newline.
            if parser.currentChannel == "analysis" {
                return reply.reasoning.isEmpty ? [] : [add(.reasoning("\n"))]
            }
            return reply.content.isEmpty ? [] : [add(.content("\n"))]
        case .contentDelta(let text):
            pending = []
            guard parser.currentRecipient == nil else { return [] }
            return [add(parser.currentChannel == "analysis" ? .reasoning(text) : .content(text))]
        case .messageComplete(let message, _):
            pending = []
            guard var name = message.recipient else { return [] }
            if name.hasPrefix("functions.") { name.removeFirst("functions.".count) }
            return [add(.toolCall(ToolCall(name: name, arguments: message.text)))]
        }
    }

    private mutating func fallBackToText(_ error: any Error) -> [ChatDelta] {
        reply.formatError = reply.formatError ?? "\(error)"
        var detokenizer = StreamingDetokenizer(tokenizer: format.tokenizer, skipSpecialTokens: true)
        let text = pending.map { (try? detokenizer.append(Int($0))) ?? "\u{FFFD}" }.joined()
        pending = []
        mode = .text(detokenizer)
        emitted = (reply.reasoning, reply.content)
        raw = reply.content
        return self.text(text, final: false)
    }

    // MARK: - Text

    private mutating func text(_ piece: String, final: Bool) -> [ChatDelta] {
        raw += piece
        let (reasoning, content) = Self.split(raw, final: final, format: format)
        var out: [ChatDelta] = []
        if reasoning.count > emitted.reasoning.count, reasoning.hasPrefix(emitted.reasoning) {
            out.append(add(.reasoning(String(reasoning.dropFirst(emitted.reasoning.count)))))
            emitted.reasoning = reasoning
        }
        if content.count > emitted.content.count, content.hasPrefix(emitted.content) {
            out.append(add(.content(String(content.dropFirst(emitted.content.count)))))
            emitted.content = content
        }
        return out
    }

    /// Reasoning inside `<think>…</think>` (or before a lone `</think>`), the rest content; a tail
    /// that may be the start of a tag is held back until `final`.
    static func split(_ raw: String, final: Bool, format: ChatFormat) -> (String, String) {
        if case .harmony = format.kind { return ("", raw) }  // after a harmony format error: plain text
        var text = Substring(raw)
        if !final, let lt = text.lastIndex(of: "<"), "</think>".hasPrefix(text[lt...]) || "<think>".hasPrefix(text[lt...]) {
            text = text[..<lt]
        }
        if let close = text.range(of: "</think>") {
            let before = text[..<close.lowerBound]
            let open = before.range(of: "<think>")
            let reasoning = open.map { before[$0.upperBound...] } ?? before
            let content = (open.map { before[..<$0.lowerBound] } ?? "") + text[close.upperBound...]
            return (String(reasoning), String(content))
        }
        if let open = text.range(of: "<think>") { return (String(text[open.upperBound...]), String(text[..<open.lowerBound])) }
        return ("", String(text))
    }

    private mutating func extractToolCalls() -> [ChatDelta] {
        var content = Substring(reply.content)
        var out: [ChatDelta] = []
        while let open = content.range(of: "<tool_call>"), let close = content[open.upperBound...].range(of: "</tool_call>") {
            let body = content[open.upperBound..<close.lowerBound]
            if let call = Self.toolCall(fromJSON: String(body)) { out.append(add(.toolCall(call))) }
            content = content[..<open.lowerBound] + content[close.upperBound...]
        }
        if !out.isEmpty { reply.content = String(content).trimmingCharacters(in: .whitespacesAndNewlines) }
        return out
    }

    static func toolCall(fromJSON text: String) -> ToolCall? {
        guard let json = try? HarmonyJSON.parse(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              let name = json["name"]?.stringValue else { return nil }
        let arguments = json["arguments"] ?? json["parameters"] ?? .object(.init())
        return ToolCall(name: name, arguments: arguments.stringValue ?? arguments.compactText)
    }

    private mutating func add(_ delta: ChatDelta) -> ChatDelta {
        switch delta {
        case .reasoning(let t): reply.reasoning += t
        case .content(let t): reply.content += t
        case .toolCall(let c): reply.toolCalls.append(c)
        }
        return delta
    }
}

extension ChatFormat {
    /// Reads a whole reply (generated after `replyPrefix`, when the prompt prefilled one).
    public func parseReply(_ ids: [Int32], replyPrefix: [Int32] = []) -> ChatReply {
        var parser = ChatReplyParser(format: self, replyPrefix: replyPrefix)
        for id in ids { _ = parser.append(id) }
        _ = parser.finish()
        return parser.reply
    }
}
