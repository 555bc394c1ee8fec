// The tokenizer-side CLI commands end to end, on fixture records from ../shared: tokenize and
// detokenize (o200k_harmony), render-harmony (ids equal openai-harmony's) and chat-template (text
// equal transformers' jinja2 rendering, errors as {"error": ...}).
import Foundation
import Testing

enum SharedPaths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../shared").standardizedFileURL
    static let data = root.appendingPathComponent("data")
    /// Each fixture line as its raw text (Foundation's JSON would reorder object keys, which
    /// changes how tool schemas render) and parsed, for reading the expectations.
    static func lines(_ path: String) throws -> [(raw: String, record: [String: Any])] {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8).split(separator: "\n").map {
            (String($0), try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])
        }
    }
}

@Suite struct TokenizerCLITests {
    @Test func tokenizeAndDetokenizeRoundTrip() throws {
        let text = "Hello, world! 你好 <|start|>"
        let r = try osprey(["tokenize", "--tokenizer", "o200k_harmony", "--vocab-dir", SharedPaths.data.path], stdin: "\"\(text)\"\n")
        #expect(r.status == 0, "\(r.err)")
        let ids = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [Int]
        #expect(ids.contains(200006))  // <|start|> matched as the special token
        let back = try osprey(["detokenize", "--tokenizer", "o200k_harmony", "--vocab-dir", SharedPaths.data.path], stdin: r.out)
        #expect(back.status == 0, "\(back.err)")
        #expect(try JSONSerialization.jsonObject(with: Data(back.out.utf8), options: .fragmentsAllowed) as? String == text)
        expectCleanFailure(try osprey(["tokenize", "--tokenizer", "/nonexistent/tokenizer.json"], stdin: "\"x\"\n"), mentioning: "tokenizer")
    }

    @Test func renderHarmonyMatchesOpenAIHarmony() throws {
        let lines = try SharedPaths.lines("fixtures/tokenizers/harmony.jsonl").filter {
            ($0.record["kind"] as? String)?.hasPrefix("render") == true && ($0.record["tokenizer"] as? String) == "o200k_harmony"
        }.prefix(12)
        let records = lines.map(\.record)
        let input = lines.map(\.raw).joined(separator: "\n") + "\n"
        let r = try osprey(["render-harmony", "--vocab-dir", SharedPaths.data.path], stdin: input)
        #expect(r.status == 0, "\(r.err)")
        let outputs = r.out.split(separator: "\n")
        #expect(outputs.count == records.count)
        for (record, line) in zip(records, outputs) {
            let ids = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [Int]
            #expect(ids == record["ids"] as? [Int], "\(record["id"] ?? "?")")
        }
    }

    @Test func chatTemplateMatchesTransformers() throws {
        let lines = try SharedPaths.lines("fixtures/chat_templates/cases.jsonl").filter { ($0.record["template"] as? String) == "qwen3-8b.chat_template.jinja" }
        let cases = lines.map(\.record)
        let input = lines.map(\.raw).joined(separator: "\n") + "\n"
        let template = SharedPaths.data.appendingPathComponent("qwen3-8b.chat_template.jinja").path
        let r = try osprey(["chat-template", "--template", template], stdin: input)
        #expect(r.status == 0, "\(r.err)")
        let outputs = r.out.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(outputs.count == cases.count)
        for (c, line) in zip(cases, outputs) {
            let value = try JSONSerialization.jsonObject(with: Data(line.utf8), options: .fragmentsAllowed)
            if let expected = c["expected"] as? String {
                #expect(value as? String == expected, "\(c["id"] ?? "?")")
            } else {
                #expect((value as? [String: Any])?["error"] != nil, "\(c["id"] ?? "?") should fail")
            }
        }
    }
}
