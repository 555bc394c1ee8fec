// tool_choice enforcement: "required" and a named function prefill the start of the reply
// (ChatFormat.replyPrefix), so the rendered prompt ends with a harmony tool-call header and the
// reply parser reads what follows it as that call's arguments. On the random model these check
// the prompt and the parsing; with the trained tool caller (Models/osprey-tiny-tool-caller) they
// check that a forced choice makes a real model call the tool where, left to itself, it answers.
import Foundation
import Testing
import OspreyGeneration
import OspreyModels
@testable import OspreyServer

@Suite struct ToolChoiceTests {
    static let weather = #"{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}"#
    static let time = #"{"type": "function", "function": {"name": "get_time", "description": "The time in a city"}}"#
    static let named = #"{"type": "function", "function": {"name": "get_weather"}}"#

    /// A chat request body; `maxTokens` 128 fits the trained model's replies (one token per byte: a call is ~60).
    static func body(_ user: String, tools: [String], choice: String?, maxTokens: Int = 24) -> String {
        #"{"messages": [{"role": "user", "content": "\#(user)"}], "tools": [\#(tools.joined(separator: ", "))]"#
            + (choice.map { #", "tool_choice": \#($0)"# } ?? "") + #", "max_tokens": \#(maxTokens), "temperature": 0}"#
    }

    static func prompt(_ body: String, _ loaded: LoadedModel) throws -> (prompt: [Int32], replyPrefix: [Int32]) {
        try ServedModel.chatPrompt(body: Data(body.utf8), loaded: loaded)
    }

    static func text(_ ids: [Int32], _ loaded: LoadedModel) throws -> String {
        try loaded.requireTokenizer().decode(ids.map { Int($0) }, skipSpecialTokens: false)
    }

    @Test func forcedChoicesEndThePromptWithACallHeader() throws {
        let loaded = try Fixture.loaded()
        let auto = try Self.prompt(Self.body("Hi", tools: [Self.weather, Self.time], choice: #""auto""#), loaded)
        #expect(auto.replyPrefix.isEmpty)
        #expect(try Self.text(auto.prompt, loaded).hasSuffix("<|start|>assistant"))

        let named = try Self.prompt(Self.body("Hi", tools: [Self.weather, Self.time], choice: Self.named), loaded)
        #expect(Array(named.prompt.dropLast(named.replyPrefix.count)) == auto.prompt)
        #expect(try Self.text(named.replyPrefix, loaded) == "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>")

        // "required": any of several tools leaves the name to the model; with one tool it is that one.
        let any = try Self.prompt(Self.body("Hi", tools: [Self.weather, Self.time], choice: #""required""#), loaded)
        #expect(Array(any.prompt.dropLast(any.replyPrefix.count)) == auto.prompt)
        #expect(try Self.text(any.replyPrefix, loaded) == "<|channel|>commentary to=functions")
        let one = try Self.prompt(Self.body("Hi", tools: [Self.weather], choice: #""required""#), loaded)
        #expect(try Self.text(one.replyPrefix, loaded) == "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>")

        // "none" declares no tools and prefills nothing.
        let none = try Self.prompt(Self.body("Hi", tools: [Self.weather], choice: #""none""#), loaded)
        let noneText = try Self.text(none.prompt, loaded)
        #expect(none.replyPrefix.isEmpty && !noneText.contains("get_weather"))
    }

    @Test func theReplyAfterAPrefillIsTheCall() throws {
        let loaded = try Fixture.loaded()
        let format = try loaded.requireChatFormat()
        for (tools, rest) in [([Self.weather], [#"{"city":"Paris"}"#, "<|call|>"]),
                              ([Self.weather, Self.time], [".get_weather ", "<|constrain|>", "json", "<|message|>", #"{"city":"Paris"}"#, "<|call|>"])] {
            let choice = tools.count == 1 ? Self.named : #""required""#
            let (_, prefix) = try Self.prompt(Self.body("Hi", tools: tools, choice: choice), loaded)
            var reply = ChatReplyStream(format: format, replyPrefix: prefix, makeID: { "call_1" })
            var deltas: [ChatDeltaBody] = []
            for id in try ReplyMappingTests.ids(rest, loaded) { deltas += reply.append(id) }
            deltas += reply.finish()
            #expect(reply.finishReason(.eos) == "tool_calls")
            #expect(reply.toolCalls == [ResponseToolCall(index: 0, id: "call_1", function: FunctionCall(name: "get_weather", arguments: #"{"city":"Paris"}"#))])
            #expect(reply.content.isEmpty && deltas.allSatisfy { $0.content == nil })
            // The same through the whole-reply parser.
            let parsed = format.parseReply(try ReplyMappingTests.ids(rest, loaded), replyPrefix: prefix)
            #expect(parsed.toolCalls == [ToolCall(name: "get_weather", arguments: #"{"city":"Paris"}"#)] && parsed.formatError == nil)
        }
    }

    @Test func requiredNeedsToolsAndResponsesForceAlike() async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let bare = try await client.post("/v1/chat/completions",
                                                 #"{"messages": [{"role": "user", "content": "Hi"}], "tool_choice": "required"}"#)
                #expect(bare.status == .badRequest)
                #expect(try bare.error()["param"] as? String == "tool_choice")
                // The Responses API prefills the same header: the same prompt length as chat's.
                let chat = try await client.post("/v1/chat/completions", Self.body("Hi", tools: [Self.weather], choice: Self.named))
                #expect(chat.status == .ok, "\(chat.text)")
                let responses = try await client.post("/v1/responses", #"""
                    {"input": "Hi", "max_output_tokens": 4, "tool_choice": {"type": "function", "name": "get_weather"},
                     "tools": [{"type": "function", "name": "get_weather", "description": "Weather of a city",
                                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}
                    """#)
                #expect(responses.status == .ok, "\(responses.text)")
                let chatTokens = (try chat.object()["usage"] as? [String: Int])?["prompt_tokens"]
                let responsesTokens = (try responses.object()["usage"] as? [String: Int])?["input_tokens"]
                #expect(chatTokens != nil && responsesTokens == chatTokens)
            }
        }
    }

    // MARK: - The trained tool caller

    static let toolCaller = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Models/osprey-tiny-tool-caller")
    /// tools/train_tool_caller.py's tool, as it was trained with.
    static let trainedTool = #"{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city.", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}}, "required": ["city"]}}}"#

    @Test func aForcedChoiceMakesTheTrainedModelCall() async throws {
        let loaded = try LoadedModel.load(Self.toolCaller, device: .cpu)
        try await withServed(loaded: loaded) { served in
            try await withClient(served) { client in
                func message(_ body: String) async throws -> (String?, [String: Any]) {
                    let response = try await client.post("/v1/chat/completions", body)
                    #expect(response.status == .ok, "\(response.text)")
                    let choice = try #require(firstChoice(try response.object()))
                    return (choice["finish_reason"] as? String, try #require(choice["message"] as? [String: Any]))
                }
                // Left to itself it answers small talk; forced, it calls get_weather.
                let (free, answer) = try await message(Self.body("Hello!", tools: [Self.trainedTool], choice: nil, maxTokens: 128))
                #expect(free == "stop" && answer["tool_calls"] == nil && !((answer["content"] as? String) ?? "").isEmpty, "\(answer)")
                for choice in [Self.named, #""required""#] {
                    let (finish, call) = try await message(Self.body("Hello!", tools: [Self.trainedTool], choice: choice, maxTokens: 128))
                    #expect(finish == "tool_calls", "\(call)")
                    let function = try #require((call["tool_calls"] as? [[String: Any]])?.first?["function"] as? [String: Any])
                    #expect(function["name"] as? String == "get_weather")
                    let arguments = try #require((function["arguments"] as? String).map { Data($0.utf8) })
                    #expect((try JSONSerialization.jsonObject(with: arguments) as? [String: String])?["city"] != nil)
                }
                // A weather question calls it unforced, with the city of the question.
                let (finish, call) = try await message(Self.body("What is the weather in Tokyo?", tools: [Self.trainedTool], choice: #""auto""#, maxTokens: 128))
                #expect(finish == "tool_calls")
                let function = (call["tool_calls"] as? [[String: Any]])?.first?["function"] as? [String: Any]
                #expect(function?["arguments"] as? String == #"{"city":"Tokyo"}"#, "\(call)")
            }
        }
    }
}
