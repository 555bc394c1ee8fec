// Harmony rendering: every render case of harmony.jsonl checked as text through a fake byte-level
// tokenizer (the id-exact checks against o200k are in HarmonyTiktokenTests.swift), plus the
// TypeScript tool rendering and JSON edge cases the fixtures do not reach.

import Foundation
import Testing
@testable import OspreyTokenizers

@Suite struct HarmonyRenderTests {
    @Test func fixturesArePresent() {
        #expect(HarmonyFixtures.renderIDs.count == 41)
        #expect(HarmonyFixtures.parseIDs.count == 9)
    }

    @Test(arguments: HarmonyFixtures.renderIDs)
    func renderedTextMatchesHarmony(id: String) throws {
        let record = HarmonyFixtures.record(id)
        let ids = try HarmonyEncoding.fake.render(record: record)
        let text = try FakeHarmonyTokenizer().text(ids)
        #expect(text == record["text"]?.stringValue)
    }

    @Test(arguments: HarmonyFixtures.renderIDs)
    func conversationJSONRoundTrips(id: String) throws {
        let conversation = try HarmonyConversation(json: HarmonyFixtures.record(id)["conversation"]!)
        let again = try HarmonyConversation(jsonText: conversation.json.compactText)
        #expect(again == conversation)
        let viaCodable = try JSONDecoder().decode(HarmonyConversation.self, from: JSONEncoder().encode(conversation))
        #expect(viaCodable.messages.count == conversation.messages.count)
    }

    @Test func missingSystemFieldsTakeHarmonyDefaultsAndNullRemovesThem() throws {
        let defaults = try HarmonyConversation(jsonText: #"{"messages":[{"role":"system","content":[{"type":"system_content"}]}]}"#)
        let text = try FakeHarmonyTokenizer().text(HarmonyEncoding.fake.renderConversation(defaults))
        #expect(text == "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>")
        let nulls = try HarmonyConversation(jsonText: #"{"messages":[{"role":"system","content":[{"type":"system_content","model_identity":null,"reasoning_effort":null,"knowledge_cutoff":"2025-01","channel_config":null}]}]}"#)
        #expect(try FakeHarmonyTokenizer().text(HarmonyEncoding.fake.renderConversation(nulls)) == "<|start|>system<|message|>Knowledge cutoff: 2025-01<|end|>")
    }

    @Test func namedAuthorRecipientAllAndContentTypes() throws {
        let messages = [
            HarmonyMessage(role: .user, name: "alice", content: [.text("hi")], recipient: "all"),
            HarmonyMessage(role: .assistant, content: [.text("x")], channel: "commentary", recipient: "python", contentType: "code"),
            HarmonyMessage(role: .assistant, content: [.text("{}")], channel: "commentary", contentType: "<|constrain|>"),
        ]
        let text = try FakeHarmonyTokenizer().text(HarmonyEncoding.fake.renderConversation(HarmonyConversation(messages: messages)))
        #expect(text == "<|start|>user:alice<|message|>hi<|end|><|start|>assistant to=python<|channel|>commentary code<|message|>x<|call|><|start|>assistant<|channel|>commentary <|constrain|><|message|>{}<|end|>")
    }

    @Test func invalidConversationsAreTypedErrors() throws {
        #expect(throws: HarmonyError.toolMessageWithoutName(messageIndex: 0)) {
            try HarmonyEncoding.fake.renderConversation(HarmonyConversation(messages: [HarmonyMessage(role: .tool, text: "r")]))
        }
        #expect(throws: HarmonyError.contentNotAllowed(content: "system_content", role: .user, messageIndex: 0)) {
            try HarmonyEncoding.fake.renderConversation(HarmonyConversation(messages: [HarmonyMessage(role: .user, content: [.system(.init())])]))
        }
        for bad in [#"{"messages": 3}"#, #"{"messages":[{"role":"bot","content":[]}]}"#, #"{"messages":[{"role":"user","content":[{"type":"image"}]}]}"#,
                    #"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#, #"{"messages":[{"role":"system","content":[{"type":"system_content","reasoning_effort":"Max"}]}]}"#,
                    "{", "[1,]", #"{"a":"\ud800"}"#, String(repeating: "[", count: 2000)] {
            #expect(throws: HarmonyError.self) { try HarmonyConversation(jsonText: bad) }
        }
    }

    // MARK: - TypeScript rendering

    private func ts(_ schema: String) throws -> String {
        HarmonyEncoding.typeScript(try HarmonyJSON.parse(schema), indent: "")
    }

    @Test func typeScriptTypes() throws {
        #expect(try ts(#"{"type":"string"}"#) == "string")
        #expect(try ts(#"{"type":"integer"}"#) == "number")
        #expect(try ts(#"{"type":["integer","null"]}"#) == "number | null")
        #expect(try ts(#"{"type":"array"}"#) == "Array<any>")
        #expect(try ts(#"{"type":"array","items":{"type":"boolean"}}"#) == "boolean[]")
        #expect(try ts(#"{"type":"string","enum":[1,2]}"#) == "string")
        #expect(try ts(#"{}"#) == "any")
        #expect(try ts(#"true"#) == "any")
        #expect(try ts(#"{"oneOf":[{"type":"string","description":"d","default":"x"},{"type":"number","default":1.5}]}"#)
                == "\n | string // d default: \"x\"\n | number // default: 1.5")
    }

    @Test func typeScriptObjectComments() throws {
        let schema = #"{"type":"object","properties":{"b":{"type":"string","title":"T","examples":["e1",2]},"a":{"type":"number","nullable":true,"default":{"k":[1,"\n"]}},"c":{"description":"same","oneOf":[{"type":"string","description":"same"},{"type":"number","description":"other","default":0.0001}],"default":"z"}},"required":["a"]}"#
        #expect(try ts(schema) == """
            {
            // T
            //
            // Examples:
            // - "e1"
            b?: string,
            a: number | null, // default: {"k":[1,"\\n"]}
            // default: "z"
            c?:
             | string
             | number // other default: 0.0001
            ,
            }
            """)
    }

    @Test func toolsSectionLinesAndOrder() {
        let tools = ["zeta": HarmonyToolNamespace(name: "zeta", description: "", tools: [HarmonyToolDescription(name: "f", description: "")]),
                     "alpha": HarmonyToolNamespace(name: "alpha", description: "line1\r\nline2\n", tools: [])]
        #expect(HarmonyEncoding.toolsSection(tools) == "# Tools\n\n## alpha\n\nline1\nline2\n\n## zeta\n\nnamespace zeta {\n\ntype f = () => any;\n\n} // namespace zeta")
    }

    @Test func numbersPrintAsSerdeJSON() throws {
        let cases: [(String, String)] = [("5", "5"), ("-1", "-1"), ("-0", "-0.0"), ("1.0", "1.0"), ("1e20", "1e20"), ("1e15", "1000000000000000.0"),
                                         ("1e-7", "1e-7"), ("0.001", "0.001"), ("1.5e300", "1.5e300"), ("123456789012345678901234", "1.2345678901234569e23"),
                                         ("18446744073709551615", "18446744073709551615"), ("2.5E-3", "0.0025"), ("1e16", "1e16"), ("12345.678", "12345.678")]
        for (input, expected) in cases {
            #expect(try HarmonyJSON.parse(input).compactText == expected, "\(input) -> \((try? HarmonyJSON.parse(input).compactText) ?? "")")
        }
        #expect(try HarmonyJSON.parse(#" {"b":1,"a":[true,null,"\u00e9\t"]} "#).compactText == "{\"b\":1,\"a\":[true,null,\"é\\t\"]}")
    }
}
