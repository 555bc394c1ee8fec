// The string-level components of tokenizer.json, with Hugging Face `tokenizers` 0.23 semantics:
// normalizers, pre-tokenizers (splitting text into pieces) and decoders (token strings to text),
// plus the GPT-2 byte-level alphabet. Hot byte-level encoding bypasses these through the scanners
// (see HFTokenizer.swift); these are the general path.
import Foundation

// MARK: - Byte-level alphabet

/// GPT-2's reversible map between bytes and printable characters.
enum ByteLevelAlphabet {
    /// Scalar value standing for each byte.
    static let scalars: [UInt32] = {
        var map = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable { map[b] = UInt32(b) } else { map[b] = 256 + n; n += 1 }
        }
        return map
    }()

    /// Byte for each scalar value below 324 (the alphabet's range); 0xFFFF where none.
    static let bytes: [UInt16] = {
        var d = [UInt16](repeating: 0xFFFF, count: 324)
        for (b, c) in scalars.enumerated() { d[Int(c)] = UInt16(b) }
        return d
    }()

    /// The bytes a token string stands for, or nil when a character is outside the alphabet.
    static func decode(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for s in token.unicodeScalars {
            guard s.value < 324, bytes[Int(s.value)] != 0xFFFF else { return nil }
            out.append(UInt8(bytes[Int(s.value)]))
        }
        return out
    }
}

// MARK: - Normalizers

extension NormalizerSpec {
    func apply(_ s: String) -> String {
        switch self {
        case .nfc: return s.utf8.allSatisfy { $0 < 0x80 } ? s : s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase: return s.lowercased()
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .replace(let pattern, let content): return pattern.replaceAll(in: s, with: content)
        case .strip(let left, let right):
            var scalars = Substring(s).unicodeScalars
            if left { while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() } }
            if right { while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() } }
            return String(scalars)
        case .sequence(let steps): return steps.reduce(s) { $1.apply($0) }
        }
    }
}

extension TextPattern {
    func replaceAll(in s: String, with content: String) -> String {
        var out = "", last = s.utf8.startIndex
        for r in matches(in: s) {
            out += s[last..<r.lowerBound]
            out += content
            last = r.upperBound
        }
        out += s[last...]
        return out
    }

    /// Non-overlapping matches, left to right.
    func matches(in s: String) -> [Range<String.Index>] {
        switch self {
        case .string(let p):
            let needle = Array(p.utf8), hay = Array(s.utf8)
            guard !needle.isEmpty, hay.count >= needle.count else { return [] }
            var result: [Range<String.Index>] = [], i = 0
            let u = s.utf8
            while i + needle.count <= hay.count {
                if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) {
                    result.append(u.index(u.startIndex, offsetBy: i)..<u.index(u.startIndex, offsetBy: i + needle.count))
                    i += needle.count
                } else {
                    i += 1
                }
            }
            return result
        case .regex(let source):
            if let known = KnownPattern(regex: source) {
                var copy = s
                let offsets: [(Int, Int)] = copy.withUTF8 { buf in
                    var out: [(Int, Int)] = [], i = 0
                    while i < buf.count { let e = known.matchEnd(buf, i, buf.count); out.append((i, e)); i = e }
                    return out
                }
                let u = s.utf8
                return offsets.map { u.index(u.startIndex, offsetBy: $0.0)..<u.index(u.startIndex, offsetBy: $0.1) }
            }
            guard let regex = try? Regex(source).matchingSemantics(.unicodeScalar) else { return [] }
            return s.matches(of: regex).map(\.range).filter { !$0.isEmpty }
        }
    }
}

// MARK: - Pre-tokenizers

/// A piece of text on its way to the model; `atStart` when it begins at offset 0 of the input.
struct Piece {
    var text: String
    var atStart: Bool
}

extension PreTokenizerSpec {
    func apply(_ pieces: [Piece]) -> [Piece] {
        switch self {
        case .sequence(let steps): return steps.reduce(pieces) { $1.apply($0) }
        case .byteLevel(let addPrefixSpace, let useRegex):
            return pieces.flatMap { piece -> [Piece] in
                var p = piece
                if addPrefixSpace && p.text.utf8.first != 0x20 { p.text = " " + p.text }
                return useRegex ? split(p, TextPattern.regex(KnownPattern.gpt2Source).matches(in: p.text), .isolated) : [p]
            }
        case .split(let pattern, let behavior, let invert):
            return pieces.flatMap { split($0, pattern.matches(in: $0.text), behavior, invert: invert) }
        case .metaspace(let replacement, let scheme, let splitOnReplacement):
            return pieces.flatMap { piece -> [Piece] in
                var p = piece
                p.text = TextPattern.string(" ").replaceAll(in: p.text, with: replacement)
                let prepend = scheme == .always || (scheme == .first && p.atStart)
                if prepend && !p.text.utf8.starts(with: replacement.utf8) { p.text = replacement + p.text }
                guard splitOnReplacement else { return [p] }
                return split(p, TextPattern.string(replacement).matches(in: p.text), .mergedWithNext)
            }
        case .digits(let individual):
            return pieces.flatMap { split($0, scalarMatches($0.text) { $0.properties.numericType != nil && isNumber($0) },
                                          individual ? .isolated : .contiguous) }
        case .whitespaceSplit:
            return pieces.flatMap { split($0, scalarMatches($0.text) { $0.properties.isWhitespace }, .removed) }
        }
    }

    private func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    private func scalarMatches(_ s: String, _ predicate: (Unicode.Scalar) -> Bool) -> [Range<String.Index>] {
        var result: [Range<String.Index>] = []
        var i = s.unicodeScalars.startIndex
        while i < s.unicodeScalars.endIndex {
            let next = s.unicodeScalars.index(after: i)
            if predicate(s.unicodeScalars[i]) { result.append(i..<next) }
            i = next
        }
        return result
    }

    /// `NormalizedString::split` with `behavior`; empty pieces are dropped.
    private func split(_ piece: Piece, _ matches: [Range<String.Index>], _ behavior: SplitBehavior, invert: Bool = false) -> [Piece] {
        let s = piece.text
        guard !s.isEmpty else { return [] }
        var spans: [(Range<String.Index>, Bool)] = []
        var prev = s.startIndex
        for m in matches {
            if prev != m.lowerBound { spans.append((prev..<m.lowerBound, false)) }
            spans.append((m, true))
            prev = m.upperBound
        }
        if prev != s.endIndex { spans.append((prev..<s.endIndex, false)) }
        if invert { spans = spans.map { ($0.0, !$0.1) } }
        var kept: [(Range<String.Index>, Bool)] = []   // (range, remove)
        switch behavior {
        case .isolated: kept = spans.map { ($0.0, false) }
        case .removed: kept = spans
        case .contiguous, .mergedWithPrevious:
            var previousMatch = false
            for (r, isMatch) in spans {
                let merge = behavior == .contiguous ? isMatch == previousMatch : isMatch && !previousMatch
                if merge, let last = kept.last { kept[kept.count - 1] = (last.0.lowerBound..<r.upperBound, false) } else { kept.append((r, false)) }
                previousMatch = isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for (r, isMatch) in spans.reversed() {
                if isMatch && !previousMatch, let last = kept.last { kept[kept.count - 1] = (r.lowerBound..<last.0.upperBound, false) } else { kept.append((r, false)) }
                previousMatch = isMatch
            }
            kept.reverse()
        }
        return kept.compactMap { r, remove in
            guard !remove, !r.isEmpty else { return nil }
            return Piece(text: String(s[r]), atStart: piece.atStart && r.lowerBound == s.startIndex)
        }
    }
}

// MARK: - Decoders

extension DecoderSpec {
    func apply(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let steps): return steps.reduce(tokens) { $1.apply($0) }
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens { bytes += ByteLevelAlphabet.decode(t) ?? Array(t.utf8) }
            return [String(decoding: bytes, as: UTF8.self)]
        case .metaspace(let replacement, let scheme):
            let r = replacement.unicodeScalars.first
            return tokens.enumerated().map { i, t in
                var out = String.UnicodeScalarView()
                for c in t.unicodeScalars {
                    if c == r { if !(i == 0 && scheme != .never) { out.append(" ") } } else { out.append(c) }
                }
                return String(out)
            }
        case .byteFallback:
            var out: [String] = [], pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let s = String(validating: pending, as: UTF8.self) { out.append(s) } else {
                    out += Array(repeating: "\u{FFFD}", count: pending.count)
                }
                pending.removeAll()
            }
            for t in tokens {
                let u = Array(t.utf8)
                if u.count == 6, t.hasPrefix("<0x"), u[5] == UInt8(ascii: ">"),
                   let b = UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16) {
                    pending.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .fuse: return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { t in
                let chars = Array(t.unicodeScalars)
                var lo = 0, hi = chars.count
                while lo < min(start, chars.count), chars[lo] == content { lo += 1 }
                var removed = 0
                while removed < stop, hi > lo, chars[hi - 1] == content { hi -= 1; removed += 1 }
                var out = String.UnicodeScalarView()
                out.append(contentsOf: chars[lo..<hi])
                return String(out)
            }
        case .replace(let pattern, let content): return tokens.map { pattern.replaceAll(in: $0, with: content) }
        case .bpeSuffix(let suffix):
            return tokens.enumerated().map { i, t in TextPattern.string(suffix).replaceAll(in: t, with: i == tokens.count - 1 ? "" : " ") }
        }
    }
}
