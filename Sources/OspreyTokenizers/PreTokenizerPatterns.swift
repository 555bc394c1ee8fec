// Hand-written scanners for the split regexes that real tokenizers use: o200k (tiktoken, gpt-oss),
// cl100k/Llama 3 (digits in threes), Qwen2 (single digits) and GPT-2 (ByteLevel's built-in regex).
// Each returns where the regex match starting at a position ends, with the exact semantics of the
// backtracking engines the references use (fancy-regex, Oniguruma): leftmost-first alternation,
// greedy quantifiers, `\s` = White_Space, `(?i)` folding 's' to 'ſ' as Unicode simple case folding
// does. These patterns match at every position, so their matches tile the input. Any other regex
// goes through Swift Regex (RegexSplitter); the scanners are ~20x faster (see benchmarks/results).

/// A split regex the scanner implements natively.
enum KnownPattern: Sendable, Equatable {
    case o200k
    case cl100k      // Llama 3 / cl100k in tokenizer.json form: \p{N}{1,3}
    case qwen2       // like cl100k with \p{N} one at a time
    case gpt2

    static let o200kSource = [
        #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"#,
        #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"#,
        #"\p{N}{1,3}"#,
        #" ?[^\s\p{L}\p{N}]+[\r\n/]*"#,
        #"\s*[\r\n]+"#,
        #"\s+(?!\S)"#,
        #"\s+"#,
    ].joined(separator: "|")
    static let cl100kSource =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Source =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    init?(regex: String) {
        switch regex {
        case Self.o200kSource: self = .o200k
        case Self.cl100kSource: self = .cl100k
        case Self.qwen2Source: self = .qwen2
        case Self.gpt2Source: self = .gpt2
        default: return nil
        }
    }

    /// End of the match that starts at `i` (always > i) in `p[..<end]`, valid UTF-8.
    @inline(__always)
    func matchEnd(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        let s = PatternScanner(p: p, end: end, table: ScalarClassTable.shared)
        switch self {
        case .o200k: return s.o200k(i)
        case .cl100k: return s.cl100k(i, maxDigits: 3)
        case .qwen2: return s.cl100k(i, maxDigits: 1)
        case .gpt2: return s.gpt2(i)
        }
    }
}

struct PatternScanner {
    let p: UnsafeBufferPointer<UInt8>
    let end: Int
    let table: ScalarClassTable

    private typealias F = CharFlags

    @inline(__always) private func at(_ i: Int) -> (flags: UInt8, length: Int) {
        let b = p[i]
        if b < 0x80 { return (table.ascii[Int(b)], 1) }
        let (v, n) = decodeScalar(p, i)
        return (table.flags(v), n)
    }

    @inline(__always) private func isPunct(_ f: UInt8) -> Bool { f & (F.space | F.letter | F.number) == 0 }

    /// Runs over characters whose flags intersect `mask`.
    @inline(__always) private func run(from i: Int, _ mask: UInt8) -> Int {
        var j = i
        while j < end {
            let (f, n) = at(j)
            if f & mask == 0 { break }
            j += n
        }
        return j
    }

    @inline(__always) private func runNumbers(from i: Int, max: Int) -> Int {
        var j = i, count = 0
        while j < end && count < max {
            let (f, n) = at(j)
            if f & F.number == 0 { break }
            j += n
            count += 1
        }
        return j
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at `i` (which must hold an apostrophe); `(?i)` when `fold`.
    @inline(__always) private func contraction(_ i: Int, fold: Bool) -> Int? {
        guard i < end, p[i] == 0x27, i + 1 < end else { return nil }
        func lower(_ b: UInt8) -> UInt8 { fold && b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
        let c = lower(p[i + 1])
        switch c {
        case 0x73, 0x74, 0x6D, 0x64: return i + 2                       // s t m d
        case 0x72, 0x76: return i + 2 < end && lower(p[i + 2]) == 0x65 ? i + 3 : nil   // re ve
        case 0x6C: return i + 2 < end && lower(p[i + 2]) == 0x6C ? i + 3 : nil         // ll
        case 0xC5: return fold && i + 2 < end && p[i + 2] == 0xBF ? i + 3 : nil       // ſ (folds to s)
        default: return nil
        }
    }

    /// `[Upper]*[Lower]+` from `s` (o200k's first word form), with backtracking.
    @inline(__always) private func lowerTailWord(_ s: Int) -> Int? {
        guard s < end else { return nil }
        var j = s, lastBothEnd = -1
        while j < end {
            let (f, n) = at(j)
            if f & F.upper == 0 { break }
            j += n
            if f & F.lower != 0 { lastBothEnd = j }
        }
        if j < end, at(j).flags & F.lower != 0 { return run(from: j, F.lower) }
        return lastBothEnd >= 0 ? lastBothEnd : nil
    }

    /// `[Upper]+[Lower]*` from `s` (o200k's second word form).
    @inline(__always) private func upperHeadWord(_ s: Int) -> Int? {
        guard s < end, at(s).flags & F.upper != 0 else { return nil }
        return run(from: run(from: s, F.upper), F.lower)
    }

    /// `\s*[\r\n]+` (when `newlines`), then `\s+(?!\S)`, then `\s+`, at a whitespace character.
    @inline(__always) private func whitespace(_ i: Int, newlines: Bool) -> Int {
        var j = i, lastStart = i, lastNewline = -1
        while j < end {
            let (f, n) = at(j)
            if f & F.space == 0 { break }
            if f & F.newline != 0 { lastNewline = j }
            lastStart = j
            j += n
        }
        if newlines && lastNewline >= 0 { return lastNewline + 1 }
        if j == end || lastStart == i { return j }
        return lastStart
    }

    /// ` ?[^\s\p{L}\p{N}]+` followed by any of `trail` bytes; nil when it does not match at `i`.
    @inline(__always) private func punctuation(_ i: Int, _ f0: UInt8, trailSlash: Bool, trailNewlines: Bool) -> Int? {
        var s = i
        if p[i] == 0x20, i + 1 < end, isPunct(at(i + 1).flags) {
            s = i + 1
        } else if !isPunct(f0) {
            return nil
        }
        var j = s
        while j < end {
            let (f, n) = at(j)
            if !isPunct(f) { break }
            j += n
        }
        if trailNewlines {
            while j < end, p[j] == 0x0A || p[j] == 0x0D || (trailSlash && p[j] == 0x2F) { j += 1 }
        }
        return j
    }

    func o200k(_ i: Int) -> Int {
        let (f0, n0) = at(i)
        let prefix = f0 & (F.letter | F.number | F.newline) == 0
        if prefix, let e = lowerTailWord(i + n0) { return contraction(e, fold: true) ?? e }
        if f0 & (F.upper | F.lower) != 0, let e = lowerTailWord(i) { return contraction(e, fold: true) ?? e }
        if prefix, let e = upperHeadWord(i + n0) { return contraction(e, fold: true) ?? e }
        if let e = upperHeadWord(i) { return contraction(e, fold: true) ?? e }
        if f0 & F.number != 0 { return runNumbers(from: i, max: 3) }
        if let e = punctuation(i, f0, trailSlash: true, trailNewlines: true) { return e }
        if f0 & F.space != 0 { return whitespace(i, newlines: true) }
        return i + n0
    }

    func cl100k(_ i: Int, maxDigits: Int) -> Int {
        if let e = contraction(i, fold: true) { return e }
        let (f0, n0) = at(i)
        if f0 & (F.letter | F.number | F.newline) == 0, i + n0 < end, at(i + n0).flags & F.letter != 0 {
            return run(from: i + n0, F.letter)
        }
        if f0 & F.letter != 0 { return run(from: i, F.letter) }
        if f0 & F.number != 0 { return runNumbers(from: i, max: maxDigits) }
        if let e = punctuation(i, f0, trailSlash: false, trailNewlines: true) { return e }
        if f0 & F.space != 0 { return whitespace(i, newlines: true) }
        return i + n0
    }

    func gpt2(_ i: Int) -> Int {
        if let e = contraction(i, fold: false) { return e }
        let (f0, n0) = at(i)
        if p[i] == 0x20, i + 1 < end {
            let f1 = at(i + 1).flags
            if f1 & F.letter != 0 { return run(from: i + 1, F.letter) }
            if f1 & F.number != 0 { return run(from: i + 1, F.number) }
        }
        if f0 & F.letter != 0 { return run(from: i, F.letter) }
        if f0 & F.number != 0 { return run(from: i, F.number) }
        if let e = punctuation(i, f0, trailSlash: false, trailNewlines: false) { return e }
        if f0 & F.space != 0 { return whitespace(i, newlines: false) }
        return i + n0
    }
}
