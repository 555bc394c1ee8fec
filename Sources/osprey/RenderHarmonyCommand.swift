// `osprey render-harmony --vocab-dir DIR`: harmony conversations in, gpt-oss token ids out.
//
// Reads one JSON object per line from stdin with the fields of a shared/fixtures/tokenizers/harmony.jsonl
// record (`kind`, `conversation`, `next_turn_role`, `config`) and prints, per line, the ids as a
// JSON array, or `{"error": "..."}` when that line is bad; later lines still run. The work is
// `HarmonyEncoding.respond(toRequestLine:)` in OspreyTokenizers (HarmonyRequest.swift), which
// also answers `parse_messages_from_completion_tokens` lines (`ids`, `role`) with messages.
// A missing or unreadable vocabulary is reported on stderr with a nonzero exit.

import ArgumentParser
import Foundation
import OspreyTokenizers

struct RenderHarmony: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render-harmony",
        abstract: "Render harmony conversations (JSON lines on stdin) to gpt-oss token ids.",
        discussion: """
            Each input line: {"kind": "render_conversation_for_completion" | "render_conversation" | \
            "render_conversation_for_training", "conversation": {"messages": [...]}, \
            "next_turn_role": "assistant", "config": {"auto_drop_analysis": true}}. \
            Each output line: the ids as a JSON array, or {"error": "..."}.
            """)

    @Option(name: .customLong("vocab-dir"), help: "Folder holding o200k_base.tiktoken.")
    var vocabDir: String

    func run() throws {
        let encoding: HarmonyEncoding
        do {
            encoding = try HarmonyEncoding.gptOss(vocabDirectory: URL(fileURLWithPath: vocabDir))
        } catch {
            FileHandle.standardError.write(Data("render-harmony: \(error)\n".utf8))
            throw ExitCode.failure
        }
        while let line = readLine(strippingNewline: true) {
            if line.allSatisfy(\.isWhitespace) { continue }
            print(encoding.respond(toRequestLine: line))
        }
    }
}
