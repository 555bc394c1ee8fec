// o200k_base and o200k_harmony against tiktoken 0.14 / openai-harmony 0.0.8 (o200k.jsonl), and the
// streaming/partial decode vectors (o200k_decode.jsonl).
import Foundation
import Testing
@testable import OspreyTokenizers

let o200kCases = FixtureCase.load("o200k.jsonl") { r in
    "\(r["tokenizer"]?.string ?? "?")/\(r["id"]?.string ?? "?")/\(r["allowed_special"]?.string ?? "?")"
}
let o200kDecodeCases = FixtureCase.load("o200k_decode.jsonl") { r in "\(r["tokenizer"]?.string ?? "?")/\(r["id"]?.string ?? "?")" }

@Suite struct TiktokenFixtureTests {
    @Test func fixturesArePresent() {
        #expect(o200kCases.count == 364)
        #expect(o200kDecodeCases.count == 35)
    }

    @Test(arguments: o200kCases)
    func encodeAndDecode(_ c: FixtureCase) throws {
        let r = c.record
        let encoding = try Shared.tiktoken(r["tokenizer"]?.string ?? "")
        let text = try #require(r["text"]?.string)
        let expected = ints(r["ids"])
        let ids = (r["allowed_special"]?.string) == "all"
            ? try encoding.encode(text, allowedSpecial: encoding.allSpecialTokens)
            : encoding.encodeOrdinary(text)
        #expect(ids == expected)
        #expect(try encoding.decode(expected, skipSpecialTokens: false) == r["decoded"]?.string)
    }

    @Test(arguments: o200kDecodeCases)
    func partialDecode(_ c: FixtureCase) throws {
        let r = c.record
        let encoding = try Shared.tiktoken(r["tokenizer"]?.string ?? "")
        let ids = ints(r["ids"])
        let bytes = try encoding.decodeBytes(ids)
        #expect(hex(bytes) == r["bytes_hex"]?.string)
        #expect(try ids.map { hex(try encoding.tokenBytes(for: $0)) } == (r["token_bytes_hex"]?.array?.compactMap(\.string) ?? []))
        let textReplace = try #require(r["text_replace"]?.string)
        #expect(try encoding.decode(ids, skipSpecialTokens: false) == textReplace)
        #expect((String(validating: bytes, as: UTF8.self) != nil) == (r["valid_utf8"]?.bool))

        // Streaming: deltas are whole characters; held bytes are only an incomplete character.
        var stream = StreamingDetokenizer(tokenizer: encoding)
        var emitted = ""
        for id in ids { emitted += try stream.append(id) }
        let complete = completePrefixLength(bytes)
        #expect(emitted == String(decoding: bytes[..<complete], as: UTF8.self))
        #expect(bytes.count - complete < 4)
        #expect(emitted + (try stream.finish()) == textReplace)
        if r["valid_utf8"]?.bool == true { #expect(emitted == textReplace) }
    }
}

@Suite struct TiktokenBehaviourTests {
    @Test func disallowedSpecialThrows() throws {
        let enc = try Shared.o200kBase.get()
        #expect(throws: TokenizerError.disallowedSpecialToken("<|endoftext|>")) {
            try enc.encode("a <|endoftext|>", allowedSpecial: [])
        }
        #expect(try enc.encode("a <|endoftext|>", allowedSpecial: ["<|endoftext|>"]).last == 199_999)
    }

    @Test func idsOutsideTheVocabularyThrow() throws {
        let enc = try Shared.o200kHarmony.get()
        #expect(enc.vocabularySize == 201_088)
        for bad in [-1, 201_088, 1 << 40] {
            #expect(throws: TokenizerError.idOutOfRange(id: bad, vocabularySize: 201_088)) { try enc.decode([bad], skipSpecialTokens: false) }
            #expect(throws: TokenizerError.self) { try enc.decodeBytes([bad]) }
        }
        var stream = StreamingDetokenizer(tokenizer: enc)
        #expect(throws: TokenizerError.self) { try stream.append(300_000) }
    }

    @Test func harmonySpecialTokens() throws {
        let enc = try Shared.o200kHarmony.get()
        #expect(enc.tokenID(for: "<|start|>") == 200_006)
        #expect(enc.tokenID(for: "<|call|>") == 200_012)
        #expect(enc.tokenID(for: "<|reserved_201087|>") == 201_087)
        #expect(try enc.decode([200_018], skipSpecialTokens: false) == "<|endofprompt|>")
        #expect(try enc.decode([200_006, 17360], skipSpecialTokens: true) == "system")
        let openAI = try Shared.o200kHarmonyOpenAI.get()
        #expect(openAI.tokenID(for: "<|reserved_201088|>") == 201_088)
        #expect(openAI.tokenID(for: "<|endofprompt|>") == nil)
    }

    @Test func malformedRankFilesThrow() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("osprey-tiktoken-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bad.tiktoken")
        for content in ["IQ== notanumber\n", "!!!! 0\n", "no-space-here\n", "IQ== 0\n"] {
            try content.write(to: file, atomically: true, encoding: .utf8)
            #expect(throws: TokenizerError.self) { _ = try TiktokenEncoding(rankFile: file, name: "bad", specialTokens: [:]) }
        }
        #expect(throws: TokenizerError.self) { _ = try TiktokenEncoding.o200kBase(vocabDirectory: dir) }
    }

    @Test func loadTokenizerPicksTheFormat() throws {
        let t = try loadTokenizer(at: Shared.data.appendingPathComponent("o200k_base.tiktoken"))
        #expect(try t.encode("hello world", addSpecialTokens: true) == [24912, 2375])
        #expect(t.vocabularySize == 200_019)
    }
}
