// Harmony over gpt-oss's tokenizer.json (what a gpt-oss model folder ships) instead of the
// o200k_base.tiktoken file: every render and parse case of harmony.jsonl gives openai-harmony's
// ids and messages, as with the tiktoken vocabulary.
import Foundation
import Testing
@testable import OspreyTokenizers

@Suite(.enabled(if: HarmonyFixtures.vocabularyAvailable))
struct HarmonyHFTokenizerTests {
    static let encoding = Result { try HarmonyEncoding(tokenizer: Shared.gptOSS.get()) }

    @Test func formattingTokensAreHarmonys() throws {
        let tokens = try Self.encoding.get().formattingTokens
        let ids: [Int] = [tokens.start, tokens.end, tokens.message, tokens.channel, tokens.return, tokens.call]
        #expect(ids == [200_006, 200_007, 200_008, 200_005, 200_002, 200_012])
        let hf = try Shared.gptOSS.get()
        #expect(hf.encodeOrdinary("<|start|>hi") == (try Shared.o200kBase.get()).encodeOrdinary("<|start|>hi"))
        #expect(try hf.decodeBytes([200_006] + hf.encodeOrdinary("héllo")) == Array("<|start|>héllo".utf8))
        #expect(hf.isSpecialToken(200_006) && !hf.isSpecialToken(hf.encodeOrdinary("hi")[0]))
    }

    @Test(arguments: HarmonyFixtures.renderIDs)
    func renderIDsMatchHarmony(id: String) throws {
        let record = HarmonyFixtures.record(id)
        #expect(try Self.encoding.get().render(record: record) == HarmonyFixtures.intArray(record["ids"]))
    }

    @Test(arguments: HarmonyFixtures.parseIDs)
    func parsesRecordedIDs(id: String) throws {
        let record = HarmonyFixtures.record(id)
        let role = record["role"]?.stringValue.flatMap(HarmonyRole.init(rawValue:))
        let messages = try Self.encoding.get().parseMessages(fromCompletionTokens: HarmonyFixtures.intArray(record["ids"]), role: role)
        #expect(messages == (try HarmonyFixtures.messages(record["messages"])))
    }
}
