// Harmony over the real vocabulary: TiktokenEncoding (Tiktoken.swift) as the HarmonyTokenizer, and
// the gpt-oss encoding built from o200k_base.tiktoken with openai-harmony 0.0.8's special tokens.

import Foundation

extension TiktokenEncoding: HarmonyTokenizer {
    public func isSpecialToken(_ id: Int) -> Bool { isSpecial(id) }
}

extension HarmonyEncoding {
    /// Harmony for gpt-oss (`HARMONY_GPT_OSS`): o200k_harmony from `vocabDirectory/o200k_base.tiktoken`.
    public static func gptOss(vocabDirectory: URL) throws -> HarmonyEncoding {
        let tokenizer = try TiktokenEncoding.o200kHarmony(vocabDirectory: vocabDirectory, definition: .openAIHarmony)
        return try HarmonyEncoding(tokenizer: tokenizer)
    }
}
