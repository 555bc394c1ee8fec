// Splitting input text around added/special tokens as `tokenizers`' AddedVocabulary does
// (`find_matches`): leftmost-longest literal matches, skipped when `single_word` is set and the
// match touches a word character, widened over neighbouring whitespace for `lstrip`/`rstrip`.

/// A run of text to encode, or an added token's id.
enum AddedSegment: Equatable {
    case text(String, atStart: Bool)
    case token(Int)
}

/// Splits `text` on the added tokens `tokens` (indexed like the patterns of `matcher`); empty
/// text segments are dropped. `atStart` says whether `text` begins at offset 0 of the input.
/// `skipSpecial` leaves the text of special tokens unmatched (`encode_special_tokens`).
func splitOnAddedTokens(_ text: String, _ matcher: LiteralMatcher, _ tokens: [AddedTokenSpec], atStart: Bool,
                        skipSpecial: Bool = false) -> [AddedSegment] {
    if text.isEmpty { return [] }
    if matcher.isEmpty { return [.text(text, atStart: atStart)] }
    var copy = text
    let spans: [(Int, Int, Int?)] = copy.withUTF8 { buf in
        var spans: [(Int, Int, Int?)] = []
        var startOffset = 0, from = 0
        while let m = matcher.nextMatch(buf, from: from, end: buf.count) {
            from = m.end
            let token = tokens[m.pattern]
            if skipSpecial && token.special { continue }
            var start = m.start, stop = m.end
            if token.singleWord {
                let startSpace = start == 0 || !isWordScalar(lastScalar(buf, before: start))
                let stopSpace = stop == buf.count || !isWordScalar(decodeScalar(buf, stop).value)
                if !startSpace || !stopSpace { continue }
            }
            if token.lstrip {
                var s = start
                while s > 0 {
                    let prevStart = scalarStart(buf, before: s)
                    guard isWhitespace(decodeScalar(buf, prevStart).value) else { break }
                    s = prevStart
                }
                start = max(s, startOffset)
            }
            if token.rstrip {
                while stop < buf.count {
                    let (v, n) = decodeScalar(buf, stop)
                    guard isWhitespace(v) else { break }
                    stop += n
                }
            }
            if startOffset < start { spans.append((startOffset, start, nil)) }
            spans.append((start, stop, token.id))
            startOffset = stop
        }
        if startOffset < buf.count { spans.append((startOffset, buf.count, nil)) }
        return spans
    }
    let u = text.utf8
    return spans.compactMap { start, end, id in
        if let id { return .token(id) }
        guard end > start else { return nil }
        let s = String(text[u.index(u.startIndex, offsetBy: start)..<u.index(u.startIndex, offsetBy: end)])
        return .text(s, atStart: atStart && start == 0)
    }
}

private func scalarStart(_ buf: UnsafeBufferPointer<UInt8>, before i: Int) -> Int {
    var j = i - 1
    while j > 0 && buf[j] & 0xC0 == 0x80 { j -= 1 }
    return j
}

private func lastScalar(_ buf: UnsafeBufferPointer<UInt8>, before i: Int) -> UInt32 {
    decodeScalar(buf, scalarStart(buf, before: i)).value
}

private func isWhitespace(_ v: UInt32) -> Bool {
    Unicode.Scalar(v)?.properties.isWhitespace ?? false
}

/// Rust's `char::is_alphanumeric() || c == '_'`.
private func isWordScalar(_ v: UInt32) -> Bool {
    guard let s = Unicode.Scalar(v) else { return false }
    if s == "_" || s.properties.isAlphabetic { return true }
    switch s.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
}
