// Rendering harmony conversations to token ids, as openai-harmony 0.0.8 does for gpt-oss.
//
// One message is
//   <|start|>{role | tool name}[:{name}][ to={recipient}][<|channel|>{channel}][ {content type}]<|message|>{content}<|end|>
// with `<|call|>` instead of `<|end|>` when an assistant message has a recipient (a tool call), and
// a content type starting with `<|constrain|>` written as " ", the special token, then the rest.
// Every piece of text (role, ":name", " to=...", channel, each content item) is encoded with a
// separate `encodeOrdinary` call, exactly as harmony does, because BPE over the joined string
// would give different ids. Text is never scanned for special tokens: a user who types "<|end|>"
// gets the ordinary tokens of that text.
//
// Conversation-level rules (src/encoding.rs `render_conversation_into`):
// - the system message says "Calls to these tools must go to the commentary channel: 'functions'."
//   when any developer message declares a non-empty `functions` namespace;
// - auto-drop: when the last assistant message is on `final`, messages on `analysis` that come
//   before the first `final` message of the conversation are left out (so analysis after an earlier
//   final answer, and analysis before a pending tool call, are kept);
// - for completion the ids end with `<|start|>{next role}`; for training a final assistant
//   answer ends in `<|return|>` instead of `<|end|>`.
// The token side is the small HarmonyTokenizer protocol, so tests can use a fake vocabulary.

/// What harmony needs from a tokenizer (o200k_harmony for gpt-oss).
public protocol HarmonyTokenizer: Sendable {
    /// Ids of `text` with special-token text treated as plain text.
    func encodeOrdinary(_ text: String) -> [Int]
    /// The id of a special token such as `<|start|>`, or nil.
    func tokenID(for token: String) -> Int?
    /// The bytes of `ids`; special tokens give their text.
    func decodeBytes(_ ids: [Int]) throws -> [UInt8]
    /// Whether `id` is a special token (default: its text is `<|...|>` and names that id).
    func isSpecialToken(_ id: Int) -> Bool
}

extension HarmonyTokenizer {
    public func isSpecialToken(_ id: Int) -> Bool {
        guard let b = try? decodeBytes([id]), b.count >= 4, b.starts(with: [0x3C, 0x7C]), b.suffix(2).elementsEqual([0x7C, 0x3E]) else {
            return false
        }
        return tokenID(for: String(decoding: b, as: UTF8.self)) == id
    }
}

/// Options of a conversation rendering.
public struct HarmonyRenderConfig: Sendable, Equatable {
    /// Drop analysis messages before the first final answer when the conversation ends in one.
    public var autoDropAnalysis: Bool

    public init(autoDropAnalysis: Bool = true) { self.autoDropAnalysis = autoDropAnalysis }
}

/// The ids of harmony's formatting tokens in one vocabulary.
public struct HarmonyFormattingTokens: Sendable, Equatable {
    public var start, end, message, channel, constrain, `return`, call: Int
    /// `<|endoftext|>`, when the vocabulary has it.
    public var endOfText: Int?

    public init(tokenizer: some HarmonyTokenizer) throws(HarmonyError) {
        func id(_ name: String) throws(HarmonyError) -> Int {
            guard let id = tokenizer.tokenID(for: name) else { throw .missingSpecialToken(name) }
            return id
        }
        start = try id("<|start|>")
        end = try id("<|end|>")
        message = try id("<|message|>")
        channel = try id("<|channel|>")
        constrain = try id("<|constrain|>")
        `return` = try id("<|return|>")
        call = try id("<|call|>")
        endOfText = tokenizer.tokenID(for: "<|endoftext|>")
    }
}

/// Renders harmony conversations to ids and makes parsers for completions (openai-harmony's
/// `HarmonyEncoding` for `HARMONY_GPT_OSS`).
public struct HarmonyEncoding: Sendable {
    public let tokenizer: any HarmonyTokenizer
    public let formattingTokens: HarmonyFormattingTokens

    public init(tokenizer: some HarmonyTokenizer) throws(HarmonyError) {
        self.tokenizer = tokenizer
        formattingTokens = try HarmonyFormattingTokens(tokenizer: tokenizer)
    }

    /// Tokens that end a sampled message: `<|return|>`, `<|end|>` and `<|call|>`.
    public var stopTokens: Set<Int> { [formattingTokens.return, formattingTokens.end, formattingTokens.call] }

    /// Tokens that end an assistant turn: `<|return|>` (answer done) and `<|call|>` (tool call).
    public var stopTokensForAssistantActions: Set<Int> { [formattingTokens.return, formattingTokens.call] }

    // MARK: - Conversations

    /// The prompt for the next turn: the conversation, then `<|start|>{nextTurnRole}`.
    public func renderConversationForCompletion(_ conversation: HarmonyConversation, nextTurnRole: HarmonyRole = .assistant,
                                                config: HarmonyRenderConfig = .init()) throws(HarmonyError) -> [Int] {
        var out = try renderConversation(conversation, config: config)
        out.append(formattingTokens.start)
        out += tokenizer.encodeOrdinary(nextTurnRole.rawValue)
        return out
    }

    /// The conversation's messages, each closed by `<|end|>` or `<|call|>`.
    public func renderConversation(_ conversation: HarmonyConversation,
                                   config: HarmonyRenderConfig = .init()) throws(HarmonyError) -> [Int] {
        let messages = conversation.messages
        let hasFunctionTools = messages.contains { message in
            message.content.contains { item in
                if case .developer(let dev) = item, let ns = dev.tools?["functions"] { return !ns.tools.isEmpty }
                return false
            }
        }
        let lastAssistantIsFinal = messages.last { $0.role == .assistant }?.channel == "final"
        let dropAnalysis = config.autoDropAnalysis && lastAssistantIsFinal
        let firstFinal = messages.firstIndex { $0.channel == "final" }

        var out: [Int] = []
        for (index, message) in messages.enumerated() {
            if dropAnalysis, let firstFinal, index < firstFinal, message.channel == "analysis" { continue }
            try render(message, index: index, hasFunctionTools: hasFunctionTools, into: &out)
        }
        return out
    }

    /// The conversation for training: a last assistant `final` message ends in `<|return|>`.
    public func renderConversationForTraining(_ conversation: HarmonyConversation,
                                              config: HarmonyRenderConfig = .init()) throws(HarmonyError) -> [Int] {
        var out = try renderConversation(conversation, config: config)
        if let last = conversation.messages.last, last.role == .assistant, last.channel == "final", !out.isEmpty {
            out[out.count - 1] = formattingTokens.return
        }
        return out
    }

    /// One message on its own. `conversationHasFunctionTools` adds the commentary-channel line to
    /// system content, as the conversation renderers do when a developer declares `functions`.
    public func render(_ message: HarmonyMessage, conversationHasFunctionTools: Bool = false) throws(HarmonyError) -> [Int] {
        var out: [Int] = []
        try render(message, index: 0, hasFunctionTools: conversationHasFunctionTools, into: &out)
        return out
    }

    // MARK: - One message

    private func render(_ message: HarmonyMessage, index: Int, hasFunctionTools: Bool, into out: inout [Int]) throws(HarmonyError) {
        out.append(formattingTokens.start)
        if message.role == .tool {
            guard let name = message.name else { throw .toolMessageWithoutName(messageIndex: index) }
            out += tokenizer.encodeOrdinary(name)
        } else {
            out += tokenizer.encodeOrdinary(message.role.rawValue)
            if let name = message.name { out += tokenizer.encodeOrdinary(":" + name) }
        }
        if let recipient = message.recipient, recipient != "all" {
            out += tokenizer.encodeOrdinary(" to=" + recipient)
        }
        if let channel = message.channel {
            out.append(formattingTokens.channel)
            out += tokenizer.encodeOrdinary(channel)
        }
        if let contentType = message.contentType {
            let marker = "<|constrain|>".utf8
            if contentType.utf8.starts(with: marker) {
                out += tokenizer.encodeOrdinary(" ")
                out.append(formattingTokens.constrain)
                let rest = String(decoding: contentType.utf8.dropFirst(marker.count), as: UTF8.self)
                if !rest.isEmpty { out += tokenizer.encodeOrdinary(rest) }
            } else {
                out += tokenizer.encodeOrdinary(" " + contentType)
            }
        }
        out.append(formattingTokens.message)
        for item in message.content {
            switch item {
            case .text(let text):
                out += tokenizer.encodeOrdinary(text)
            case .system(let sys):
                guard message.role == .system else {
                    throw .contentNotAllowed(content: "system_content", role: message.role, messageIndex: index)
                }
                out += tokenizer.encodeOrdinary(Self.systemText(sys, hasFunctionTools: hasFunctionTools))
            case .developer(let dev):
                guard message.role == .developer else {
                    throw .contentNotAllowed(content: "developer_content", role: message.role, messageIndex: index)
                }
                out += tokenizer.encodeOrdinary(Self.developerText(dev))
            }
        }
        let isToolCall = message.role == .assistant && message.recipient != nil
        out.append(isToolCall ? formattingTokens.call : formattingTokens.end)
    }

    // MARK: - System and developer text

    /// The text of a system message: identity/cutoff/date, reasoning, builtin tools, channels.
    public static func systemText(_ sys: HarmonySystemContent, hasFunctionTools: Bool) -> String {
        var sections: [String] = []
        let top = [sys.modelIdentity, sys.knowledgeCutoff.map { "Knowledge cutoff: \($0)" },
                   sys.conversationStartDate.map { "Current date: \($0)" }].compactMap { $0 }
        if !top.isEmpty { sections.append(top.joined(separator: "\n")) }
        if let effort = sys.reasoningEffort { sections.append("Reasoning: \(effort.rawValue.lowercased())") }
        if let tools = sys.tools, !tools.isEmpty { sections.append(toolsSection(tools)) }
        if let channels = sys.channelConfig, !channels.validChannels.isEmpty {
            var header = "# Valid channels: \(channels.validChannels.joined(separator: ", "))."
            if channels.channelRequired { header += " Channel must be included for every message." }
            if hasFunctionTools { header += "\nCalls to these tools must go to the commentary channel: 'functions'." }
            sections.append(header)
        }
        return sections.joined(separator: "\n\n")
    }

    /// The text of a developer message: `# Instructions` and the `# Tools` namespaces.
    public static func developerText(_ dev: HarmonyDeveloperContent) -> String {
        var sections: [String] = []
        if let instructions = dev.instructions { sections += ["# Instructions", instructions] }
        if let tools = dev.tools, !tools.isEmpty { sections.append(toolsSection(tools)) }
        return sections.joined(separator: "\n\n")
    }
}
