// Text generation: stop strings found across token boundaries and trimmed off (held back while
// they may still be starting, so streamed deltas never carry part of one); streamed text equals
// the non-streamed text; a consumer that stops iterating, or a cancelled task, stops generation
// within a token (counted forward passes); text prompts need a tokenizer.
import Foundation
import Testing
import OspreyCore
import OspreyModels
@testable import OspreyGeneration

@Suite struct StopStringTests {
    @Test func matchesAcrossPiecesAndHoldsBackPrefixes() {
        var m = StopStringMatcher(["lo W", "xyz"])
        #expect(m.append("Hel") == ("He", false))      // "l" may start "lo W": held back
        #expect(m.append("lo") == ("l", false))        // now "lo" is held
        #expect(m.append(" Wor") == ("", true))        // found: the released text ends before it
        var n = StopStringMatcher(["END"])
        #expect(n.append("abE") == ("ab", false))
        #expect(n.append("Nx") == ("ENx", false))      // not a match after all: released
        #expect(n.append("E") == ("", false))
        #expect(n.flush() == "E")
        var first = StopStringMatcher(["bb", "abc"])  // the earliest match wins, whichever string
        #expect(first.append("xabcbb") == ("x", true))
        var none = StopStringMatcher([])
        #expect(none.append("any") == ("any", false))
        var emoji = StopStringMatcher(["👋🏽"])     // scalars, not bytes or characters
        #expect(emoji.append("hi 👋") == ("hi ", false))
        #expect(emoji.append("🏽 there") == ("", true))
    }

    @Test func generationStopsAtAStopStringSpanningTokens() throws {
        try withRandomFolder(seed: 4) { dir in
            let lm = try LoadedModel.load(dir, device: .cpu)
            var config = lm.generationConfig
            config.maxNewTokens = 40
            let free = try lm.generate(prompt: [104, 105], config: config)
            // Every token of the random tokenizer is one byte or one special, so a stop string of
            // two scalars taken from the middle of the text spans at least two tokens.
            let scalars = Array(free.text.unicodeScalars)
            let at = scalars.indices.dropFirst(scalars.count / 2).first { i in
                i + 1 < scalars.count && scalars[i].isASCII && scalars[i + 1].isASCII && scalars[i] != "<" && scalars[i + 1] != "<"
            }
            let start = try #require(at, "no ASCII pair in \(free.text.debugDescription)")
            var stop = String.UnicodeScalarView()
            stop.append(contentsOf: scalars[start...(start + 1)])
            config.stopStrings = [String(stop)]
            let stopped = try lm.generate(prompt: [104, 105], config: config)
            let expected = String(free.text[..<free.text.range(of: String(stop))!.lowerBound])
            #expect(stopped.finishReason == .stop)
            #expect(stopped.text == expected)
            #expect(stopped.ids.count < free.ids.count && Array(free.ids.prefix(stopped.ids.count)) == stopped.ids)
            // The last id completed the stop string: without it the text does not contain it yet.
            let tokenizer = try lm.requireTokenizer()
            let before = try tokenizer.decode(stopped.ids.dropLast().map(Int.init), skipSpecialTokens: false)
            #expect(!before.contains(String(stop)))
            #expect(try tokenizer.decode(stopped.ids.map(Int.init), skipSpecialTokens: false).contains(String(stop)))
        }
    }
}

@Suite struct StreamingTests {
    @Test func streamedTextEqualsGeneratedText() async throws {
        try await withRandomFolderAsync(seed: 5) { dir in
            let lm = try LoadedModel.load(dir, device: .cpu)
            var config = lm.generationConfig
            (config.maxNewTokens, config.doSample, config.temperature, config.seed) = (48, true, 0.9, 11)
            let whole = try lm.generate("Hello, world", config: config)
            var streamed = "", deltas = 0
            for try await piece in lm.stream("Hello, world", config: config) {
                #expect(!piece.isEmpty)
                streamed += piece
                deltas += 1
            }
            #expect(streamed == whole.text)
            #expect(deltas > 1)
            // With a stop string too.
            config.stopStrings = [String(whole.text.dropFirst(whole.text.count / 2).prefix(2))]
            let stopped = try lm.generate("Hello, world", config: config)
            streamed = ""
            for try await piece in lm.stream("Hello, world", config: config) { streamed += piece }
            #expect(streamed == stopped.text && stopped.finishReason == .stop)
        }
    }

    @Test func breakingOutStopsGeneration() async throws {
        try await withRandomFolderAsync(seed: 6) { dir in
            let (lm, counter) = try LoadedModel.load(dir, device: .cpu).counted()
            var config = lm.generationConfig
            (config.maxNewTokens, config.eosTokenIds) = (100_000, [])
            var received = 0
            for try await _ in lm.stream(prompt: [1, 2, 3], config: config) {
                received += 1
                if received == 3 { break }
            }
            // The producer may run a little ahead of the consumer, then stops.
            try await Task.sleep(for: .milliseconds(300))
            let settled = counter.count
            try await Task.sleep(for: .milliseconds(300))
            #expect(counter.count == settled, "generation went on after the consumer left")
            #expect(settled < 100_000)
        }
    }

    @Test func cancellingTheTaskStopsGeneration() async throws {
        try await withRandomFolderAsync(seed: 7) { dir in
            let (lm, counter) = try LoadedModel.load(dir, device: .cpu).counted()
            var config = lm.generationConfig
            (config.maxNewTokens, config.eosTokenIds) = (100_000, [])
            let consumer = Task {
                var text = ""
                for try await piece in lm.stream(prompt: [1, 2, 3], config: config) { text += piece }
                return text
            }
            while counter.count < 5 { try await Task.sleep(for: .milliseconds(5)) }
            consumer.cancel()
            _ = try? await consumer.value
            try await Task.sleep(for: .milliseconds(300))
            let settled = counter.count
            try await Task.sleep(for: .milliseconds(300))
            #expect(counter.count == settled && settled < 100_000)
            // The synchronous API inside a cancelled task ends with reason `cancelled`.
            let cancelled = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try lm.generate(prompt: [1, 2, 3], config: config)
            }
            let result = try await cancelled.value
            #expect(result.finishReason == .cancelled && result.ids.isEmpty)
        }
    }

    @Test func textNeedsATokenizer() async throws {
        try await withRandomFolderAsync(tokenizer: false) { dir in
            let lm = try LoadedModel.load(dir, device: .cpu)
            #expect(throws: GenerationError.noTokenizer(folder: dir.path)) { try lm.generate("hi") }
            await #expect(throws: GenerationError.self) { for try await _ in lm.stream("hi") {} }
        }
    }
}

func withRandomFolderAsync(vocab: Int = 300, tokenizer: Bool = true, seed: UInt64 = 1,
                           _ body: (URL) async throws -> Void) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gen-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    var shape = GptOssShape()
    (shape.vocab, shape.tokenizer) = (vocab, tokenizer)
    try RandomGptOss.write(shape, to: dir, seed: seed)
    try await body(dir)
}
