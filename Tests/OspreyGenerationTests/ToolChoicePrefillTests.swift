// The reply prefix that forces a tool call (ChatFormat.replyPrefix) in gpt-oss's real vocabulary:
// its ids must be the ids openai-harmony gives the same header inside a model-written call (the
// harmony.jsonl completion `parse/analysis_then_tool_call`), so a prefilled call is tokenized as
// gpt-oss writes one; and a reply continued after the prefix parses into that call. Template
// models have no prefix (a forced choice is only declared there).
import Foundation
import Testing
@testable import OspreyTokenizers
import OspreyJinja
@testable import OspreyGeneration

@Suite struct ToolChoicePrefillTests {
    @Test(.enabled(if: SharedData.available)) func prefillIsTheHeaderGptOssWrites() throws {
        let format = try ChatTests.harmony()
        let completion = ChatTests.ids(try ChatTests.fixture("fixtures/tokenizers/harmony.jsonl", id: "parse/analysis_then_tool_call")["ids"])
        let named = try #require(format.replyPrefix(forcing: .function("get_current_weather")))
        let any = try #require(format.replyPrefix(forcing: .anyFunction))
        // The named header ends where the arguments begin; "any" stops before `.get` (one token).
        let start = try #require(completion.indices.first { completion[$0...].starts(with: named) }, "\(named) not in \(completion)")
        #expect(completion[start...].starts(with: any))
        let arguments = Array(completion[(start + named.count)...])
        let reply = format.parseReply(arguments, replyPrefix: named)
        #expect(reply.toolCalls == [ToolCall(name: "get_current_weather", arguments: #"{"location": "Paris", "format": "celsius"}"#)])
        #expect(reply.content.isEmpty && reply.reasoning.isEmpty && reply.formatError == nil)
        // After the shorter prefix the model names the function itself.
        let rest = Array(completion[(start + any.count)...])
        #expect(format.parseReply(rest, replyPrefix: any).toolCalls == reply.toolCalls)
    }

    @Test func templateModelsHaveNoPrefix() throws {
        let template = try ChatTemplate(source: "{% for m in messages %}{{ m.content }}{% endfor %}")
        try withRandomFolder { dir in
            let tokenizer = try OspreyTokenizers.loadTokenizer(at: dir)
            let format = ChatFormat(template: template, tokenizer: tokenizer)
            #expect(format.replyPrefix(forcing: .anyFunction) == nil)
            #expect(format.replyPrefix(forcing: .function("f")) == nil)
        }
    }
}
