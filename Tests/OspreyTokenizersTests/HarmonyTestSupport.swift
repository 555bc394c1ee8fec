// Shared pieces of the harmony tests: the fixture file, and a fake byte-level tokenizer that lets
// the renderer and parser be checked on text without the real o200k vocabulary.

import Foundation
@testable import OspreyTokenizers

enum HarmonyFixtures {
    /// ../shared relative to the repository root (found from this file, symlinks resolved).
    static let sharedDirectory: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared")

    static let dataDirectory = sharedDirectory.appendingPathComponent("data")

    /// Every record of harmony.jsonl keyed by its id, in file order.
    static let records: [(id: String, record: HarmonyJSON)] = {
        let url = sharedDirectory.appendingPathComponent("fixtures/tokenizers/harmony.jsonl")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let record = try? HarmonyJSON.parse(String(line)), let id = record["id"]?.stringValue else { return nil }
            return (id, record)
        }
    }()

    static func record(_ id: String) -> HarmonyJSON { records.first { $0.id == id }!.record }

    static func ids(of kind: (String) -> Bool) -> [String] {
        records.filter { kind($0.record["kind"]?.stringValue ?? "") }.map(\.id)
    }

    static let renderIDs = ids { $0.hasPrefix("render_") }
    static let parseIDs = ids { $0 == "parse_messages_from_completion_tokens" }

    static func intArray(_ value: HarmonyJSON?) -> [Int] {
        (value?.arrayValue ?? []).compactMap { if case .number(let n) = $0 { return Int(n.text) } else { return nil } }
    }

    static func messages(_ value: HarmonyJSON?) throws -> [HarmonyMessage] {
        try (value?.arrayValue ?? []).enumerated().map { i, m in try HarmonyMessage(json: m, path: "messages[\(i)]") }
    }

    static var vocabularyAvailable: Bool {
        FileManager.default.fileExists(atPath: dataDirectory.appendingPathComponent("o200k_base.tiktoken").path)
    }
}

/// Ordinary text is one id per UTF-8 byte (0...255); special tokens are 1000 and up.
struct FakeHarmonyTokenizer: HarmonyTokenizer {
    static let specials = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>",
                           "<|call|>", "<|endoftext|>", "<|startoftext|>", "<|reserved_200013|>"]

    struct UnknownID: Error {}

    func encodeOrdinary(_ text: String) -> [Int] { text.utf8.map { Int($0) } }

    func tokenID(for token: String) -> Int? { Self.specials.firstIndex(of: token).map { 1000 + $0 } }

    func decodeBytes(_ ids: [Int]) throws -> [UInt8] {
        var out: [UInt8] = []
        for id in ids {
            if (0..<256).contains(id) { out.append(UInt8(id)) }
            else if (1000..<1000 + Self.specials.count).contains(id) { out += Array(Self.specials[id - 1000].utf8) }
            else { throw UnknownID() }
        }
        return out
    }

    /// Text with special-token text as special ids (`allowed_special="all"`).
    func encodeAll(_ text: String) -> [Int] {
        var out: [Int] = []
        var rest = Substring(text)
        outer: while !rest.isEmpty {
            for (i, s) in Self.specials.enumerated() where rest.hasPrefix(s) {
                out.append(1000 + i)
                rest = rest.dropFirst(s.count)
                continue outer
            }
            out += encodeOrdinary(String(rest.first!))
            rest = rest.dropFirst()
        }
        return out
    }

    func text(_ ids: [Int]) throws -> String { String(decoding: try decodeBytes(ids), as: UTF8.self) }
}

extension HarmonyEncoding {
    static let fake = try! HarmonyEncoding(tokenizer: FakeHarmonyTokenizer())

    /// Renders a fixture record of one of the three render kinds.
    func render(record: HarmonyJSON) throws -> [Int] {
        let conversation = try HarmonyConversation(json: record["conversation"]!)
        let config = HarmonyRenderConfig(autoDropAnalysis: record["config"]?["auto_drop_analysis"]?.boolValue ?? true)
        switch record["kind"]?.stringValue {
        case "render_conversation_for_completion":
            let role = HarmonyRole(rawValue: record["next_turn_role"]?.stringValue ?? "assistant")!
            return try renderConversationForCompletion(conversation, nextTurnRole: role, config: config)
        case "render_conversation":
            return try renderConversation(conversation, config: config)
        default:
            return try renderConversationForTraining(conversation, config: config)
        }
    }
}
