// The `osprey` executable end to end: it is run as a user would run it (a child process), on
// random checkpoints, and every failure must be one clear line on stderr with exit code 1 —
// never a crash, a Swift backtrace or a "Fatal error".
import Foundation
import Testing
import OspreyModels
import OspreyTokenizers

/// Runs the built `osprey` binary (a sibling of the test bundle) with `arguments` (in `currentDirectory` when given).
func osprey(_ arguments: [String], stdin: String? = nil, currentDirectory: URL? = nil) throws -> (status: Int32, out: String, err: String) {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let binary = dir.appendingPathComponent("osprey")
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
        Issue.record("osprey binary not found at \(binary.path); build all products before testing (swift build --build-tests)")
        return (-1, "", "")
    }
    let p = Process()
    p.executableURL = binary
    p.arguments = arguments
    if let currentDirectory { p.currentDirectoryURL = currentDirectory }
    let (o, e, i) = (Pipe(), Pipe(), Pipe())
    (p.standardOutput, p.standardError, p.standardInput) = (o, e, i)
    try p.run()
    if let stdin { i.fileHandleForWriting.write(Data(stdin.utf8)) }
    try i.fileHandleForWriting.close()
    let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

func expectCleanFailure(_ r: (status: Int32, out: String, err: String), mentioning needle: String) {
    #expect(r.status == 1, "exit status \(r.status), stderr: \(r.err)")
    #expect(r.err.contains(needle), "stderr should mention \(needle): \(r.err)")
    #expect(!r.err.contains("Fatal error") && !r.err.contains("Stack dump") && !r.err.contains("backtrace"))
}

@Suite struct CLITests {
    @Test func generateJSONIsGreedyAndDeterministic() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var shape = GptOssShape()
        shape.mxfp4 = true
        try RandomGptOss.write(shape, to: dir, seed: 3)
        let args = ["generate", "--model", dir.path, "--prompt-ids", "5,6,7,8", "--max-new-tokens", "6", "--json", "--device", "cpu"]
        let a = try osprey(args), b = try osprey(args)
        #expect(a.status == 0, "\(a.err)")
        struct Output: Decodable { var prompt_ids: [Int]; var generated_ids: [Int] }
        let parsed = try JSONDecoder().decode(Output.self, from: Data(a.out.utf8))
        #expect(parsed.prompt_ids == [5, 6, 7, 8])
        #expect(parsed.generated_ids.count == 6 || parsed.generated_ids.last == 255)  // 255 = eos of random checkpoints
        #expect(a.out == b.out)
        // The same ids from the library's greedy loop.
        let model = try ModelRegistry.load(ModelFolder(directory: dir), backend: OspreyCPUBackend())
        let ids = try greedyIds(model, prompt: [5, 6, 7, 8], count: parsed.generated_ids.count)
        #expect(ids == parsed.generated_ids)
    }

    @Test func inspectSummarisesTheFolder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var shape = GptOssShape()
        (shape.mxfp4, shape.experts, shape.layers) = (true, 3, 3)
        try RandomGptOss.write(shape, to: dir)
        let r = try osprey(["inspect", dir.path])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("model_type: gpt_oss"))
        #expect(r.out.contains("layer types: sliding,full,sliding"))
        #expect(r.out.contains("quantization: mxfp4"))
        // 3 layers x 3 experts x (2*64*64 + 64*64) MXFP4 values.
        let values = 3 * 3 * 3 * 64 * 64
        #expect(r.out.contains("mxfp4: \(values) values, \(values / 2) bytes"))
        #expect(r.out.contains("e8m0 scales: \(values / 32) values, \(values / 32) bytes"))
        // Dequantized, the experts take 2 bytes a value instead of 17/32.
        let line = try #require(r.out.split(separator: "\n").first { $0.hasPrefix("parameters:") })
        let total = try #require(Int(line.split(separator: " ")[3]))
        #expect(r.out.contains("weight memory on load (cpu or cuda): ") && r.out.contains("(\(total) bytes) as stored"))
        #expect(r.out.contains("(\(total - values / 2 - values / 32 + 2 * values) bytes), experts in bf16"))
    }

    @Test func badInputFailsCleanly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try RandomGptOss.write(GptOssShape(), to: dir)
        expectCleanFailure(try osprey(["generate", "--model", "/nonexistent/folder", "--prompt-ids", "1"]), mentioning: "config.json")
        expectCleanFailure(try osprey(["generate", "--model", dir.path, "--prompt-ids", "1,two"]), mentioning: "--prompt-ids")
        expectCleanFailure(try osprey(["generate", "--model", dir.path, "--prompt-ids", "1,99999"]), mentioning: "99999")
        expectCleanFailure(try osprey(["generate", "--model", dir.path, "--prompt-ids", "1", "--device", "cuda"]), mentioning: "CUDA")
        expectCleanFailure(try osprey(["generate", "--model", dir.path, "--prompt-ids", "1", "--temperature=-1"]), mentioning: "temperature")
        try Data("{\"model_type\": \"gpt_oss\", \"vocab_size\": 256".utf8).write(to: dir.appendingPathComponent("config.json"))
        expectCleanFailure(try osprey(["inspect", dir.path]), mentioning: "config.json")
        // A truncated checkpoint.
        try RandomGptOss.write(GptOssShape(), to: dir)
        let st = dir.appendingPathComponent("model.safetensors")
        try Data(try Data(contentsOf: st).prefix(100)).write(to: st)
        expectCleanFailure(try osprey(["generate", "--model", dir.path, "--prompt-ids", "1"]), mentioning: "model.safetensors")
        try RandomGptOss.write(GptOssShape(), to: dir)  // whole again
        expectCleanFailure(try osprey(["generate", "--model", dir.path, "--prompt-ids", "1", "--temperature", "1", "--top-p", "0"]), mentioning: "top_p")
        let sampled = try osprey(["generate", "--model", dir.path, "--prompt-ids", "1,2", "--temperature", "0.9", "--top-k", "3",
                                  "--repetition-penalty", "1.2", "--seed", "5", "--max-new-tokens", "5", "--device", "cpu"])
        #expect(sampled.status == 0 && sampled.out.split(separator: ",").count == 5, "\(sampled.err)")
        // Unknown flags are usage errors from the argument parser (exit 64), still without a crash.
        let u = try osprey(["generate", "--bogus"])
        #expect(u.status != 0 && !u.err.contains("Fatal error"))
    }
}

@Suite struct TextPromptTests {
    @Test func textPromptsUseTheFolderTokenizerAndStreamText() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-text-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var shape = GptOssShape()
        (shape.vocab, shape.layers) = (50_257, 1)
        try RandomGptOss.write(shape, to: dir, seed: 9)
        try FileManager.default.copyItem(at: SharedPaths.data.appendingPathComponent("gpt2.tokenizer.json"),
                                         to: dir.appendingPathComponent("tokenizer.json"))
        let tokenizer = try loadTokenizer(at: dir)
        let r = try osprey(["generate", "--model", dir.path, "--prompt", "Hello, world", "--max-new-tokens", "6", "--json", "--device", "cpu"])
        #expect(r.status == 0, "\(r.err)")
        struct Output: Decodable { var prompt_ids: [Int]; var generated_ids: [Int]; var text: String? }
        let out = try JSONDecoder().decode(Output.self, from: Data(r.out.utf8))
        #expect(out.prompt_ids == (try tokenizer.encode("Hello, world", addSpecialTokens: true)))
        #expect(out.text == (try tokenizer.decode(out.generated_ids, skipSpecialTokens: false)))
        // Without --json the text itself is printed (streamed).
        let plain = try osprey(["generate", "--model", dir.path, "--prompt", "Hello, world", "--max-new-tokens", "6", "--device", "cpu"])
        #expect(plain.status == 0 && plain.out.trimmingCharacters(in: .newlines) == out.text?.trimmingCharacters(in: .newlines))
        expectCleanFailure(try osprey(["generate", "--model", dir.path, "--prompt", "x", "--prompt-ids", "1"]), mentioning: "exactly one")
    }
}
