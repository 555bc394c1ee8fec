// Locates ../shared (a sibling of the repository) and reads the tokenizer fixtures and
// vocabularies; loads each tokenizer once for all tests.
import Foundation
@testable import OspreyTokenizers

enum Shared {
    /// The repository root is three levels above this file (Tests/OspreyTokenizersTests/Fixtures.swift).
    static let root: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("../shared").standardizedFileURL
    static let data = root.appendingPathComponent("data")
    static let fixtures = root.appendingPathComponent("fixtures/tokenizers")

    static let o200kBase = Result { try TiktokenEncoding.o200kBase(vocabDirectory: data) }
    static let o200kHarmony = Result { try TiktokenEncoding.o200kHarmony(vocabDirectory: data) }
    static let o200kHarmonyOpenAI = Result { try TiktokenEncoding.o200kHarmony(vocabDirectory: data, definition: .openAIHarmony) }
    static let gpt2 = Result { try HFTokenizer(tokenizerJSON: data.appendingPathComponent("gpt2.tokenizer.json")) }
    static let mistral = Result { try HFTokenizer(tokenizerJSON: data.appendingPathComponent("mistral-7b-v0.1.tokenizer.json")) }
    static let qwen2 = Result { try HFTokenizer(tokenizerJSON: data.appendingPathComponent("qwen2.tokenizer.json")) }
    static let gptOSS = Result { try HFTokenizer(tokenizerJSON: data.appendingPathComponent("gpt-oss-20b.tokenizer.json")) }

    static func tiktoken(_ name: String) throws -> TiktokenEncoding {
        switch name {
        case "o200k_base": return try o200kBase.get()
        case "o200k_harmony": return try o200kHarmony.get()
        case "o200k_harmony@openai-harmony": return try o200kHarmonyOpenAI.get()
        default: throw TokenizerError.unknownToken(name)
        }
    }

    static func hf(_ name: String) throws -> HFTokenizer {
        switch name {
        case "gpt2": return try gpt2.get()
        case "mistral-7b-v0.1": return try mistral.get()
        case "qwen2": return try qwen2.get()
        default: throw TokenizerError.unknownToken(name)
        }
    }
}

/// One fixture line, kept as JSON text so that it is Sendable and prints as its key.
struct FixtureCase: Sendable, CustomStringConvertible {
    let key: String
    let json: String

    /// The record; JSONDecoder because JSONSerialization drops U+FEFF inside strings.
    var record: [String: JSONValue] {
        (try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)))?.object ?? [:]
    }
    var description: String { key }

    static func load(_ file: String, key: ([String: JSONValue]) -> String) -> [FixtureCase] {
        guard let text = try? String(contentsOf: Shared.fixtures.appendingPathComponent(file), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let r = (try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)))?.object else { return nil }
            return FixtureCase(key: key(r), json: String(line))
        }
    }
}

func ints(_ value: JSONValue?) -> [Int] {
    value?.array?.compactMap(\.int) ?? []
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}
