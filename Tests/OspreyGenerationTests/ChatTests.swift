// Chat: messages rendered to the ids openai-harmony gives for the same conversation (harmony.jsonl
// fixtures, o200k vocabulary), replies parsed back into reasoning, answer and tool calls (the
// fixtures' completions) and rendered again into the history; a Jinja template model renders what
// transformers renders (chat_templates fixtures) and its replies split <think> and <tool_call>;
// a random-weight model's malformed harmony never throws.
import Foundation
import Testing
@testable import OspreyTokenizers
import OspreyJinja
@testable import OspreyGeneration

@Suite struct ChatTests {
    static let weatherTool = ToolSpec(name: "get_current_weather", description: "Gets the current weather in the provided location.",
                                      parameters: #"{"type": "object", "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}, "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}}, "required": ["location"]}"#)

    static func fixture(_ file: String, id: String) throws -> HarmonyJSON {
        let line = try #require(SharedData.jsonLines(file).first { $0.contains("\"id\": \"\(id)\"") }, "no fixture \(id)")
        return try HarmonyJSON.parse(line)
    }

    static func ids(_ value: HarmonyJSON?) -> [Int32] {
        (value?.arrayValue ?? []).compactMap { if case .number(let n) = $0 { return Int32(n.text) } else { return nil } }
    }

    static func harmony() throws -> ChatFormat {
        try ChatFormat.harmony(tokenizer: TiktokenEncoding.o200kHarmony(vocabDirectory: SharedData.data, definition: .openAIHarmony))
    }

    @Test(.enabled(if: SharedData.available)) func harmonyPromptsMatchOpenAIHarmony() throws {
        let format = try Self.harmony()
        // A tool call and its result, with reasoning before the call.
        let history: [ChatMessage] = [
            .user("What is the weather in SF?"),
            .assistant("", reasoning: "User asks for the weather in SF. We need to use get_current_weather.",
                       toolCalls: [ToolCall(name: "get_current_weather", arguments: #"{"location": "San Francisco, CA"}"#)]),
            .tool(#"{"temperature": 20, "unit": "celsius", "description": "sunny"}"#),
        ]
        let got = try format.render(history, tools: [Self.weatherTool], date: "2025-06-28")
        #expect(got == Self.ids(try Self.fixture("fixtures/tokenizers/harmony.jsonl", id: "tool_call_and_result/completion")["ids"]))
        // Developer instructions come from the system message; reasoning effort goes to the system message.
        let record = try Self.fixture("fixtures/tokenizers/harmony.jsonl", id: "dev_instructions/completion")
        let conversation = try HarmonyConversation(json: record["conversation"]!)
        var messages: [ChatMessage] = []
        var effort: ReasoningEffort?
        var date: String?
        for m in conversation.messages {
            for case .system(let s) in m.content {
                effort = s.reasoningEffort.map { ReasoningEffort(rawValue: $0.rawValue.lowercased())! }
                date = s.conversationStartDate
            }
            for case .developer(let d) in m.content { messages.append(.system(d.instructions ?? "")) }
            if m.role == .user { messages.append(.user(m.text)) }
        }
        #expect(messages.count >= 2)
        #expect(try format.render(messages, reasoningEffort: effort, date: date) == Self.ids(record["ids"]))
    }

    @Test(.enabled(if: SharedData.available)) func harmonyRepliesParseBackAndRoundTrip() throws {
        let format = try Self.harmony()
        func reply(_ id: String) throws -> ChatReply {
            format.parseReply(Self.ids(try Self.fixture("fixtures/tokenizers/harmony.jsonl", id: id)["ids"]))
        }
        #expect(try reply("parse/final_only") == ChatReply(content: "2 + 2 equals 4."))
        #expect(try reply("parse/analysis_then_final") == ChatReply(reasoning: "User asks a simple question. Answer: 4.", content: "2 + 2 = 4."))
        #expect(try reply("parse/analysis_then_tool_call") == ChatReply(
            reasoning: "Need weather; call tool.",
            toolCalls: [ToolCall(name: "get_current_weather", arguments: #"{"location": "Paris", "format": "celsius"}"#)]))
        #expect(try reply("parse/commentary_preamble_then_call") == ChatReply(
            content: "Checking the weather now.", toolCalls: [ToolCall(name: "get_current_weather", arguments: #"{"location": "Lima"}"#)]))
        // Streaming deltas add up to the reply.
        var parser = ChatReplyParser(format: format)
        var deltas: [ChatDelta] = []
        for id in Self.ids(try Self.fixture("fixtures/tokenizers/harmony.jsonl", id: "parse/analysis_then_final")["ids"]) {
            deltas += parser.append(id)
        }
        deltas += parser.finish()
        #expect(deltas.count > 2)
        #expect(deltas.compactMap { if case .content(let t) = $0 { t } else { nil } }.joined() == "2 + 2 = 4.")
        // The parsed reply, put back in the history, renders as the harmony messages the fixture
        // parsed from the completion (openai-harmony's rendering of them).
        let record = try Self.fixture("fixtures/tokenizers/harmony.jsonl", id: "parse/analysis_then_tool_call")
        let call = try reply("parse/analysis_then_tool_call")
        let rendered = try format.render([.user("Weather in Paris?"), call.message], addGenerationPrompt: false)
        guard case .harmony(let encoding) = format.kind else { Issue.record("not harmony"); return }
        let expected = try (record["messages"]?.arrayValue ?? []).flatMap { try encoding.render(HarmonyMessage(json: $0)) }
        #expect(expected.count > 10)
        #expect(rendered.suffix(expected.count).map(Int.init) == expected)
        // A reply cut off (max_tokens) inside a header surfaces none of it, after a complete message
        // or alone; the complete message before it stays.
        let tool = Self.ids(try Self.fixture("fixtures/tokenizers/harmony.jsonl", id: "parse/analysis_then_tool_call")["ids"])
        // o200k_harmony: <|message|> 200008, <|end|> 200007.
        let message = try #require(tool.firstIndex(of: 200_008)), end = try #require(tool.firstIndex(of: 200_007))
        let callMessage = try #require(tool.lastIndex(of: 200_008))  // the call's header ends there
        #expect(callMessage > end + 4)
        for cut in [message - 1, end + 4, callMessage] {
            let partial = format.parseReply(Array(tool.prefix(cut)))
            #expect(partial.content.isEmpty && partial.toolCalls.isEmpty && partial.formatError == nil, "cut at \(cut): \(partial)")
            #expect(cut <= end || partial.reasoning == "Need weather; call tool.", "cut at \(cut): \(partial)")
        }
    }

    @Test(.enabled(if: SharedData.available)) func jinjaTemplateModelsRenderAsTransformers() throws {
        let tokenizer = try HFTokenizer(tokenizerJSON: SharedData.data.appendingPathComponent("qwen2.tokenizer.json"))
        let source = try String(contentsOf: SharedData.data.appendingPathComponent("qwen3-8b.chat_template.jinja"), encoding: .utf8)
        let format = ChatFormat(template: try ChatTemplate(source: source), tokenizer: tokenizer,
                                specialTokens: ["eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"])
        let tool = ToolSpec(name: "get_current_weather", description: "Get the current weather in a given location",
                            parameters: #"{"type": "object", "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}"#)
        let messages: [ChatMessage] = [
            .user("Weather in Paris?"),
            .assistant("", toolCalls: [ToolCall(name: "get_current_weather", arguments: #"{"location": "Paris, France", "unit": "celsius"}"#)]),
            .tool(#"{"temperature": 21, "condition": "sunny"}"#),
        ]
        let ids = try format.render(messages, tools: [tool])
        let expected = try Self.fixture("fixtures/chat_templates/cases.jsonl", id: "qwen3-8b/tool-call-and-result")["expected"]!.stringValue!
        #expect(try tokenizer.decode(ids.map(Int.init), skipSpecialTokens: false) == expected)
        #expect(ids == (try tokenizer.encode(expected, addSpecialTokens: false)).map { Int32($0) })
        #expect(format.stopTokenIds == [Int32(tokenizer.tokenID(for: "<|im_end|>")!)])
        // A reply with a think block and a tool call.
        let reply = format.parseReply(try tokenizer.encode(
            "<think>\nThey want weather.\n</think>\n\nLet me check.\n<tool_call>\n{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call><|im_end|>",
            addSpecialTokens: false).map { Int32($0) })
        #expect(reply.reasoning == "\nThey want weather.\n")
        #expect(reply.content == "Let me check.")
        #expect(reply.toolCalls == [ToolCall(name: "get_current_weather", arguments: #"{"location":"Paris"}"#)])
    }

    @Test func randomModelsChatWithoutThrowing() throws {
        try withRandomFolder(seed: 8) { dir in
            let lm = try LoadedModel.load(dir, device: .cpu)
            guard case .harmony? = lm.chatFormat?.kind else { Issue.record("a harmony vocabulary should give harmony"); return }
            let ids = try lm.applyChatTemplate([.system("Be brief."), .user("Hi")], reasoningEffort: .high)
            let text = try lm.requireTokenizer().decode(ids.map(Int.init), skipSpecialTokens: false)
            #expect(text.hasPrefix("<|start|>system<|message|>") && text.contains("Reasoning: high"))
            #expect(text.contains("<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>"))
            #expect(text.hasSuffix("<|start|>user<|message|>Hi<|end|><|start|>assistant"))
            var config = lm.generationConfig
            config.maxNewTokens = 30
            #expect(lm.chatConfig(config).eosTokenIds.contains(Int32(256 + 2)))  // <|return|>
            let reply = try lm.chat([.user("Hi")], config: config)
            #expect(reply.formatError != nil || !reply.content.isEmpty || !reply.reasoning.isEmpty || !reply.toolCalls.isEmpty)
        }
        try withRandomFolder(tokenizer: false) { dir in
            let lm = try LoadedModel.load(dir, device: .cpu)
            #expect(throws: GenerationError.self) { try lm.applyChatTemplate([.user("Hi")]) }
        }
    }
}
