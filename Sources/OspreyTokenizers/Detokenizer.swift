// Streaming detokenization: turns ids arriving one at a time into text deltas that never split a
// UTF-8 character. Byte-level tokenizers (tiktoken, tokenizer.json with a ByteLevel decoder) are cut
// exactly at UTF-8 boundaries: bytes that may still become a character are held back, bytes that
// can never be valid become U+FFFD at once, as a full decode would. Other tokenizers (Metaspace /
// ByteFallback decoders) re-decode a short window and emit the new suffix once it does not end in
// U+FFFD, so decoder rules such as "strip the first space" apply as in a full decode.

/// Incremental detokenizer; feed ids with `append`, then call `finish` at the end of the stream.
/// The concatenation of everything returned equals `decode(allIds)`.
public struct StreamingDetokenizer: Sendable {
    private let tokenizer: any Tokenizer
    private let skipSpecialTokens: Bool
    private let byteMode: Bool
    private var pending: [UInt8] = []
    private var ids: [Int] = []
    private var prefixOffset = 0
    private var readOffset = 0

    /// - Parameters:
    ///   - tokenizer: the tokenizer that produced the ids.
    ///   - skipSpecialTokens: drop special tokens from the text, as `decode(_:skipSpecialTokens:)` does.
    public init(tokenizer: any Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        if tokenizer is TiktokenEncoding {
            byteMode = true
        } else if let hf = tokenizer as? HFTokenizer, hf.hasByteLevelDecoder {
            byteMode = true
        } else {
            byteMode = false
        }
    }

    /// Adds one id; returns the text that became complete (possibly empty).
    public mutating func append(_ id: Int) throws -> String {
        if byteMode {
            pending += try bytes(of: id)
            let cut = completePrefixLength(pending)
            guard cut > 0 else { return "" }
            let text = String(decoding: pending[..<cut], as: UTF8.self)
            pending.removeFirst(cut)
            return text
        }
        ids.append(id)
        let previous = try tokenizer.decode(Array(ids[prefixOffset..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let current = try tokenizer.decode(Array(ids[prefixOffset...]), skipSpecialTokens: skipSpecialTokens)
        guard current.unicodeScalars.count > previous.unicodeScalars.count, current.unicodeScalars.last != "\u{FFFD}",
              current.unicodeScalars.starts(with: previous.unicodeScalars) else { return "" }
        let delta = String(String.UnicodeScalarView(current.unicodeScalars.dropFirst(previous.unicodeScalars.count)))
        prefixOffset = readOffset
        readOffset = ids.count
        return delta
    }

    /// Flushes what is held back (an incomplete character becomes U+FFFD).
    public mutating func finish() throws -> String {
        if byteMode {
            defer { pending.removeAll() }
            return String(decoding: pending, as: UTF8.self)
        }
        guard readOffset < ids.count else { return "" }
        let previous = try tokenizer.decode(Array(ids[prefixOffset..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let current = try tokenizer.decode(Array(ids[prefixOffset...]), skipSpecialTokens: skipSpecialTokens)
        prefixOffset = readOffset
        readOffset = ids.count
        guard current.unicodeScalars.starts(with: previous.unicodeScalars) else { return "" }
        return String(String.UnicodeScalarView(current.unicodeScalars.dropFirst(previous.unicodeScalars.count)))
    }

    private func bytes(of id: Int) throws -> [UInt8] {
        if let t = tokenizer as? TiktokenEncoding {
            if skipSpecialTokens && t.isSpecial(id) { return [] }
            return try t.tokenBytes(for: id)
        }
        if let hf = tokenizer as? HFTokenizer, let b = try hf.byteLevelBytes(of: id, skipSpecialTokens: skipSpecialTokens) {
            return b
        }
        return Array(try tokenizer.decode([id], skipSpecialTokens: skipSpecialTokens).utf8)
    }
}

/// Length of the longest prefix of `bytes` that does not end inside a character that could still
/// be completed by more bytes. Invalid bytes count as complete (they decode to U+FFFD).
func completePrefixLength(_ bytes: [UInt8]) -> Int {
    let n = bytes.count
    var start = n - 1
    // Find the last lead byte among the final three bytes.
    while start >= 0 && start >= n - 3 && bytes[start] & 0xC0 == 0x80 { start -= 1 }
    guard start >= 0 else { return n }
    let lead = bytes[start]
    let need: Int
    switch lead {
    case 0xC2...0xDF: need = 2
    case 0xE0...0xEF: need = 3
    case 0xF0...0xF4: need = 4
    default: return n
    }
    let have = n - start
    guard have < need else { return n }
    // The second byte has a narrower range after some lead bytes (no overlongs, surrogates, > U+10FFFF).
    if have >= 2 {
        let second = bytes[start + 1]
        let ok: Bool
        switch lead {
        case 0xE0: ok = (0xA0...0xBF).contains(second)
        case 0xED: ok = (0x80...0x9F).contains(second)
        case 0xF0: ok = (0x90...0xBF).contains(second)
        case 0xF4: ok = (0x80...0x8F).contains(second)
        default: ok = (0x80...0xBF).contains(second)
        }
        guard ok else { return n }
    }
    return start
}
