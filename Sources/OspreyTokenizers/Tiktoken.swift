// tiktoken encodings: rank files (`base64(bytes) rank` per line), the o200k split pattern, and the
// special tokens of o200k_base and o200k_harmony (definitions in shared/fixtures/tokenizers/README.md).
// Encoding follows tiktoken 0.14: split with the pattern, look each piece up whole, else merge
// its bytes by rank. Special-token text is matched only where `allowedSpecial` says so.
import Foundation

/// A tiktoken encoding (o200k_base, o200k_harmony, or any rank file with the o200k pattern).
public final class TiktokenEncoding: Tokenizer {
    /// Which definition of o200k_harmony's special tokens to use.
    public enum HarmonyDefinition: Sendable {
        /// tiktoken 0.14's `o200k_harmony` (`<|endofprompt|>` is special, ids up to 201087).
        case tiktoken
        /// openai-harmony 0.0.8's (`<|endofprompt|>` is plain text; adds `<|reserved_201088|>`).
        case openAIHarmony
    }

    /// The encoding's name (`o200k_base`, `o200k_harmony`, ...).
    public let name: String
    /// Special token text to id.
    public let specialTokens: [String: Int]
    /// One more than the largest id.
    public let vocabularySize: Int

    private let core: BPECore
    private let pattern: KnownPattern
    private let tokenBytes: [UInt8]       // all tokens' bytes, by rank
    private let tokenStarts: [Int]        // rank -> start in tokenBytes; -1 for a missing rank
    private let tokenLengths: [Int]
    private let specialNames: [Int: String]
    private let specialMatcher: LiteralMatcher
    private let specialList: [(String, Int)]

    /// o200k_base from `vocabDirectory/o200k_base.tiktoken`.
    public static func o200kBase(vocabDirectory: URL) throws -> TiktokenEncoding {
        try TiktokenEncoding(rankFile: vocabDirectory.appendingPathComponent("o200k_base.tiktoken"), name: "o200k_base",
                             specialTokens: ["<|endoftext|>": 199_999, "<|endofprompt|>": 200_018])
    }

    /// o200k_harmony (gpt-oss) from `vocabDirectory/o200k_base.tiktoken`.
    public static func o200kHarmony(vocabDirectory: URL, definition: HarmonyDefinition = .tiktoken) throws -> TiktokenEncoding {
        var specials: [String: Int] = [
            "<|startoftext|>": 199_998, "<|endoftext|>": 199_999, "<|reserved_200000|>": 200_000,
            "<|reserved_200001|>": 200_001, "<|return|>": 200_002, "<|constrain|>": 200_003,
            "<|reserved_200004|>": 200_004, "<|channel|>": 200_005, "<|start|>": 200_006, "<|end|>": 200_007,
            "<|message|>": 200_008, "<|reserved_200009|>": 200_009, "<|reserved_200010|>": 200_010,
            "<|reserved_200011|>": 200_011, "<|call|>": 200_012,
        ]
        let lastReserved = definition == .tiktoken ? 201_087 : 201_088
        for id in 200_013...lastReserved { specials["<|reserved_\(id)|>"] = id }
        if definition == .tiktoken { specials["<|endofprompt|>"] = 200_018 }
        return try TiktokenEncoding(rankFile: vocabDirectory.appendingPathComponent("o200k_base.tiktoken"),
                                    name: "o200k_harmony", specialTokens: specials)
    }

    /// Loads any rank file with the o200k split pattern and the given special tokens.
    public init(rankFile: URL, name: String, specialTokens: [String: Int]) throws {
        let file = rankFile.lastPathComponent
        guard let data = FileManager.default.contents(atPath: rankFile.path) else {
            throw TokenizerError.unreadableFile(path: rankFile.path, reason: "cannot open")
        }
        let ranks = try parseRankFile([UInt8](data), file: file)
        self.name = name
        self.pattern = .o200k
        self.specialTokens = specialTokens
        allSpecialTokens = Set(specialTokens.keys)
        var bytes: [UInt8] = [], entryStarts: [Int] = [0], values: [Int32] = []
        let maxRank = ranks.map(\.rank).max() ?? -1
        var starts = [Int](repeating: -1, count: maxRank + 2)
        bytes.reserveCapacity(ranks.count * 8)
        var order = [Int](repeating: -1, count: maxRank + 1)
        for (i, entry) in ranks.enumerated() {
            if order[entry.rank] >= 0 {
                throw TokenizerError.malformed(file: file, field: "rank \(entry.rank)", reason: "rank appears twice")
            }
            order[entry.rank] = i
        }
        var lengths = [Int](repeating: 0, count: maxRank + 1)
        for rank in 0...max(maxRank, 0) where maxRank >= 0 {
            let i = order[rank]
            guard i >= 0 else { continue }
            starts[rank] = bytes.count
            bytes.append(contentsOf: ranks[i].bytes)
            lengths[rank] = ranks[i].bytes.count
            entryStarts.append(bytes.count)
            values.append(Int32(rank))
        }
        let encoder = ByteSequenceMap(bytes: bytes, starts: entryStarts, values: values)
        // Pair map: every (a, b) whose concatenation is a token merges into it at that token's rank.
        var pairs: [(UInt32, UInt32, UInt32, UInt32)] = []
        bytes.withUnsafeBufferPointer { buf in
            guard let base = buf.baseAddress else { return }
            for rank in 0...max(maxRank, 0) where maxRank >= 0 && starts[rank] >= 0 && lengths[rank] > 1 {
                let p = base + starts[rank]
                for k in 1..<lengths[rank] {
                    guard let a = encoder.lookup(p, k), let b = encoder.lookup(p + k, lengths[rank] - k) else { continue }
                    pairs.append((UInt32(a), UInt32(b), UInt32(rank), UInt32(rank)))
                }
            }
        }
        core = BPECore(encoder: encoder, pairs: PairMap(pairs), wholePieceFirst: true)
        guard core.allBytesPresent else {
            throw TokenizerError.malformed(file: file, field: "ranks", reason: "not every single byte has a rank")
        }
        tokenBytes = bytes
        tokenStarts = starts
        tokenLengths = lengths
        var names: [Int: String] = [:]
        for (text, id) in specialTokens where names[id] == nil || text == "<|endofprompt|>" { names[id] = text }
        specialNames = names
        specialList = specialTokens.sorted { $0.value < $1.value }
        specialMatcher = LiteralMatcher(specialList.map { Array($0.0.utf8) })
        vocabularySize = max(maxRank, specialTokens.values.max() ?? -1) + 1
    }

    /// Encodes with every special-token text treated as plain text (tiktoken `encode_ordinary`).
    public func encodeOrdinary(_ text: String) -> [Int] {
        var text = text
        return text.withUTF8 { buf in
            var out: [Int] = []
            out.reserveCapacity(buf.count / 3)
            var scratch = MergeScratch()
            encodeOrdinary(buf, 0, buf.count, &out, &scratch)
            return out
        }
    }

    /// tiktoken `encode(text, allowed_special:)`: special-token text in `allowedSpecial` becomes
    /// the special token; any other special-token text in `text` throws `disallowedSpecialToken`.
    public func encode(_ text: String, allowedSpecial: Set<String>) throws -> [Int] {
        var text = text
        return try text.withUTF8 { buf in
            var out: [Int] = []
            out.reserveCapacity(buf.count / 3)
            var scratch = MergeScratch()
            var start = 0
            while let m = specialMatcher.nextMatch(buf, from: start, end: buf.count) {
                let (special, id) = specialList[m.pattern]
                guard allowedSpecial.contains(special) else { throw TokenizerError.disallowedSpecialToken(special) }
                encodeOrdinary(buf, start, m.start, &out, &scratch)
                out.append(id)
                start = m.end
            }
            encodeOrdinary(buf, start, buf.count, &out, &scratch)
            return out
        }
    }

    /// Every special token's text, for `encode(_:allowedSpecial:)` with tiktoken's "all".
    public let allSpecialTokens: Set<String>

    /// `Tokenizer` conformance: special-token text is matched (as Hugging Face tokenizers does);
    /// tiktoken adds no BOS/EOS, so `addSpecialTokens` changes nothing.
    public func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] {
        try encode(text, allowedSpecial: allSpecialTokens)
    }

    /// The concatenated bytes of `ids` (special tokens as their text).
    public func decodeBytes(_ ids: [Int]) throws -> [UInt8] {
        var out: [UInt8] = []
        for id in ids { try appendBytes(of: id, to: &out, skipSpecial: false) }
        return out
    }

    /// Decodes as tiktoken does: bytes to UTF-8 with U+FFFD for invalid sequences.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool) throws -> String {
        var out: [UInt8] = []
        for id in ids { try appendBytes(of: id, to: &out, skipSpecial: skipSpecialTokens) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of one token.
    public func tokenBytes(for id: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        try appendBytes(of: id, to: &out, skipSpecial: false)
        return out
    }

    /// Whether `id` is one of the special tokens.
    public func isSpecial(_ id: Int) -> Bool { specialNames[id] != nil }

    public func tokenID(for token: String) -> Int? {
        if let id = specialTokens[token] { return id }
        return core.encoder.lookup(Array(token.utf8)).map(Int.init)
    }

    private func appendBytes(of id: Int, to out: inout [UInt8], skipSpecial: Bool) throws {
        if id >= 0 && id < tokenLengths.count && tokenStarts[id] >= 0 {
            let start = tokenStarts[id]
            out.append(contentsOf: tokenBytes[start..<(start + tokenLengths[id])])
        } else if let special = specialNames[id] {
            if !skipSpecial { out.append(contentsOf: special.utf8) }
        } else {
            throw TokenizerError.idOutOfRange(id: id, vocabularySize: vocabularySize)
        }
    }

    private func encodeOrdinary(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int,
                                _ out: inout [Int], _ scratch: inout MergeScratch) {
        guard let base = buf.baseAddress else { return }
        var i = start
        while i < end {
            let e = pattern.matchEnd(buf, i, end)
            core.encodePiece(base + i, e - i, &out, &scratch)
            i = e
        }
    }
}

/// Parses `base64 rank` lines.
private func parseRankFile(_ data: [UInt8], file: String) throws -> [(bytes: [UInt8], rank: Int)] {
    var result: [(bytes: [UInt8], rank: Int)] = []
    result.reserveCapacity(200_000)
    var table = [Int16](repeating: -1, count: 256)
    for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { table[Int(c)] = Int16(i) }
    var i = 0, line = 1
    while i < data.count {
        var lineEnd = i
        while lineEnd < data.count && data[lineEnd] != 0x0A { lineEnd += 1 }
        defer { i = lineEnd + 1; line += 1 }
        var stop = lineEnd
        if stop > i && data[stop - 1] == 0x0D { stop -= 1 }
        if stop == i { continue }
        guard let space = data[i..<stop].firstIndex(of: 0x20) else {
            throw TokenizerError.malformed(file: file, field: "line \(line)", reason: "expected `base64 rank`")
        }
        var bytes: [UInt8] = [], acc: UInt32 = 0, bits = 0
        for k in i..<space where data[k] != 0x3D {
            let v = table[Int(data[k])]
            guard v >= 0 else { throw TokenizerError.malformed(file: file, field: "line \(line)", reason: "invalid base64") }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 { bits -= 8; bytes.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits))) }
        }
        guard let rank = Int(String(decoding: data[(space + 1)..<stop], as: UTF8.self)), rank >= 0, rank < 1 << 30 else {
            throw TokenizerError.malformed(file: file, field: "line \(line)", reason: "invalid rank")
        }
        guard !bytes.isEmpty else { throw TokenizerError.malformed(file: file, field: "line \(line)", reason: "empty token") }
        result.append((bytes, rank))
    }
    return result
}
