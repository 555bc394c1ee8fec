// tokenizer.json variants built by editing the shipped files, with ids from Hugging Face
// `tokenizers` 0.23.3 (computed once with `Tokenizer.from_file(...).encode(text)` on the same
// edited JSON): the cl100k/Llama 3 split scanner, added-token flags (lstrip, rstrip, single_word)
// and id assignment, Llama 2's legacy Prepend/Replace normalizer, Digits plus a Split regex that
// goes through Swift Regex, Metaspace with split, and a TemplateProcessing BOS+EOS.
import Foundation
import Testing
@testable import OspreyTokenizers

@Suite struct HFVariantTests {
    private func variant(of file: String, _ edits: [(String, String)]) throws -> HFTokenizer {
        var json = try String(contentsOf: Shared.data.appendingPathComponent(file), encoding: .utf8)
            .replacingOccurrences(of: "\r\n", with: "\n")   // the Mistral file has CRLF line ends
        for (old, new) in edits {
            #expect(json.contains(old), "edit target missing in \(file)")
            json = json.replacingOccurrences(of: old, with: new)
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("osprey-variant-\(UUID().uuidString).json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        return try HFTokenizer(tokenizerJSON: url)
    }

    private static let gpt2PreTokenizer = #""pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true}"#
    private static let byteLevelNoRegex = #"{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}"#
    private static let mistralPreTokenizer =
        "\"pre_tokenizer\": {\n    \"type\": \"Metaspace\",\n    \"replacement\": \"\u{2581}\",\n    \"prepend_scheme\": \"first\",\n    \"split\": false\n  },"

    @Test func cl100kSplit() throws {
        let cl100k = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"#
        let t = try variant(of: "gpt2.tokenizer.json", [(Self.gpt2PreTokenizer,
            #""pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\#(cl100k)"},"behavior":"Isolated","invert":false},\#(Self.byteLevelNoRegex)]}"#)])
        #expect(try t.encode("I'VE got 12345 apples\r\n\n  and it's ok ſ'S", addSpecialTokens: true)
                == [40, 6, 6089, 1392, 220, 10163, 2231, 22514, 201, 628, 220, 290, 340, 338, 12876, 25370, 123, 6, 50])
    }

    @Test func addedTokenFlags() throws {
        let added = #"{"id":7,"content":"<mask>","single_word":false,"lstrip":true,"rstrip":false,"normalized":false,"special":true},"#
            + #"{"id":8,"content":"foo","single_word":true,"lstrip":false,"rstrip":false,"normalized":true,"special":false},"#
            + #"{"id":9,"content":"</x>","single_word":false,"lstrip":false,"rstrip":true,"normalized":false,"special":true},"#
        let t = try variant(of: "gpt2.tokenizer.json", [(#""added_tokens":["#, #""added_tokens":["# + added)])
        let ids = try t.encode("x<mask>y  </x>  z foo afoo", addSpecialTokens: true)
        #expect(ids == [87, 50257, 88, 220, 220, 50258, 89, 220, 21943, 6580, 2238])
        #expect(try t.decode(ids, skipSpecialTokens: true) == "xy  z foo afoo")
        #expect(t.tokenID(for: "<mask>") == 50257)
    }

    @Test func llama2LegacyNormalizer() throws {
        let t = try variant(of: "mistral-7b-v0.1.tokenizer.json", [
            (#""normalizer": null,"#, #""normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},"#),
            (Self.mistralPreTokenizer, #""pre_tokenizer": null,"#),
        ])
        let ids = try t.encode("<s>Hello  world\u{E9} \u{1F600}", addSpecialTokens: true)
        #expect(ids == [1, 1, 22557, 28705, 1526, 28797, 28705, 30575])
        #expect(try t.decode(ids, skipSpecialTokens: true) == "Hello  world\u{E9} \u{1F600}")
    }

    @Test func digitsAndRegexFallback() throws {
        let t = try variant(of: "gpt2.tokenizer.json", [(Self.gpt2PreTokenizer,
            #""pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"Split","pattern":{"Regex":"[A-Za-z]+|\\s+"},"behavior":"MergedWithNext","invert":false},{"type":"Split","pattern":{"String":"o"},"behavior":"Contiguous","invert":true},\#(Self.byteLevelNoRegex)]}"#)])
        #expect(try t.encode("abc123 xyz  foo", addSpecialTokens: false) == [39305, 16, 17, 18, 220, 5431, 89, 220, 220, 69, 2238])
    }

    @Test func metaspaceAlwaysWithSplit() throws {
        let t = try variant(of: "mistral-7b-v0.1.tokenizer.json", [(Self.mistralPreTokenizer,
            #""pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},"#)])
        #expect(try t.encode("<s>Hi there  you", addSpecialTokens: true) == [1, 1, 15359, 736, 28705, 368])
    }

    @Test func prefixSpaceAndTemplate() throws {
        let template = #""post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|endoftext|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<|endoftext|>","type_id":0}}],"pair":[],"special_tokens":{"<|endoftext|>":{"id":"<|endoftext|>","ids":[50256],"tokens":["<|endoftext|>"]}}}"#
        let t = try variant(of: "gpt2.tokenizer.json", [
            (Self.gpt2PreTokenizer, #""pre_tokenizer":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true}"#),
            (#""post_processor":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false}"#, template),
        ])
        let ids = try t.encode("hi<|endoftext|>there", addSpecialTokens: true)
        #expect(ids == [50256, 23105, 50256, 612, 50256])
        #expect(try t.decode(ids, skipSpecialTokens: true) == " hi there")
    }
}
