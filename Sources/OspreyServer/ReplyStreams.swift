// From engine tokens to the text of a response, one token at a time, the same way whether the
// response is streamed or not (so the two always agree). `ChatReplyStream` runs ChatReplyParser
// (harmony channels, or a template model's decoded text) and yields chunk deltas: analysis text
// as `reasoning_content`, final text as `content`, commentary-channel calls as `tool_calls`.
// `TextReplyStream` decodes a plain completion. Both cut the text at the request's stop strings
// (StopStringMatcher, which holds back a possible stop-string prefix), and neither ever lets a
// special token's text through: after a harmony format error (what random weights produce) the
// parser reads the rest as text, so spelled-out `<|...|>` tokens are removed here.
import Foundation
import OspreyGeneration
import OspreyTokenizers

/// Makes the `call_...` ids of tool calls.
public enum ToolCallID {
    public static func make() -> String {
        "call_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
    }
}

/// A chat reply as it streams.
public struct ChatReplyStream {
    private var parser: ChatReplyParser
    private var matcher: StopStringMatcher
    private let isHarmony: Bool
    private let makeID: () -> String
    /// A stop string was found: the reply is over and the engine request should be cancelled.
    public private(set) var stopped = false
    public private(set) var content = ""
    public private(set) var reasoning = ""
    public private(set) var toolCalls: [ResponseToolCall] = []

    /// A reply generated after `format`'s generation prompt (and `replyPrefix`, the part of the
    /// reply a forced tool call prefilled), cut at `stop`.
    public init(format: ChatFormat, stop: [String] = [], replyPrefix: [Int32] = [],
                makeID: @escaping () -> String = ToolCallID.make) {
        parser = ChatReplyParser(format: format, replyPrefix: replyPrefix)
        matcher = StopStringMatcher(stop)
        if case .harmony = format.kind { isHarmony = true } else { isHarmony = false }
        self.makeID = makeID
    }

    /// Feeds one generated id; returns the deltas it adds (possibly none).
    public mutating func append(_ token: Int32) -> [ChatDeltaBody] {
        guard !stopped else { return [] }
        return map(parser.append(token), last: false)
    }

    /// Ends the reply; returns what the end adds.
    public mutating func finish() -> [ChatDeltaBody] {
        guard !stopped else { return [] }
        return map(parser.finish(), last: true)
    }

    /// OpenAI's finish_reason for an engine finish. A reply cut by the token limit is "length" even
    /// inside a tool call (whose arguments are then unfinished, as OpenAI reports it): with a
    /// forced tool_choice the reply starts inside the call, so a short max_tokens often cuts it.
    public func finishReason(_ engine: FinishReason?) -> String {
        if engine == .length && !stopped { return "length" }
        return toolCalls.isEmpty ? "stop" : "tool_calls"
    }

    /// The whole reply as the response's message.
    public var message: AssistantMessage {
        AssistantMessage(content: content.isEmpty && !toolCalls.isEmpty ? nil : content,
                         reasoningContent: reasoning.isEmpty ? nil : reasoning,
                         toolCalls: toolCalls.isEmpty ? nil : toolCalls.map { var c = $0; c.index = nil; return c })
    }

    private mutating func map(_ deltas: [ChatDelta], last: Bool) -> [ChatDeltaBody] {
        var out: [ChatDeltaBody] = []
        for delta in deltas {
            switch delta {
            case .reasoning(let t):
                let text = clean(t)
                if !text.isEmpty { reasoning += text; out.append(ChatDeltaBody(reasoningContent: text)) }
            case .content(let t):
                let (text, hit) = matcher.append(clean(t))
                if !text.isEmpty { content += text; out.append(ChatDeltaBody(content: text)) }
                if hit { stopped = true; return out }
            case .toolCall(let call):
                let c = ResponseToolCall(index: toolCalls.count, id: makeID(), function: FunctionCall(name: call.name, arguments: call.arguments))
                toolCalls.append(c)
                out.append(ChatDeltaBody(toolCalls: [c]))
            }
        }
        if last {
            let rest = matcher.flush()
            if !rest.isEmpty { content += rest; out.append(ChatDeltaBody(content: rest)) }
        }
        return out
    }

    private func clean(_ text: String) -> String {
        isHarmony ? SpecialTokenText.strip(text) : text
    }
}

/// A plain completion as it streams: decoded text (special tokens skipped), cut at stop strings.
public struct TextReplyStream {
    private var detokenizer: StreamingDetokenizer
    private var matcher: StopStringMatcher
    public private(set) var stopped = false
    public private(set) var text = ""

    public init(tokenizer: any Tokenizer, stop: [String] = []) {
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: true)
        matcher = StopStringMatcher(stop)
    }

    /// Feeds one generated id; returns the text it releases.
    public mutating func append(_ token: Int32) -> String {
        guard !stopped else { return "" }
        return release((try? detokenizer.append(Int(token))) ?? "\u{FFFD}", last: false)
    }

    /// Ends the completion; returns held-back text.
    public mutating func finish() -> String {
        guard !stopped else { return "" }
        return release((try? detokenizer.finish()) ?? "", last: true)
    }

    public func finishReason(_ engine: FinishReason?) -> String {
        stopped ? "stop" : engine == .length ? "length" : "stop"
    }

    private mutating func release(_ piece: String, last: Bool) -> String {
        var (out, hit) = matcher.append(piece)
        if hit { stopped = true } else if last { out += matcher.flush() }
        text += out
        return out
    }
}

/// Harmony's control tokens spelled out (`<|start|>`, `<|reserved_200013|>`).
enum SpecialTokenText {
    static func strip(_ text: String) -> String {
        guard text.contains("<|") else { return text }
        var out = "", rest = Substring(text)
        while let open = rest.range(of: "<|") {
            out += rest[..<open.lowerBound]
            let after = rest[open.upperBound...]
            if let close = after.range(of: "|>"),
               !after[..<close.lowerBound].isEmpty,
               after[..<close.lowerBound].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
                rest = after[close.upperBound...]
            } else {
                out += "<|"
                rest = after
            }
        }
        return out + rest
    }
}
