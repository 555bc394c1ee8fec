// Harmony over a tokenizer.json vocabulary (gpt-oss folders ship o200k_harmony as tokenizer.json):
// HFTokenizer as the HarmonyTokenizer that HarmonyEncoding renders and parses with. Ordinary text
// is encoded with special-token text left as text, as harmony's `encode_ordinary` does.

extension HFTokenizer: HarmonyTokenizer {
    public func encodeOrdinary(_ text: String) -> [Int] {
        encode(text, addSpecialTokens: false, matchSpecialTokens: false)
    }

    public func decodeBytes(_ ids: [Int]) throws -> [UInt8] {
        var out: [UInt8] = []
        for id in ids {
            out += try byteLevelBytes(of: id, skipSpecialTokens: false) ?? Array(decode([id], skipSpecialTokens: false).utf8)
        }
        return out
    }
}
