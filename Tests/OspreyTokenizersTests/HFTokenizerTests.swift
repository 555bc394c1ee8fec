// tokenizer.json tokenizers (GPT-2, Mistral 7B, Qwen2/Qwen3, gpt-oss) against Hugging Face
// `tokenizers` 0.23 (hf_tokenizers.jsonl), and the errors for malformed or unsupported files.
import Foundation
import Testing
@testable import OspreyTokenizers

let hfCases = FixtureCase.load("hf_tokenizers.jsonl") { r in
    "\(r["tokenizer"]?.string ?? "?")/\(r["id"]?.string ?? "?")/\(r["add_special_tokens"]?.bool == true ? "special" : "plain")"
}

@Suite struct HFTokenizerFixtureTests {
    @Test func fixturesArePresent() {
        #expect(hfCases.count == 1256)
    }

    @Test(arguments: hfCases)
    func encodeAndDecode(_ c: FixtureCase) throws {
        let r = c.record
        let tokenizer = try Shared.hf(r["tokenizer"]?.string ?? "")
        let text = try #require(r["text"]?.string)
        let expected = ints(r["ids"])
        #expect(try tokenizer.encode(text, addSpecialTokens: r["add_special_tokens"]?.bool ?? false) == expected)
        let decoded = try tokenizer.decode(expected, skipSpecialTokens: false)
        #expect(decoded == r["decoded"]?.string)
        #expect(try tokenizer.decode(expected, skipSpecialTokens: true) == r["decoded_skip_special"]?.string)

        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        var streamed = ""
        for id in expected { streamed += try stream.append(id) }
        streamed += try stream.finish()
        #expect(streamed == decoded)
    }

    /// gpt-oss's tokenizer.json is o200k_harmony in HF form: on text without special-token
    /// text it must give tiktoken's o200k ids.
    @Test(arguments: o200kCases.filter { $0.key.hasPrefix("o200k_base/") && $0.key.hasSuffix("/none") })
    func gptOSSMatchesO200k(_ c: FixtureCase) throws {
        let r = c.record
        let text = try #require(r["text"]?.string)
        guard !text.contains("<|") else { return }
        let tokenizer = try Shared.gptOSS.get()
        #expect(try tokenizer.encode(text, addSpecialTokens: true) == ints(r["ids"]))
    }
}

@Suite struct HFTokenizerErrorTests {
    private func load(_ json: String) throws -> HFTokenizer {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("osprey-\(UUID().uuidString).json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        return try HFTokenizer(tokenizerJSON: url)
    }

    private let model = #""model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#

    @Test func minimalTokenizerWorks() throws {
        let t = try load("{\(model)}")
        #expect(try t.encode("abba", addSpecialTokens: true) == [2, 1, 0])
        #expect(try t.decode([2, 1], skipSpecialTokens: false) == "ab b")
        #expect(t.vocabularySize == 3)
        #expect(t.tokenID(for: "ab") == 2)
    }

    @Test func malformedJSONIsRejected() {
        for json in ["", "{", "[1, 2]", "{\"model\": 3}", #"{"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}}"#,
                     #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#,
                     #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}}"#,
                     #"{"added_tokens": [{"content": "x"}], "model": {"type": "BPE", "vocab": {}, "merges": []}}"#] {
            #expect(throws: TokenizerError.self) { _ = try load(json) }
        }
    }

    @Test func unknownComponentsAreNamed() {
        let cases: [(String, String)] = [
            (#"{"pre_tokenizer": {"type": "Frobnicate"}, \#(model)}"#, "pre-tokenizer type Frobnicate"),
            (#"{"normalizer": {"type": "Precompiled"}, \#(model)}"#, "normalizer type Precompiled"),
            (#"{"decoder": {"type": "CTC"}, \#(model)}"#, "decoder type CTC"),
            (#"{"post_processor": {"type": "BertProcessing"}, \#(model)}"#, "post-processor type BertProcessing"),
            (#"{"model": {"type": "Unigram", "vocab": []}}"#, "model type Unigram"),
        ]
        for (json, component) in cases {
            do {
                _ = try load(json)
                Issue.record("expected an error for \(component)")
            } catch let TokenizerError.unsupportedComponent(_, named) {
                #expect(named.hasPrefix(component))
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
    }

    @Test func idsOutsideTheVocabularyThrow() throws {
        let t = try Shared.mistral.get()
        #expect(throws: TokenizerError.idOutOfRange(id: 32_000, vocabularySize: 32_000)) { try t.decode([1, 32_000], skipSpecialTokens: false) }
        #expect(throws: TokenizerError.self) { try t.decode([-5], skipSpecialTokens: true) }
        var stream = StreamingDetokenizer(tokenizer: try Shared.gpt2.get())
        #expect(throws: TokenizerError.self) { try stream.append(1_000_000) }
    }

    @Test func loadTokenizerAcceptsFolderAndFile() throws {
        #expect(throws: TokenizerError.self) { _ = try loadTokenizer(at: URL(fileURLWithPath: "/nonexistent/tokenizer.json")) }
        let t = try loadTokenizer(at: Shared.data.appendingPathComponent("gpt2.tokenizer.json"))
        #expect(try t.encode("Hello world", addSpecialTokens: false) == [15496, 995])
        #expect(t.tokenID(for: "<|endoftext|>") == 50256)
    }
}
