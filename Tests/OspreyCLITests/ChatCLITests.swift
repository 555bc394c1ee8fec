// `osprey chat` and the generation flags end to end, on random checkpoints with the random harmony
// tokenizer: two piped user lines give two replies that equal the library's chat replies with the
// history kept; --stop and --min-new-tokens reach the library; Ctrl-C (SIGINT) stops a generation
// but not the program, and at the chat prompt exits; bad flags fail with one clear line.
import Foundation
import Testing
import OspreyModels
import OspreyGeneration

/// Runs `osprey`, sends SIGINT after `interruptAfter` seconds (stdin left open until then).
func ospreyInterrupted(_ arguments: [String], interruptAfter seconds: Double) throws -> (status: Int32, out: String, err: String) {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("osprey")
    let p = Process()
    p.executableURL = binary
    p.arguments = arguments
    let (o, e, i) = (Pipe(), Pipe(), Pipe())
    (p.standardOutput, p.standardError, p.standardInput) = (o, e, i)
    try p.run()
    Thread.sleep(forTimeInterval: seconds)
    p.interrupt()
    let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    try? i.fileHandleForWriting.close()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

func randomHarmonyFolder(seed: UInt64) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-chat-\(UUID().uuidString)")
    var shape = GptOssShape()
    (shape.vocab, shape.tokenizer) = (300, true)
    try RandomGptOss.write(shape, to: dir, seed: seed)
    return dir
}

@Suite struct ChatCLITests {
    @Test func pipedLinesGetTheLibrarysRepliesWithHistory() throws {
        let dir = try randomHarmonyFolder(seed: 21)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try osprey(["chat", "--model", dir.path, "--device", "cpu", "--max-new-tokens", "12", "--stats",
                            "--reasoning-effort", "low"], stdin: "Hello there\n\nHow are you?\n")
        #expect(r.status == 0, "\(r.err)")
        // Two turns; the second prompt holds the first exchange.
        let turns = r.err.split(separator: "\n").filter { $0.hasPrefix("[prompt ") }
        #expect(turns.count == 2, "\(r.err)")
        let promptSizes = turns.compactMap { Int($0.dropFirst("[prompt ".count).prefix { $0.isNumber }) }
        #expect(promptSizes.count == 2 && promptSizes[1] > promptSizes[0] + 12 / 2, "\(turns)")
        // The same replies from the library.
        let lm = try LoadedModel.load(dir, device: .cpu)
        var config = lm.generationConfig
        config.maxNewTokens = 12
        var history: [ChatMessage] = [.user("Hello there")]
        let first = try lm.chat(history, config: config, reasoningEffort: .low)
        history += [first.message, .user("How are you?")]
        let second = try lm.chat(history, config: config, reasoningEffort: .low)
        #expect([first, second].allSatisfy { $0.reasoning.isEmpty && $0.toolCalls.isEmpty }, "pick a seed whose replies are plain text")
        #expect(r.out == first.content + "\n" + second.content + "\n")
        // --show-reasoning without a terminal marks reasoning in plain text; the run still succeeds.
        let shown = try osprey(["chat", "--model", dir.path, "--device", "cpu", "--max-new-tokens", "4", "--show-reasoning"], stdin: "Hi\n")
        #expect(shown.status == 0 && !shown.out.contains("\u{1B}["), "\(shown.err)")
    }

    @Test func chatFailsCleanly() throws {
        let dir = try randomHarmonyFolder(seed: 22)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("tokenizer.json"))
        expectCleanFailure(try osprey(["chat", "--model", dir.path, "--device", "cpu"], stdin: "Hi\n"), mentioning: "tokenizer")
        let bad = try osprey(["chat", "--model", dir.path, "--reasoning-effort", "extreme"], stdin: "")
        #expect(bad.status != 0 && bad.err.contains("extreme") && !bad.err.contains("Fatal error"))
    }

    @Test func ctrlCStopsTheGenerationNotTheProgram() throws {
        let dir = try randomHarmonyFolder(seed: 23)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try ospreyInterrupted(["generate", "--model", dir.path, "--prompt-ids", "1,2,3", "--max-new-tokens", "10000000",
                                       "--json", "--device", "cpu"], interruptAfter: 3)
        #expect(r.status == 0, "\(r.err)")
        struct Output: Decodable { var generated_ids: [Int]; var text: String? }
        let out = try JSONDecoder().decode(Output.self, from: Data(r.out.utf8))
        #expect(out.generated_ids.count > 0 && out.generated_ids.count < 10_000_000)
        #expect(out.text != nil)
        // At the chat prompt Ctrl-C ends the program, as an interrupted program ends (status 130).
        let atPrompt = try ospreyInterrupted(["chat", "--model", dir.path, "--device", "cpu"], interruptAfter: 2)
        #expect(atPrompt.status == 130, "\(atPrompt.err)")
    }

    @Test func generateStopAndMinNewTokensFlags() throws {
        let dir = try randomHarmonyFolder(seed: 24)
        defer { try? FileManager.default.removeItem(at: dir) }
        struct Output: Decodable { var generated_ids: [Int32]; var text: String? }
        let base = ["generate", "--model", dir.path, "--prompt", "abc", "--max-new-tokens", "30", "--json", "--device", "cpu"]
        let free = try osprey(base)
        #expect(free.status == 0, "\(free.err)")
        let freeOut = try JSONDecoder().decode(Output.self, from: Data(free.out.utf8))
        let text = try #require(freeOut.text)
        let stop = String(text.dropFirst(text.count / 2).prefix(2))
        let stopped = try osprey(base + ["--stop", "never-appears", "--stop", stop])
        let stoppedOut = try JSONDecoder().decode(Output.self, from: Data(stopped.out.utf8))
        #expect(stoppedOut.text == String(text[..<text.range(of: stop)!.lowerBound]))
        // The same through the library.
        let lm = try LoadedModel.load(dir, device: .cpu)
        var config = lm.generationConfig
        (config.maxNewTokens, config.stopStrings) = (30, ["never-appears", stop])
        let library = try lm.generate("abc", config: config)
        #expect(library.ids == stoppedOut.generated_ids && library.text == stoppedOut.text)
        // --min-new-tokens: the first generated id, declared eos, cannot come first.
        (config.stopStrings, config.eosTokenIds, config.minNewTokens) = ([], [freeOut.generated_ids[0]], 3)
        let held = try lm.generate("abc", config: config)
        let cli = try osprey(base + ["--min-new-tokens", "3"])
        #expect(cli.status == 0 && held.ids.count >= 3)
        expectCleanFailure(try osprey(base + ["--min-new-tokens=-1"]), mentioning: "min_new_tokens")
        expectCleanFailure(try osprey(base + ["--stop", ""]), mentioning: "stop")
        let noTokenizer = try randomHarmonyFolder(seed: 25)
        defer { try? FileManager.default.removeItem(at: noTokenizer) }
        try FileManager.default.removeItem(at: noTokenizer.appendingPathComponent("tokenizer.json"))
        expectCleanFailure(try osprey(["generate", "--model", noTokenizer.path, "--prompt-ids", "1", "--stop", "x"]), mentioning: "tokenizer")
    }
}
