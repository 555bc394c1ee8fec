// The public face of the tokenizers: the `Tokenizer` protocol every tokenizer conforms to, the typed
// `TokenizerError`, and `loadTokenizer(at:)`, which picks the right implementation for a path.
// Implementations live in Tiktoken.swift (tiktoken rank files) and HFTokenizer.swift (tokenizer.json).
import Foundation

/// A text tokenizer: text to token ids and back, id-exact with its reference library.
public protocol Tokenizer: Sendable {
    /// Encodes `text` to token ids. Special-token text in the input is matched as the special
    /// token (what Hugging Face `tokenizers` does); `addSpecialTokens` adds the post-processor's
    /// BOS/EOS tokens where the tokenizer defines them.
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int]
    /// Decodes ids to text; invalid UTF-8 becomes U+FFFD. Throws for ids outside the vocabulary.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) throws -> String
    /// The id of a special/added token or of a vocabulary entry (in the vocabulary's own spelling).
    func tokenID(for token: String) -> Int?
    /// One more than the largest token id.
    var vocabularySize: Int { get }
}

/// Errors raised while loading or running a tokenizer. Messages name the file, field or component.
public enum TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A file could not be read.
    case unreadableFile(path: String, reason: String)
    /// A tokenizer file is not what it should be; `field` names the offending part.
    case malformed(file: String, field: String, reason: String)
    /// A tokenizer.json component (normalizer, pre-tokenizer, model, decoder, ...) that is not implemented.
    case unsupportedComponent(file: String, component: String)
    /// An id that is not in the vocabulary.
    case idOutOfRange(id: Int, vocabularySize: Int)
    /// tiktoken semantics: special-token text appeared in input that did not allow it.
    case disallowedSpecialToken(String)
    /// A token name that the tokenizer does not define.
    case unknownToken(String)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason): return "cannot read \(path): \(reason)"
        case .malformed(let file, let field, let reason): return "\(file): malformed \(field): \(reason)"
        case .unsupportedComponent(let file, let component): return "\(file): unsupported \(component)"
        case .idOutOfRange(let id, let size): return "token id \(id) is outside the vocabulary (size \(size))"
        case .disallowedSpecialToken(let token):
            return "encountered text corresponding to disallowed special token \(token.debugDescription)"
        case .unknownToken(let token): return "unknown token \(token.debugDescription)"
        }
    }
}

/// Loads a tokenizer from `url`: a tokenizer.json file, a folder containing tokenizer.json, or a
/// `.tiktoken` rank file (loaded as o200k_base when the file is named o200k_base.tiktoken, otherwise
/// with the o200k pattern and no special tokens).
public func loadTokenizer(at url: URL) throws -> any Tokenizer {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
        throw TokenizerError.unreadableFile(path: url.path, reason: "no such file or folder")
    }
    if isDirectory.boolValue {
        let json = url.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json.path) { return try HFTokenizer(tokenizerJSON: json) }
        let tiktoken = url.appendingPathComponent("o200k_base.tiktoken")
        if FileManager.default.fileExists(atPath: tiktoken.path) { return try TiktokenEncoding.o200kBase(vocabDirectory: url) }
        throw TokenizerError.unreadableFile(path: url.path, reason: "folder has no tokenizer.json")
    }
    if url.pathExtension == "tiktoken" {
        if url.lastPathComponent == "o200k_base.tiktoken" {
            return try TiktokenEncoding.o200kBase(vocabDirectory: url.deletingLastPathComponent())
        }
        return try TiktokenEncoding(rankFile: url, name: url.deletingPathExtension().lastPathComponent,
                                    specialTokens: [:])
    }
    return try HFTokenizer(tokenizerJSON: url)
}
