// The tokenizer random checkpoints ship, so that text generation, streaming and chat run end to
// end without a real vocabulary: a byte-level tokenizer.json (GPT-2's byte-to-character alphabet)
// with one token per byte and no merges, then harmony's special tokens from id 256, then
// `<|reserved_N|>` specials up to the model's vocabulary size, so every id a random model can
// produce decodes. Its output is noise, like the model's.
import Foundation
import OspreyCore

extension RandomGptOss {
    /// harmony's formatting tokens, at ids 256, 257, ... of the random tokenizer.
    public static let harmonySpecialTokens = ["<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>",
                                              "<|channel|>", "<|start|>", "<|end|>", "<|message|>", "<|call|>"]

    /// Writes `directory/tokenizer.json`: 256 byte tokens, harmony's specials, reserved specials up to `vocabularySize`.
    public static func writeTokenizer(vocabularySize: Int, to directory: URL) throws {
        guard vocabularySize >= 256 + harmonySpecialTokens.count else {
            throw OspreyError.invalidArgument("a random tokenizer needs a vocabulary of at least \(256 + harmonySpecialTokens.count), got \(vocabularySize)")
        }
        var vocab: [String: Int] = [:]
        for (byte, scalar) in byteAlphabet.enumerated() { vocab[String(Character(scalar))] = byte }
        let specials = (256..<vocabularySize).map { id in
            id - 256 < harmonySpecialTokens.count ? harmonySpecialTokens[id - 256] : "<|reserved_\(id)|>"
        }
        let added: [[String: Any]] = specials.enumerated().map { i, content in
            ["id": 256 + i, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true]
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let json: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": NSNull(), "pre_tokenizer": byteLevel, "post_processor": NSNull(), "decoder": byteLevel,
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": [String]()] as [String: Any],
        ]
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
            .write(to: directory.appendingPathComponent("tokenizer.json"))
    }

    /// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the others for U+0100 on.
    static let byteAlphabet: [Unicode.Scalar] = {
        let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var next = 256
        return (0..<256).map { b in
            if printable.contains(b) { return Unicode.Scalar(UInt32(b))! }
            defer { next += 1 }
            return Unicode.Scalar(UInt32(next))!
        }
    }()
}
