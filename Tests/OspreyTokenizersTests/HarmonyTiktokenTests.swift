// Harmony against the real o200k_harmony vocabulary: every render case of harmony.jsonl must give
// openai-harmony 0.0.8's ids exactly, every parse case must give its messages from the recorded
// ids, and `respond(toRequestLine:)` (the render-harmony CLI) must answer fixture lines with them.

import Foundation
import Testing
@testable import OspreyTokenizers

@Suite(.enabled(if: HarmonyFixtures.vocabularyAvailable))
struct HarmonyTiktokenTests {
    static let encoding: HarmonyEncoding? = try? HarmonyEncoding.gptOss(vocabDirectory: HarmonyFixtures.dataDirectory)

    @Test func loadsWithHarmonyStopTokens() throws {
        let encoding = try #require(Self.encoding)
        #expect(encoding.stopTokens == [200_002, 200_007, 200_012])
        #expect(encoding.stopTokensForAssistantActions == [200_002, 200_012])
        #expect(encoding.formattingTokens.start == 200_006)
    }

    @Test(arguments: HarmonyFixtures.renderIDs)
    func renderIDsMatchHarmony(id: String) throws {
        let encoding = try #require(Self.encoding)
        let record = HarmonyFixtures.record(id)
        #expect(try encoding.render(record: record) == HarmonyFixtures.intArray(record["ids"]))
    }

    @Test(arguments: HarmonyFixtures.parseIDs)
    func parsesRecordedIDs(id: String) throws {
        let encoding = try #require(Self.encoding)
        let record = HarmonyFixtures.record(id)
        let role = record["role"]?.stringValue.flatMap(HarmonyRole.init(rawValue:))
        let messages = try encoding.parseMessages(fromCompletionTokens: HarmonyFixtures.intArray(record["ids"]), role: role)
        #expect(messages == (try HarmonyFixtures.messages(record["messages"])))
    }

    @Test func requestLinesAnswerFixtureIDs() throws {
        let encoding = try #require(Self.encoding)
        for (id, record) in HarmonyFixtures.records {
            var request = HarmonyJSON.Object()
            for key in ["kind", "conversation", "next_turn_role", "config", "ids", "role"] {
                if let v = record[key] { request[key] = v }
            }
            let answer = encoding.respond(toRequestLine: HarmonyJSON.object(request).compactText)
            if record["kind"]?.stringValue == "parse_messages_from_completion_tokens" {
                let parsed = try HarmonyFixtures.messages(try HarmonyJSON.parse(answer))
                #expect(parsed == (try HarmonyFixtures.messages(record["messages"])), "\(id)")
            } else {
                #expect(HarmonyFixtures.intArray(try HarmonyJSON.parse(answer)) == HarmonyFixtures.intArray(record["ids"]), "\(id)")
            }
        }
        for bad in ["", "nope", "[]", #"{"kind":"render_conversation"}"#, #"{"kind":"x","conversation":{"messages":[]}}"#,
                    #"{"kind":"render_conversation_for_completion","conversation":{"messages":[]},"next_turn_role":"bot"}"#,
                    #"{"kind":"parse_messages_from_completion_tokens","ids":[200006, 99999999]}"#] {
            #expect(encoding.respond(toRequestLine: bad).hasPrefix("{\"error\":"), "\(bad)")
        }
    }

    @Test func randomIDsNeverCrashTheParser() throws {
        let encoding = try #require(Self.encoding)
        var rng = SplitMix64(seed: 42)
        let interesting = [200_002, 200_003, 200_005, 200_006, 200_007, 200_008, 200_012, 199_999, 200_018, 201_088, 201_089, -5]
        for _ in 0..<500 {
            var parser = encoding.makeParser(role: rng.next() % 2 == 0 ? .assistant : nil)
            for _ in 0..<Int(rng.next() % 30) {
                let id = rng.next() % 4 == 0 ? interesting[Int(rng.next() % UInt64(interesting.count))] : Int(rng.next() % 200_000)
                _ = try? parser.process(id)
            }
            _ = try? parser.finish()
            for m in parser.messages { #expect(!m.text.contains("<|end|>") && !m.text.contains("<|start|>")) }
        }
    }

    @Test func specialTokenTextInContentIsOrdinaryText() throws {
        let encoding = try #require(Self.encoding)
        let ids = try encoding.renderConversation(HarmonyConversation(messages: [HarmonyMessage(role: .user, text: "<|end|>")]))
        #expect(ids.filter { $0 == 200_007 }.count == 1)
        #expect(ids.last == 200_007)
    }
}
