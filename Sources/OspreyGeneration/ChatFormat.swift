// How a model's chats become prompt ids. gpt-oss speaks harmony: the chat is mapped onto harmony
// messages the way its chat template maps them (system and developer text become the developer
// message's instructions, tools the `functions` namespace, reasoning the analysis channel, tool
// calls commentary messages to `functions.NAME` with `<|constrain|>json`, tool results messages from
// `functions.NAME`) and rendered by OspreyTokenizers' HarmonyEncoding, id-exact with openai-harmony.
// Other models render the folder's Jinja chat template with the variables transformers'
// apply_chat_template passes, and encode the text without adding special tokens. A tool_choice
// that forces a call becomes a prefilled start of the reply (`replyPrefix`, harmony only).
import Foundation
import OspreyJinja
import OspreyTokenizers

/// A tool call the reply must make (OpenAI's tool_choice "required", or a named function).
public enum ForcedToolCall: Sendable, Equatable {
    /// Some function among the request's tools.
    case anyFunction
    /// This function.
    case function(String)
}

/// A model's chat format: harmony, or a Jinja chat template.
public struct ChatFormat: Sendable {
    /// Harmony or a template.
    public enum Kind: Sendable {
        case harmony(HarmonyEncoding)
        /// A template and the special-token strings it may use (`bos_token`, `eos_token`, ...).
        case template(ChatTemplate, specialTokens: [String: String])
    }

    /// Which format.
    public let kind: Kind
    /// The tokenizer prompts are encoded and replies decoded with.
    public let tokenizer: any Tokenizer

    /// Harmony over `tokenizer`, which must have harmony's formatting tokens.
    public static func harmony(tokenizer: any Tokenizer & HarmonyTokenizer) throws -> ChatFormat {
        ChatFormat(kind: .harmony(try HarmonyEncoding(tokenizer: tokenizer)), tokenizer: tokenizer)
    }

    /// A Jinja chat template.
    public init(template: ChatTemplate, tokenizer: any Tokenizer, specialTokens: [String: String] = [:]) {
        self.init(kind: .template(template, specialTokens: specialTokens), tokenizer: tokenizer)
    }

    init(kind: Kind, tokenizer: any Tokenizer) {
        (self.kind, self.tokenizer) = (kind, tokenizer)
    }

    /// Ids that end an assistant turn: harmony's `<|return|>` and `<|call|>`, or the template's eos token.
    public var stopTokenIds: [Int32] {
        switch kind {
        case .harmony(let h): [h.formattingTokens.return, h.formattingTokens.call].map { Int32($0) }
        case .template(_, let special): special["eos_token"].flatMap { tokenizer.tokenID(for: $0) }.map { [Int32($0)] } ?? []
        }
    }

    /// The prompt ids of `messages`; with `addGenerationPrompt`, ending where the assistant's reply begins.
    /// `date` (YYYY-MM-DD) is harmony's `Current date:` line.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true, reasoningEffort: ReasoningEffort? = nil,
                       tools: [ToolSpec] = [], date: String? = nil) throws -> [Int32] {
        switch kind {
        case .harmony(let encoding):
            let conversation = try harmonyConversation(messages, reasoningEffort: reasoningEffort, tools: tools, date: date)
            let ids = addGenerationPrompt ? try encoding.renderConversationForCompletion(conversation)
                                          : try encoding.renderConversation(conversation)
            return ids.map { Int32($0) }
        case .template(let template, let special):
            var kwargs = JinjaObject([("add_generation_prompt", .bool(addGenerationPrompt))])
            for (key, value) in special.sorted(by: { $0.key < $1.key }) { kwargs[key] = .string(value) }
            if let reasoningEffort { kwargs["reasoning_effort"] = .string(reasoningEffort.rawValue) }
            let context = ChatTemplate.context(messages: try jinjaMessages(messages),
                                               tools: tools.isEmpty ? nil : try .array(tools.map(jinjaTool)), kwargs: kwargs)
            let text: String
            do { text = try template.render(context) } catch { throw ChatError.template(error.description) }
            return try tokenizer.encode(text, addSpecialTokens: false).map { Int32($0) }
        }
    }

    /// The ids that begin the assistant's reply when `tool_choice` forces a call, to append to a
    /// generation prompt (ChatReplyParser reads them as the reply's start); nil when this format
    /// cannot force one.
    ///
    /// Harmony: a prefilled header. Named function: `<|channel|>commentary to=functions.NAME
    /// <|constrain|>json<|message|>`, the exact header gpt-oss writes before a call, so all that is
    /// left to the model is the arguments and `<|call|>`. Any function ("required"):
    /// `<|channel|>commentary to=functions`, so the model picks the name and the rest of the
    /// header itself; the prefill stops before the dot because o200k joins it to the name (`.get`
    /// is one token), and a lone `.` is a split gpt-oss never wrote. The price is the analysis message the model would otherwise write first: the
    /// prefill is the turn's first message, so a forced call comes without reasoning. Keeping the
    /// reasoning would need constrained decoding that switches on after the analysis message ends
    /// (what vLLM's harmony work does with JSON-schema grammars), which the engine does not have.
    /// The pieces are encoded separately, as HarmonyEncoding renders a header (channel, " to=...",
    /// " " before `<|constrain|>`, the content type), so the ids are those of a rendered call.
    /// Templates: nil; each template spells tool calls its own way, and no grammar holds the model
    /// to one, so there a forced choice is only declared, not enforced.
    public func replyPrefix(forcing: ForcedToolCall) -> [Int32]? {
        guard case .harmony(let encoding) = kind else { return nil }
        let t = encoding.formattingTokens, text = encoding.tokenizer.encodeOrdinary
        var ids = [t.channel] + text("commentary")
        switch forcing {
        case .anyFunction: ids += text(" to=functions")
        case .function(let name): ids += text(" to=functions." + name) + text(" ") + [t.constrain] + text("json") + [t.message]
        }
        return ids.map { Int32($0) }
    }

    // MARK: - Harmony

    func harmonyConversation(_ messages: [ChatMessage], reasoningEffort: ReasoningEffort?, tools: [ToolSpec],
                             date: String?) throws -> HarmonyConversation {
        var system = HarmonySystemContent()
        system.reasoningEffort = switch reasoningEffort ?? .medium {
        case .low: .low
        case .medium: .medium
        case .high: .high
        }
        system.conversationStartDate = date
        var out = [HarmonyMessage(role: .system, content: [.system(system)])]
        let instructions = messages.filter { $0.role == .system || $0.role == .developer }.map(\.content)
        var developer = HarmonyDeveloperContent(instructions: instructions.isEmpty ? nil : instructions.joined(separator: "\n\n"))
        if !tools.isEmpty {
            let described = try tools.map { tool in
                do {
                    return HarmonyToolDescription(name: tool.name, description: tool.description,
                                                  parameters: try tool.parameters.map { try HarmonyJSON.parse($0) })
                } catch { throw ChatError.invalidToolSchema(tool: tool.name, "\(error)") }
            }
            developer.tools = ["functions": HarmonyToolNamespace(name: "functions", tools: described)]
        }
        if developer.instructions != nil || developer.tools != nil {
            out.append(HarmonyMessage(role: .developer, content: [.developer(developer)]))
        }
        var lastCall: String?
        for (i, m) in messages.enumerated() {
            switch m.role {
            case .system, .developer: continue
            case .user: out.append(HarmonyMessage(role: .user, text: m.content))
            case .assistant:
                if let r = m.reasoning, !r.isEmpty { out.append(HarmonyMessage(role: .assistant, text: r, channel: "analysis")) }
                if m.toolCalls.isEmpty {
                    out.append(HarmonyMessage(role: .assistant, text: m.content, channel: "final"))
                    continue
                }
                if !m.content.isEmpty { out.append(HarmonyMessage(role: .assistant, text: m.content, channel: "commentary")) }
                for call in m.toolCalls {
                    out.append(HarmonyMessage(role: .assistant, content: [.text(call.arguments)], channel: "commentary",
                                              recipient: "functions.\(call.name)", contentType: "<|constrain|>json"))
                    lastCall = call.name
                }
            case .tool:
                guard let name = m.name ?? lastCall else {
                    throw ChatError.invalidMessage(index: i, "a tool result needs the tool's name (no earlier tool call names it)")
                }
                out.append(HarmonyMessage(role: .tool, name: "functions.\(name)", content: [.text(m.content)],
                                          channel: "commentary", recipient: "assistant"))
            }
        }
        return HarmonyConversation(messages: out)
    }

    // MARK: - Jinja

    private func jinjaMessages(_ messages: [ChatMessage]) throws -> JinjaValue {
        .array(messages.map { m in
            var o = JinjaObject([("role", .string(m.role.rawValue)), ("content", .string(m.content))])
            if let r = m.reasoning {
                o["thinking"] = .string(r)            // gpt-oss's template
                o["reasoning_content"] = .string(r)   // Qwen3's
            }
            if !m.toolCalls.isEmpty {
                o["tool_calls"] = .array(m.toolCalls.map { call in
                    let arguments = (try? JinjaValue(json: call.arguments)) ?? .string(call.arguments)
                    return .object(JinjaObject([("type", "function"), ("function", .object(JinjaObject([
                        ("name", .string(call.name)), ("arguments", arguments)])))]))
                })
            }
            if let n = m.name { o["name"] = .string(n) }
            return .object(o)
        })
    }

    private func jinjaTool(_ tool: ToolSpec) throws -> JinjaValue {
        var function = JinjaObject([("name", .string(tool.name)), ("description", .string(tool.description))])
        if let p = tool.parameters {
            do { function["parameters"] = try JinjaValue(json: p) } catch { throw ChatError.invalidToolSchema(tool: tool.name, "\(error)") }
        }
        return .object(JinjaObject([("type", "function"), ("function", .object(function))]))
    }
}
