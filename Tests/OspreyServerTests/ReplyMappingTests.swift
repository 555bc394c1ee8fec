// The reply-to-response mapping as a unit, on harmony replies written token by token with the
// random tokenizer (random weights almost never produce a well-formed tool call): analysis text
// becomes `reasoning_content`, final text `content`, a commentary-channel call to
// `functions.NAME` a `tool_calls` entry with finish_reason "tool_calls"; spelled-out special tokens
// never reach the text; and the encoded response has OpenAI's shape.
import Foundation
import Testing
import OspreyGeneration
@testable import OspreyServer

@Suite struct ReplyMappingTests {
    /// Ids of `parts`: `<|...|>` parts are special tokens, the rest plain text.
    static func ids(_ parts: [String], _ loaded: LoadedModel) throws -> [Int32] {
        let tokenizer = try loaded.requireTokenizer()
        var out: [Int32] = []
        for part in parts {
            if part.hasPrefix("<|") {
                out.append(Int32(try #require(tokenizer.tokenID(for: part), "no token \(part)")))
            } else {
                out += try tokenizer.encode(part, addSpecialTokens: false).map { Int32($0) }
            }
        }
        return out
    }

    static func run(_ ids: [Int32], _ format: ChatFormat, stop: [String] = []) -> (ChatReplyStream, [ChatDeltaBody]) {
        var n = 0
        var reply = ChatReplyStream(format: format, stop: stop, makeID: { n += 1; return "call_\(n)" })
        var deltas: [ChatDeltaBody] = []
        for id in ids { deltas += reply.append(id) }
        deltas += reply.finish()
        return (reply, deltas)
    }

    @Test func commentaryCallBecomesToolCalls() throws {
        let loaded = try Fixture.loaded()
        let format = try loaded.requireChatFormat()
        let ids = try Self.ids(["<|channel|>", "analysis", "<|message|>", "Need weather.", "<|end|>",
                                "<|start|>", "assistant", "<|channel|>", "commentary to=functions.get_weather ", "<|constrain|>", "json",
                                "<|message|>", #"{"city": "Paris"}"#, "<|call|>"], loaded)
        let (reply, deltas) = Self.run(ids, format)
        #expect(reply.reasoning == "Need weather.")
        #expect(reply.content == "")
        #expect(reply.finishReason(.eos) == "tool_calls")
        let message = reply.message
        #expect(message.content == nil)
        let calls = try #require(message.toolCalls)
        #expect(calls == [ResponseToolCall(id: "call_1", function: FunctionCall(name: "get_weather", arguments: #"{"city": "Paris"}"#))])
        // Streamed: the call arrives whole in one delta, with its index.
        let streamed = deltas.compactMap(\.toolCalls).flatMap { $0 }
        #expect(streamed.count == 1 && streamed[0].index == 0 && streamed[0].function.name == "get_weather")
        #expect(deltas.compactMap(\.reasoningContent).joined() == "Need weather.")

        // The encoded response: content null, arguments a JSON string.
        let completion = ChatCompletion(id: "chatcmpl-1", created: 0, model: "tiny",
                                        choices: [.init(message: message, finishReason: reply.finishReason(.eos))],
                                        usage: Usage(prompt: 3, completion: ids.count))
        let json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(completion)) as? [String: Any])
        let choice = try #require(firstChoice(json))
        #expect(choice["finish_reason"] as? String == "tool_calls")
        let encoded = try #require(choice["message"] as? [String: Any])
        #expect(encoded["content"] is NSNull)
        let call = try #require((encoded["tool_calls"] as? [[String: Any]])?.first)
        #expect(call["id"] as? String == "call_1")
        #expect(call["type"] as? String == "function")
        #expect((call["function"] as? [String: Any])?["arguments"] as? String == #"{"city": "Paris"}"#)
        #expect(call["index"] == nil)
    }

    @Test func analysisAndFinalChannels() throws {
        let loaded = try Fixture.loaded()
        let ids = try Self.ids(["<|channel|>", "analysis", "<|message|>", "Think.", "<|end|>",
                                "<|start|>", "assistant", "<|channel|>", "final", "<|message|>", "Hello there.", "<|return|>"], loaded)
        let (reply, deltas) = Self.run(ids, try loaded.requireChatFormat())
        #expect(reply.reasoning == "Think.")
        #expect(reply.content == "Hello there.")
        #expect(reply.finishReason(.eos) == "stop")
        #expect(reply.message.toolCalls == nil)
        #expect(deltas.compactMap(\.content).joined() == "Hello there.")
        // A stop string cuts the content and ends the reply.
        let (cut, _) = Self.run(ids, try loaded.requireChatFormat(), stop: [" there"])
        #expect(cut.content == "Hello")
        #expect(cut.stopped && cut.finishReason(.length) == "stop")
    }

    @Test func malformedHarmonyNeverLeaksSpecialTokens() throws {
        let loaded = try Fixture.loaded()
        // Text before any header, then stray control tokens: the parser falls back to plain text.
        let ids = try Self.ids(["oops", "<|message|>", "more", "<|start|>", "<|end|>", "text", "<|channel|>"], loaded)
        let (reply, deltas) = Self.run(ids, try loaded.requireChatFormat())
        for text in [reply.content, reply.reasoning] + deltas.compactMap(\.content) { #expect(!text.contains("<|"), "\(text)") }
    }

    @Test func specialTokenTextIsStripped() {
        #expect(SpecialTokenText.strip("a<|start|>b<|reserved_200013|>c") == "abc")
        #expect(SpecialTokenText.strip("x <| y |> z") == "x <| y |> z")
        #expect(SpecialTokenText.strip("1 <|2") == "1 <|2")
    }
}
