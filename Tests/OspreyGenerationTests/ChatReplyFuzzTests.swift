// Fuzzing the harmony reply parser (ChatReplyParser) with what models and limits really produce:
// the openai-harmony fixtures' replies cut at every length (max_tokens), and mutated at random —
// special tokens dropped, repeated, moved or inserted among the text. Properties: it never throws
// or traps; no harmony special token's text ever reaches content, reasoning or a tool call; a cut
// reply's content and reasoning are prefixes of the whole reply's; streaming (append, then finish)
// and `parseReply` agree.
import Foundation
import Testing
@testable import OspreyTokenizers
@testable import OspreyGeneration

@Suite struct ChatReplyFuzzTests {
    static let specialTexts = ["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|call|>", "<|return|>", "<|constrain|>"]
    static let fixtureIDs = ["parse/final_only", "parse/analysis_then_final", "parse/analysis_then_tool_call",
                             "parse/commentary_preamble_then_call"]

    static func replies() throws -> [[Int32]] {
        try fixtureIDs.map { ChatTests.ids(try ChatTests.fixture("fixtures/tokenizers/harmony.jsonl", id: $0)["ids"]) }
    }

    static func expectClean(_ reply: ChatReply, _ ids: [Int32]) {
        let texts = [reply.content, reply.reasoning] + reply.toolCalls.flatMap { [$0.name, $0.arguments] }
        for text in texts {
            for special in specialTexts {
                #expect(!text.contains(special), "\(special) in \(text.debugDescription) from \(ids)")
            }
        }
    }

    static func streamed(_ format: ChatFormat, _ ids: [Int32]) -> (content: String, reasoning: String, calls: [ToolCall]) {
        var parser = ChatReplyParser(format: format)
        var deltas: [ChatDelta] = []
        for id in ids { deltas += parser.append(id) }
        deltas += parser.finish()
        var out = (content: "", reasoning: "", calls: [ToolCall]())
        for d in deltas {
            switch d {
            case .content(let t): out.content += t
            case .reasoning(let t): out.reasoning += t
            case .toolCall(let c): out.calls.append(c)
            }
        }
        return out
    }

    @Test(.enabled(if: SharedData.available)) func everyCutOfARealReplyIsAPrefixAndClean() throws {
        let format = try ChatTests.harmony()
        for whole in try Self.replies() {
            let full = format.parseReply(whole)
            #expect(full.formatError == nil)
            for cut in 0...whole.count {
                let ids = Array(whole.prefix(cut))
                let reply = format.parseReply(ids)
                Self.expectClean(reply, ids)
                #expect(full.content.hasPrefix(reply.content), "cut \(cut): \(reply.content.debugDescription) vs \(full.content.debugDescription)")
                #expect(full.reasoning.hasPrefix(reply.reasoning), "cut \(cut): \(reply.reasoning.debugDescription)")
                #expect(reply.formatError == nil, "cut \(cut): \(reply.formatError ?? "")")
            }
        }
    }

    @Test(.enabled(if: SharedData.available)) func mutatedRepliesNeverLeakSpecialTokens() throws {
        let format = try ChatTests.harmony()
        guard case .harmony(let encoding) = format.kind else { Issue.record("not harmony"); return }
        let specials = try Self.specialTexts.map { Int32(try #require(encoding.tokenizer.tokenID(for: $0), "no id for \($0)")) }
        let replies = try Self.replies()
        let words = replies.flatMap { $0 }.filter { !specials.contains($0) }
        var rng = SchedulerTests.SplitMix64(state: 7)
        for run in 0..<2_000 {
            var ids = replies[run % replies.count]
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let at = Int.random(in: 0...ids.count, using: &rng)
                switch Int.random(in: 0..<5, using: &rng) {
                case 0: ids.insert(specials.randomElement(using: &rng)!, at: at)
                case 1: ids.insert(words.randomElement(using: &rng)!, at: at)
                case 2: if at < ids.count { ids.remove(at: at) }
                case 3: if at < ids.count { ids[at] = specials.randomElement(using: &rng)! }
                default: ids = Array(ids.prefix(at))
                }
            }
            let reply = format.parseReply(ids)
            Self.expectClean(reply, ids)
            let s = Self.streamed(format, ids)
            #expect(s.content == reply.content && s.reasoning == reply.reasoning && s.calls == reply.toolCalls, "\(ids)")
        }
    }
}
