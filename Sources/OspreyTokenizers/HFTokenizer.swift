// A Hugging Face tokenizer.json tokenizer (BPE model) with `tokenizers` 0.23's pipeline:
// added tokens matched in the raw text (non-normalized ones) and then in the normalized text,
// normalizer, pre-tokenizer, BPE (byte-level or with byte fallback / unk), post-processor, and the
// decoder chain. Byte-level tokenizers whose split regex the scanners know (GPT-2, Llama 3, Qwen2,
// o200k) take a fast path that never builds intermediate strings.
import Foundation

/// A tokenizer loaded from a Hugging Face tokenizer.json.
public final class HFTokenizer: Tokenizer {
    /// One more than the largest id (model vocabulary and added tokens).
    public let vocabularySize: Int

    private let spec: TokenizerJSONSpec
    private let core: BPECore
    private let byteLevel: Bool
    private let fastPattern: KnownPattern?
    private let vocab: [String: Int]
    private let idToToken: [String?]
    private let addedByID: [Int: AddedTokenSpec]
    private let addedByContent: [String: Int]
    private let rawAdded: [AddedTokenSpec], rawMatcher: LiteralMatcher
    private let normalizedAdded: [AddedTokenSpec], normalizedMatcher: LiteralMatcher
    private let unkID: Int?
    private let prefixBytes: [UInt8], suffixBytes: [UInt8]
    private let byteFallbackIDs: [Int]?

    /// Loads tokenizer.json at `url`; unsupported components throw `unsupportedComponent`.
    public init(tokenizerJSON url: URL) throws {
        let file = url.lastPathComponent
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TokenizerError.unreadableFile(path: url.path, reason: "cannot open")
        }
        var spec = try TokenizerJSONReader(file: file).read(data)
        spec.addedTokens = Self.assignAddedTokenIDs(spec.addedTokens, vocab: spec.model.vocab)
        var stored = spec
        stored.model.merges = []      // only needed to build the pair map below
        self.spec = stored
        let byteLevel = try Self.isByteLevel(spec.preTokenizer, file: file)
        self.byteLevel = byteLevel
        fastPattern = Self.fastPattern(spec.preTokenizer)
        let model = spec.model
        vocab = model.vocab

        func keyBytes(_ token: String) -> [UInt8]? { byteLevel ? ByteLevelAlphabet.decode(token) : Array(token.utf8) }
        var maxID = model.vocab.values.max() ?? -1
        for t in spec.addedTokens { maxID = max(maxID, t.id) }
        var names = [String?](repeating: nil, count: maxID + 1)
        var bytes: [UInt8] = [], starts = [0], values: [Int32] = []
        for (token, id) in model.vocab.sorted(by: { $0.value < $1.value }) {
            names[id] = token
            guard let key = keyBytes(token) else { continue }
            bytes += key
            starts.append(bytes.count)
            values.append(Int32(id))
        }
        for t in spec.addedTokens where names[t.id] == nil { names[t.id] = t.content }
        idToToken = names
        vocabularySize = maxID + 1

        var pairs: [(UInt32, UInt32, UInt32, UInt32)] = []
        pairs.reserveCapacity(model.merges.count)
        for (rank, (a, b)) in model.merges.enumerated() {
            guard let l = model.vocab[a], let r = model.vocab[b], let merged = model.vocab[a + b] else {
                throw TokenizerError.malformed(file: file, field: "model.merges[\(rank)]",
                                               reason: "\((a + " " + b).debugDescription) uses a token missing from model.vocab")
            }
            pairs.append((UInt32(l), UInt32(r), UInt32(rank), UInt32(merged)))
        }
        core = BPECore(encoder: ByteSequenceMap(bytes: bytes, starts: starts, values: values), pairs: PairMap(pairs),
                       wholePieceFirst: model.ignoreMerges)
        if let unk = model.unkToken {
            guard let id = model.vocab[unk] else {
                throw TokenizerError.malformed(file: file, field: "model.unk_token", reason: "\(unk.debugDescription) is not in model.vocab")
            }
            unkID = id
        } else {
            unkID = nil
        }
        prefixBytes = keyBytes(model.continuingSubwordPrefix) ?? Array(model.continuingSubwordPrefix.utf8)
        suffixBytes = keyBytes(model.endOfWordSuffix) ?? Array(model.endOfWordSuffix.utf8)
        if model.byteFallback {
            byteFallbackIDs = (0..<256).map { model.vocab[String(format: "<0x%02X>", $0)] ?? -1 }
        } else {
            byteFallbackIDs = nil
        }

        var byID: [Int: AddedTokenSpec] = [:]
        for t in spec.addedTokens { byID[t.id] = t }
        addedByID = byID
        var byContent: [String: Int] = [:]
        for t in spec.addedTokens where byContent[t.content] == nil { byContent[t.content] = t.id }
        addedByContent = byContent
        rawAdded = spec.addedTokens.filter { !$0.normalized }
        rawMatcher = LiteralMatcher(rawAdded.map { Array($0.content.utf8) })
        normalizedAdded = spec.addedTokens.filter(\.normalized)
        let normalizer = spec.normalizer
        normalizedMatcher = LiteralMatcher(normalizedAdded.map { Array((normalizer?.apply($0.content) ?? $0.content).utf8) })
    }

    /// `tokenizers` does not trust the ids written in `added_tokens`: content already in the model
    /// vocabulary (or added before) keeps that id, new content gets the next id after the vocabulary.
    private static func assignAddedTokenIDs(_ tokens: [AddedTokenSpec], vocab: [String: Int]) -> [AddedTokenSpec] {
        var assigned: [String: Int] = [:]
        var maxAdded: Int?
        return tokens.map { token in
            var t = token
            if let id = assigned[t.content] ?? vocab[t.content] {
                t.id = id
            } else if let max = maxAdded, max >= vocab.count || vocab.isEmpty {
                t.id = max + 1
            } else {
                t.id = vocab.count
            }
            assigned[t.content] = t.id
            maxAdded = max(maxAdded ?? t.id, t.id)
            return t
        }
    }

    /// The pre-tokenizer maps bytes to GPT-2 characters (its ByteLevel must come last).
    private static func isByteLevel(_ p: PreTokenizerSpec?, file: String) throws -> Bool {
        switch p {
        case .byteLevel?: return true
        case .sequence(let steps)?:
            for (i, step) in steps.enumerated() {
                if case .byteLevel = step, i != steps.count - 1 {
                    throw TokenizerError.unsupportedComponent(file: file, component: "pre-tokenizer ByteLevel before other pre-tokenizers")
                }
                if case .sequence = step, try isByteLevel(step, file: file) {
                    throw TokenizerError.unsupportedComponent(file: file, component: "pre-tokenizer ByteLevel inside a nested Sequence")
                }
            }
            if case .byteLevel? = steps.last { return true }
            return false
        default: return false
        }
    }

    private static func fastPattern(_ p: PreTokenizerSpec?) -> KnownPattern? {
        switch p {
        case .byteLevel(addPrefixSpace: false, useRegex: true)?: return .gpt2
        case .sequence(let steps)? where steps.count == 2:
            guard case .split(.regex(let source), .isolated, invert: false) = steps[0],
                  case .byteLevel(addPrefixSpace: false, useRegex: false) = steps[1] else { return nil }
            return KnownPattern(regex: source)
        default: return nil
        }
    }

    // MARK: - Encoding

    public func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] {
        encode(text, addSpecialTokens: addSpecialTokens, matchSpecialTokens: true)
    }

    /// Encodes `text`. With `matchSpecialTokens` false, text of added tokens marked special is
    /// encoded as plain text (`tokenizers`' `encode_special_tokens`); other added tokens still match.
    public func encode(_ text: String, addSpecialTokens: Bool, matchSpecialTokens: Bool) -> [Int] {
        var out: [Int] = []
        var scratch = MergeScratch()
        let skip = !matchSpecialTokens
        for segment in splitOnAddedTokens(text, rawMatcher, rawAdded, atStart: true, skipSpecial: skip) {
            guard case .text(let raw, let isStart) = segment else {
                if case .token(let id) = segment { out.append(id) }
                continue
            }
            let normalized = spec.normalizer?.apply(raw) ?? raw
            for inner in splitOnAddedTokens(normalized, normalizedMatcher, normalizedAdded, atStart: isStart, skipSpecial: skip) {
                switch inner {
                case .token(let id): out.append(id)
                case .text(let t, let innerStart): encodeSegment(t, atStart: innerStart, &out, &scratch)
                }
            }
        }
        guard addSpecialTokens, let post = spec.postProcessor else { return out }
        return Self.postProcess(post, out)
    }

    private static func postProcess(_ post: PostProcessorSpec, _ ids: [Int]) -> [Int] {
        switch post {
        case .byteLevel: return ids
        case .sequence(let steps): return steps.reduce(ids) { postProcess($1, $0) }
        case .template(let pieces):
            return pieces.flatMap { piece -> [Int] in
                if case .special(let s) = piece { return s }
                return ids
            }
        }
    }

    private func encodeSegment(_ text: String, atStart: Bool, _ out: inout [Int], _ scratch: inout MergeScratch) {
        if byteLevel, let pattern = fastPattern, core.allBytesPresent, prefixBytes.isEmpty, suffixBytes.isEmpty {
            var copy = text
            copy.withUTF8 { buf in
                guard let base = buf.baseAddress else { return }
                var i = 0
                while i < buf.count {
                    let e = pattern.matchEnd(buf, i, buf.count)
                    core.encodePiece(base + i, e - i, &out, &scratch)
                    i = e
                }
            }
            return
        }
        let pieces = spec.preTokenizer?.apply([Piece(text: text, atStart: atStart)]) ?? [Piece(text: text, atStart: atStart)]
        for piece in pieces { encodeWord(piece.text, &out, &scratch) }
    }

    /// BPE on one pre-token, `BPE::merge_word` semantics (unk, byte fallback, prefix/suffix).
    private func encodeWord(_ word: String, _ out: inout [Int], _ scratch: inout MergeScratch) {
        let bytes = Array(word.utf8)
        guard !bytes.isEmpty else { return }
        if byteLevel && core.allBytesPresent && prefixBytes.isEmpty && suffixBytes.isEmpty {
            bytes.withUnsafeBufferPointer { core.encodePiece($0.baseAddress!, $0.count, &out, &scratch) }
            return
        }
        if core.wholePieceFirst, let id = core.encoder.lookup(bytes) { out.append(Int(id)); return }
        // Units: bytes for byte-level models, UTF-8 scalars otherwise.
        var units: [Range<Int>] = []
        var i = 0
        while i < bytes.count {
            let n = byteLevel ? 1 : utf8Length(bytes[i])
            units.append(i..<min(i + n, bytes.count))
            i += n
        }
        scratch.ids.removeAll(keepingCapacity: true)
        var pendingUnk = false
        for (k, unit) in units.enumerated() {
            var key: [UInt8] = []
            if k > 0 { key += prefixBytes }
            key += bytes[unit]
            if k == units.count - 1 { key += suffixBytes }
            if let id = core.encoder.lookup(key) {
                if pendingUnk, let unk = unkID { scratch.ids.append(UInt32(unk)); pendingUnk = false }
                scratch.ids.append(UInt32(id))
                continue
            }
            if let fallback = byteFallbackIDs, key.allSatisfy({ fallback[Int($0)] >= 0 }) {
                if pendingUnk, let unk = unkID { scratch.ids.append(UInt32(unk)); pendingUnk = false }
                for b in key { scratch.ids.append(UInt32(fallback[Int(b)])) }
                continue
            }
            guard let unk = unkID else { continue }
            if pendingUnk && !spec.model.fuseUnk { scratch.ids.append(UInt32(unk)) }
            pendingUnk = true
        }
        if pendingUnk, let unk = unkID { scratch.ids.append(UInt32(unk)) }
        BytePair.merge(&scratch, core.pairs, into: &out)
    }

    // MARK: - Decoding

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) throws -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard id >= 0, id < idToToken.count, let token = idToToken[id] else {
                throw TokenizerError.idOutOfRange(id: id, vocabularySize: vocabularySize)
            }
            if let added = addedByID[id] {
                if skipSpecialTokens && added.special { continue }
                tokens.append(added.content)
            } else {
                tokens.append(token)
            }
        }
        guard let decoder = spec.decoder else { return tokens.joined(separator: " ") }
        return decoder.apply(tokens).joined()
    }

    /// Whether the decoder is plain ByteLevel (text is the concatenated token bytes).
    var hasByteLevelDecoder: Bool {
        if case .byteLevel? = spec.decoder { return true }
        return false
    }

    /// The bytes of one token when the decoder is plain ByteLevel (nil otherwise): what the
    /// streaming detokenizer needs to cut at UTF-8 boundaries exactly.
    func byteLevelBytes(of id: Int, skipSpecialTokens: Bool) throws -> [UInt8]? {
        guard case .byteLevel? = spec.decoder else { return nil }
        guard id >= 0, id < idToToken.count, let token = idToToken[id] else {
            throw TokenizerError.idOutOfRange(id: id, vocabularySize: vocabularySize)
        }
        if let added = addedByID[id] {
            if skipSpecialTokens && added.special { return [] }
            return ByteLevelAlphabet.decode(added.content) ?? Array(added.content.utf8)
        }
        return ByteLevelAlphabet.decode(token) ?? Array(token.utf8)
    }

    public func tokenID(for token: String) -> Int? {
        if let id = addedByContent[token] { return id }
        return vocab[token]
    }
}

private func utf8Length(_ lead: UInt8) -> Int {
    lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
}
