// The streaming harmony parser: every parse case of harmony.jsonl (through the fake tokenizer;
// the real-id run is in HarmonyTiktokenTests.swift), streaming deltas, how messages end, typed
// errors on malformed streams, and a fuzz test: random token streams never crash.

import Testing
@testable import OspreyTokenizers

@Suite struct HarmonyParserTests {
    let fake = FakeHarmonyTokenizer()

    private func role(_ record: HarmonyJSON) -> HarmonyRole? {
        record["role"]?.stringValue.flatMap(HarmonyRole.init(rawValue:))
    }

    @Test(arguments: HarmonyFixtures.parseIDs)
    func parsesLikeHarmony(id: String) throws {
        let record = HarmonyFixtures.record(id)
        let ids = fake.encodeAll(record["completion_text"]!.stringValue!)
        let parsed = try HarmonyEncoding.fake.parseMessages(fromCompletionTokens: ids, role: role(record))
        #expect(parsed == (try HarmonyFixtures.messages(record["messages"])))
    }

    @Test(arguments: HarmonyFixtures.parseIDs)
    func streamingDeltasRebuildEachMessage(id: String) throws {
        let record = HarmonyFixtures.record(id)
        var parser = HarmonyEncoding.fake.makeParser(role: role(record))
        var text = ""
        var texts: [String] = []
        for token in fake.encodeAll(record["completion_text"]!.stringValue!) {
            switch try parser.process(token) {
            case .contentDelta(let d)?: text += d; #expect(parser.currentContent.hasSuffix(d))
            case .messageComplete(let m, _)?: #expect(m.text == text); texts.append(text); text = ""
            default: break
            }
        }
        try parser.finish()
        #expect(texts == parser.messages.map(\.text))
    }

    @Test func tellsToolCallsFromAnswers() throws {
        let ids = fake.encodeAll("<|channel|>analysis<|message|>think<|end|><|start|>assistant to=functions.f<|channel|>commentary <|constrain|>json<|message|>{}<|call|>")
        var parser = HarmonyEncoding.fake.makeParser()
        for t in ids { try parser.process(t) }
        #expect(parser.messageEnds == [.end, .call])
        #expect(parser.messages.last?.recipient == "functions.f")
        var answer = HarmonyEncoding.fake.makeParser()
        var sawHeader = false
        for t in fake.encodeAll("<|channel|>final<|message|>done<|return|>") {
            if try answer.process(t) == .headerComplete {
                sawHeader = true
                #expect(answer.currentChannel == "final" && answer.currentRole == .assistant)
            }
        }
        #expect(sawHeader && answer.messageEnds == [.return])
        #expect(HarmonyEncoding.fake.stopTokensForAssistantActions == [1005, 1006])
    }

    @Test func splitsUTF8AcrossTokensAndNeverEmitsHalfCharacters() throws {
        var parser = HarmonyEncoding.fake.makeParser()
        for t in fake.encodeAll("<|channel|>final<|message|>") { try parser.process(t) }
        var deltas: [String?] = []
        for byte in Array("é😀".utf8) { try parser.process(Int(byte)); deltas.append(parser.lastContentDelta) }
        #expect(deltas == [nil, "é", nil, nil, nil, "😀"])
        try parser.process(0xFF)  // invalid byte -> U+FFFD
        try parser.process(0xF0)  // truncated at the end -> U+FFFD
        try parser.finish()
        #expect(parser.messages.first?.text == "é😀\u{FFFD}\u{FFFD}")
        #expect(parser.messageEnds == [.endOfStream])
    }

    @Test func malformedStreamsAreTypedErrors() throws {
        func parse(_ text: String, role: HarmonyRole? = .assistant) throws(HarmonyParserError) -> [HarmonyMessage] {
            try HarmonyEncoding.fake.parseMessages(fromCompletionTokens: fake.encodeAll(text), role: role)
        }
        #expect(throws: HarmonyParserError.unexpectedSpecialToken(token: 1000, text: "<|start|>", state: "message content")) {
            try parse("<|channel|>final<|message|>a<|start|>b<|end|>")
        }
        #expect(throws: HarmonyParserError.expectedStart(token: 120)) { try parse("<|channel|>final<|message|>a<|end|>x") }
        #expect(throws: HarmonyParserError.endOfStreamInHeader) { try parse("<|channel|>fin") }
        #expect(throws: HarmonyParserError.invalidHeader("<|channel|> without a channel name")) { try parse("<|channel|><|message|>a") }
        #expect(throws: HarmonyParserError.invalidHeader("unknown role 'robot'")) { try parse("<|start|>robot<|message|>a", role: nil) }
        #expect(throws: HarmonyParserError.invalidHeader("unexpected words 'a'")) { try parse("a b c<|message|>x") }
        #expect(throws: HarmonyParserError.unexpectedSpecialToken(token: 1001, text: "<|end|>", state: "a message header")) { try parse("<|end|>") }
        #expect(throws: HarmonyParserError.unknownToken(999)) {
            try HarmonyEncoding.fake.parseMessages(fromCompletionTokens: [1003, 999], role: .assistant)
        }
        // <|endoftext|> ends the message like the end of the stream.
        #expect(try parse("<|channel|>final<|message|>ok<|endoftext|>").map(\.text) == ["ok"])
    }

    @Test func failedTokenLeavesParserUsable() throws {
        var parser = HarmonyEncoding.fake.makeParser()
        for t in fake.encodeAll("<|channel|>final<|message|>ab") { try parser.process(t) }
        #expect(throws: HarmonyParserError.self) { try parser.process(1002) }
        try parser.process(Int(UInt8(ascii: "c")))
        try parser.process(1001)
        #expect(parser.messages.map(\.text) == ["abc"])
    }

    @Test func randomTokenStreamsNeverCrash() {
        var rng = SplitMix64(seed: 0x5EED)
        let alphabet = Array(0..<256) + Array(1000..<1010) + [999, -1, Int.max]
        let words = ["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|call|>", "<|return|>", "<|constrain|>",
                     "assistant", "tool", "to=functions.f", " ", "final", "analysis", "json", "functions.x", "é"]
        var parsed = 0
        for round in 0..<3000 {
            var tokens: [Int] = []
            for _ in 0..<Int(rng.next() % 40) {
                if round % 2 == 0 { tokens.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
                else { tokens += fake.encodeAll(words[Int(rng.next() % UInt64(words.count))]) }
            }
            var parser = HarmonyEncoding.fake.makeParser(role: rng.next() % 2 == 0 ? .assistant : nil)
            for t in tokens { _ = try? parser.process(t) }
            _ = try? parser.finish()
            parsed += parser.messages.count
            for m in parser.messages {
                for s in FakeHarmonyTokenizer.specials { #expect(!m.text.contains(s)) }
            }
        }
        #expect(parsed > 0)
    }
}

/// A tiny deterministic generator so the fuzz test is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
