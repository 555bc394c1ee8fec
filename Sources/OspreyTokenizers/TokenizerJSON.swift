// Reads a Hugging Face tokenizer.json into value types describing each component (normalizer,
// pre-tokenizer, model, post-processor, decoder, added tokens). Anything we do not implement is
// rejected here, at load, with an error naming the component; nothing is silently ignored.
import Foundation

enum TextPattern: Sendable, Equatable {
    case string(String)
    case regex(String)
}

indirect enum NormalizerSpec: Sendable {
    case nfc, nfd, nfkc, nfkd, lowercase
    case prepend(String)
    case replace(TextPattern, String)
    case strip(left: Bool, right: Bool)
    case sequence([NormalizerSpec])
}

enum SplitBehavior: String, Sendable {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
}

enum PrependScheme: String, Sendable { case always, first, never }

indirect enum PreTokenizerSpec: Sendable {
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(TextPattern, SplitBehavior, invert: Bool)
    case metaspace(replacement: String, prependScheme: PrependScheme, split: Bool)
    case digits(individual: Bool)
    case whitespaceSplit
    case sequence([PreTokenizerSpec])
}

indirect enum DecoderSpec: Sendable {
    case byteLevel
    case metaspace(replacement: String, prependScheme: PrependScheme)
    case byteFallback, fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case replace(TextPattern, String)
    case bpeSuffix(String)
    case sequence([DecoderSpec])
}

enum TemplatePiece: Sendable { case special([Int]), sequence }

indirect enum PostProcessorSpec: Sendable {
    case template([TemplatePiece])
    case byteLevel
    case sequence([PostProcessorSpec])
}

struct AddedTokenSpec: Sendable {
    var id: Int, content: String, special: Bool
    var singleWord: Bool, lstrip: Bool, rstrip: Bool, normalized: Bool
}

struct BPEModelSpec: Sendable {
    var vocab: [String: Int]
    var merges: [(String, String)]
    var unkToken: String?
    var continuingSubwordPrefix: String, endOfWordSuffix: String
    var fuseUnk: Bool, byteFallback: Bool, ignoreMerges: Bool
}

struct TokenizerJSONSpec: Sendable {
    var addedTokens: [AddedTokenSpec]
    var normalizer: NormalizerSpec?
    var preTokenizer: PreTokenizerSpec?
    var model: BPEModelSpec
    var postProcessor: PostProcessorSpec?
    var decoder: DecoderSpec?
}

/// A parsed JSON value. (JSONDecoder, not JSONSerialization: the latter drops U+FEFF inside strings.)
enum JSONValue: Decodable, Sendable {
    case null, bool(Bool), int(Int), double(Double), string(String)
    case array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let o = try? c.decode([String: JSONValue].self) { self = .object(o) }
        else { self = .array(try c.decode([JSONValue].self)) }
    }

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    var int: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d): return d == d.rounded() && abs(d) < 1e15 ? Int(d) : nil
        default: return nil
        }
    }
    var double: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
    var object: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
    var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    var objects: [[String: JSONValue]]? {
        guard let a = array else { return nil }
        var out: [[String: JSONValue]] = []
        for v in a { guard let o = v.object else { return nil }; out.append(o) }
        return out
    }
    var isNull: Bool { if case .null = self { return true }; return false }
}

/// tokenizer.json's top level: the model typed (it is most of the file, and typed decoding is
/// several times faster than `JSONValue`), the small components as `JSONValue`.
private struct RootJSON: Decodable {
    var added_tokens: JSONValue?
    var normalizer: JSONValue?
    var pre_tokenizer: JSONValue?
    var post_processor: JSONValue?
    var decoder: JSONValue?
    var truncation: JSONValue?
    var padding: JSONValue?
    var model: ModelJSON?
}

private struct ModelJSON: Decodable {
    var kind: String
    var vocab: [String: Int]?
    var merges: [(String, String)]?
    var unkToken: String?, continuingSubwordPrefix: String?, endOfWordSuffix: String?
    var fuseUnk: Bool?, byteFallback: Bool?, ignoreMerges: Bool?
    var dropout: Double?

    enum Keys: String, CodingKey {
        case type, vocab, merges, unk_token, continuing_subword_prefix, end_of_word_suffix, fuse_unk, byte_fallback, ignore_merges, dropout
    }

    /// A merge written as "a b" or as ["a", "b"].
    private struct Merge: Decodable {
        var pair: (String, String)
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self), let space = s.utf8.firstIndex(of: 0x20) {
                pair = (String(s[..<space]), String(s[s.utf8.index(after: space)...]))
            } else if let l = try? c.decode([String].self), l.count == 2 {
                pair = (l[0], l[1])
            } else {
                throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath, debugDescription: "expected \"a b\" or [a, b]"))
            }
        }
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let merges = try c.decodeIfPresent([Merge].self, forKey: .merges)
        kind = try c.decodeIfPresent(String.self, forKey: .type) ?? (merges != nil ? "BPE" : "unknown")
        guard kind == "BPE" else { return }
        vocab = try c.decodeIfPresent([String: Int].self, forKey: .vocab)
        self.merges = merges?.map(\.pair)
        unkToken = try c.decodeIfPresent(String.self, forKey: .unk_token)
        continuingSubwordPrefix = try c.decodeIfPresent(String.self, forKey: .continuing_subword_prefix)
        endOfWordSuffix = try c.decodeIfPresent(String.self, forKey: .end_of_word_suffix)
        fuseUnk = try c.decodeIfPresent(Bool.self, forKey: .fuse_unk)
        byteFallback = try c.decodeIfPresent(Bool.self, forKey: .byte_fallback)
        ignoreMerges = try c.decodeIfPresent(Bool.self, forKey: .ignore_merges)
        dropout = try c.decodeIfPresent(Double.self, forKey: .dropout)
    }
}

/// Parses tokenizer.json; `file` names it in errors.
struct TokenizerJSONReader {
    let file: String

    func read(_ data: Data) throws -> TokenizerJSONSpec {
        let parsed: RootJSON
        do {
            parsed = try JSONDecoder().decode(RootJSON.self, from: data)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
                let DecodingError.keyNotFound(_, context) {
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            throw TokenizerError.malformed(file: file, field: path.isEmpty ? "(root)" : String(path.drop { $0 == "." }),
                                           reason: context.debugDescription)
        } catch {
            throw TokenizerError.malformed(file: file, field: "(root)", reason: "invalid JSON (\(error))")
        }
        for (key, value) in [("truncation", parsed.truncation), ("padding", parsed.padding)] where !(value == nil || value?.isNull == true) {
            throw TokenizerError.unsupportedComponent(file: file, component: "\(key) (only null is supported)")
        }
        guard let modelObject = parsed.model else {
            throw TokenizerError.malformed(file: file, field: "model", reason: "missing or not an object")
        }
        return TokenizerJSONSpec(
            addedTokens: try addedTokens(parsed.added_tokens),
            normalizer: try optional(parsed.normalizer, "normalizer", normalizer),
            preTokenizer: try optional(parsed.pre_tokenizer, "pre_tokenizer", preTokenizer),
            model: try model(modelObject),
            postProcessor: try optional(parsed.post_processor, "post_processor", postProcessor),
            decoder: try optional(parsed.decoder, "decoder", decoder))
    }

    // MARK: - Helpers

    private func optional<T>(_ value: JSONValue?, _ field: String, _ parse: ([String: JSONValue], String) throws -> T) throws -> T? {
        guard let value, !value.isNull else { return nil }
        guard let object = value.object else { throw malformed(field, "not an object") }
        return try parse(object, field)
    }

    private func malformed(_ field: String, _ reason: String) -> TokenizerError {
        .malformed(file: file, field: field, reason: reason)
    }

    private func type(_ o: [String: JSONValue], _ field: String) throws -> String {
        guard let t = o["type"]?.string else { throw malformed("\(field).type", "missing") }
        return t
    }

    private func string(_ o: [String: JSONValue], _ key: String, _ field: String) throws -> String {
        guard let s = o[key]?.string else { throw malformed("\(field).\(key)", "missing or not a string") }
        return s
    }

    private func bool(_ o: [String: JSONValue], _ key: String, default value: Bool) -> Bool {
        o[key]?.bool ?? value
    }

    private func int(_ value: JSONValue?) -> Int? { value?.int }

    private func list(_ o: [String: JSONValue], _ key: String, _ field: String) throws -> [[String: JSONValue]] {
        guard let l = o[key]?.objects else { throw malformed("\(field).\(key)", "missing or not a list of objects") }
        return l
    }

    private func pattern(_ o: [String: JSONValue], _ field: String) throws -> TextPattern {
        guard let p = o["pattern"]?.object else { throw malformed("\(field).pattern", "missing") }
        if let s = p["String"]?.string { return .string(s) }
        if let r = p["Regex"]?.string { return .regex(r) }
        throw malformed("\(field).pattern", "expected String or Regex")
    }

    // MARK: - Components

    private func addedTokens(_ value: JSONValue?) throws -> [AddedTokenSpec] {
        guard let value, !value.isNull else { return [] }
        guard let items = value.objects else { throw malformed("added_tokens", "not a list of objects") }
        return try items.enumerated().map { i, o in
            guard let id = int(o["id"]), id >= 0 else { throw malformed("added_tokens[\(i)].id", "missing or negative") }
            let special = bool(o, "special", default: false)
            return AddedTokenSpec(id: id, content: try string(o, "content", "added_tokens[\(i)]"), special: special,
                                  singleWord: bool(o, "single_word", default: false), lstrip: bool(o, "lstrip", default: false),
                                  rstrip: bool(o, "rstrip", default: false), normalized: bool(o, "normalized", default: !special))
        }
    }

    private func normalizer(_ o: [String: JSONValue], _ field: String) throws -> NormalizerSpec {
        switch try type(o, field) {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Prepend": return .prepend(try string(o, "prepend", field))
        case "Replace": return .replace(try pattern(o, field), try string(o, "content", field))
        case "Strip": return .strip(left: bool(o, "strip_left", default: true), right: bool(o, "strip_right", default: true))
        case "Sequence":
            return .sequence(try list(o, "normalizers", field).enumerated().map { try normalizer($1, "\(field).normalizers[\($0)]") })
        case let other: throw TokenizerError.unsupportedComponent(file: file, component: "normalizer type \(other) (at \(field))")
        }
    }

    private func prependScheme(_ o: [String: JSONValue], _ field: String) throws -> PrependScheme {
        if let s = o["prepend_scheme"]?.string {
            guard let scheme = PrependScheme(rawValue: s) else { throw malformed("\(field).prepend_scheme", "unknown value \(s)") }
            return scheme
        }
        return bool(o, "add_prefix_space", default: true) ? .always : .never
    }

    private func preTokenizer(_ o: [String: JSONValue], _ field: String) throws -> PreTokenizerSpec {
        switch try type(o, field) {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: bool(o, "add_prefix_space", default: true), useRegex: bool(o, "use_regex", default: true))
        case "Split":
            let behaviorName = try string(o, "behavior", field)
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw TokenizerError.unsupportedComponent(file: file, component: "Split behavior \(behaviorName) (at \(field))")
            }
            return .split(try pattern(o, field), behavior, invert: bool(o, "invert", default: false))
        case "Metaspace":
            let replacement = (o["replacement"]?.string) ?? (o["str_rep"]?.string) ?? "\u{2581}"
            guard replacement.unicodeScalars.count == 1 else { throw malformed("\(field).replacement", "must be one character") }
            return .metaspace(replacement: replacement, prependScheme: try prependScheme(o, field), split: bool(o, "split", default: true))
        case "Digits": return .digits(individual: bool(o, "individual_digits", default: false))
        case "WhitespaceSplit": return .whitespaceSplit
        case "Sequence":
            return .sequence(try list(o, "pretokenizers", field).enumerated().map { try preTokenizer($1, "\(field).pretokenizers[\($0)]") })
        case let other: throw TokenizerError.unsupportedComponent(file: file, component: "pre-tokenizer type \(other) (at \(field))")
        }
    }

    private func decoder(_ o: [String: JSONValue], _ field: String) throws -> DecoderSpec {
        switch try type(o, field) {
        case "ByteLevel": return .byteLevel
        case "Metaspace":
            let replacement = (o["replacement"]?.string) ?? "\u{2581}"
            return .metaspace(replacement: replacement, prependScheme: try prependScheme(o, field))
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            let content = try string(o, "content", field)
            guard content.unicodeScalars.count == 1, let c = content.unicodeScalars.first else { throw malformed("\(field).content", "must be one character") }
            return .strip(content: c, start: max(0, int(o["start"]) ?? 0), stop: max(0, int(o["stop"]) ?? 0))
        case "Replace": return .replace(try pattern(o, field), try string(o, "content", field))
        case "BPEDecoder": return .bpeSuffix((o["suffix"]?.string) ?? "</w>")
        case "Sequence":
            return .sequence(try list(o, "decoders", field).enumerated().map { try decoder($1, "\(field).decoders[\($0)]") })
        case let other: throw TokenizerError.unsupportedComponent(file: file, component: "decoder type \(other) (at \(field))")
        }
    }

    private func postProcessor(_ o: [String: JSONValue], _ field: String) throws -> PostProcessorSpec {
        switch try type(o, field) {
        case "ByteLevel": return .byteLevel
        case "TemplateProcessing":
            guard let single = o["single"]?.objects else { throw malformed("\(field).single", "missing") }
            let specials = o["special_tokens"]?.object ?? [:]
            return .template(try single.enumerated().map { i, piece in
                if let s = piece["SpecialToken"]?.object {
                    let name = try string(s, "id", "\(field).single[\(i)].SpecialToken")
                    guard let entry = specials[name]?.object, let ids = entry["ids"]?.array else {
                        throw malformed("\(field).special_tokens", "no entry for \(name)")
                    }
                    return .special(try ids.map { guard let id = int($0) else { throw malformed("\(field).special_tokens.\(name).ids", "not integers") }; return id })
                }
                if piece["Sequence"] != nil { return .sequence }
                throw malformed("\(field).single[\(i)]", "expected SpecialToken or Sequence")
            })
        case "Sequence":
            return .sequence(try list(o, "processors", field).enumerated().map { try postProcessor($1, "\(field).processors[\($0)]") })
        case let other: throw TokenizerError.unsupportedComponent(file: file, component: "post-processor type \(other) (at \(field))")
        }
    }

    private func model(_ o: ModelJSON) throws -> BPEModelSpec {
        guard o.kind == "BPE" else { throw TokenizerError.unsupportedComponent(file: file, component: "model type \(o.kind)") }
        if let dropout = o.dropout, dropout != 0 {
            throw TokenizerError.unsupportedComponent(file: file, component: "BPE dropout")
        }
        guard let vocab = o.vocab else { throw malformed("model.vocab", "missing") }
        if let (token, _) = vocab.first(where: { $0.value < 0 }) {
            throw malformed("model.vocab[\(token.debugDescription)]", "negative id")
        }
        guard let merges = o.merges else { throw malformed("model.merges", "missing") }
        return BPEModelSpec(vocab: vocab, merges: merges, unkToken: o.unkToken,
                            continuingSubwordPrefix: o.continuingSubwordPrefix ?? "", endOfWordSuffix: o.endOfWordSuffix ?? "",
                            fuseUnk: o.fuseUnk ?? false, byteFallback: o.byteFallback ?? false, ignoreMerges: o.ignoreMerges ?? false)
    }
}
