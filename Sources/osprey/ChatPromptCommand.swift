// `osprey chat-prompt --model DIR`: the prompt ids `osprey serve` feeds the model for Chat
// Completions requests. Reads one request body (JSON, as POSTed to /v1/chat/completions) per line
// from stdin and prints, per line, `{"prompt_ids": [...], "reply_prefix": N}` (N: how many of the
// last ids are the reply start a forced tool_choice prefilled), or `{"error": "..."}`; later lines
// still run. The rendering is the server's own (ServedModel.chatPrompt), so a model trained on
// these ids (tools/train_tool_caller.py) sees at serving time exactly what it was trained on.
import ArgumentParser
import Foundation
import OspreyGeneration
import OspreyModels
import OspreyServer

struct ChatPrompt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-prompt",
        abstract: "Print the prompt ids the server renders for Chat Completions request bodies (JSON lines on stdin).")

    @Option(help: "A Hugging Face model folder (its tokenizer and chat format are used).")
    var model: String

    func run() throws {
        try reportingErrors {
            let loaded = try LoadedModel.load(URL(fileURLWithPath: model), device: .cpu)
            while let line = readLine(strippingNewline: true) {
                if line.allSatisfy(\.isWhitespace) { continue }
                let out: [String: Any]
                do {
                    let (prompt, prefix) = try ServedModel.chatPrompt(body: Data(line.utf8), loaded: loaded)
                    out = ["prompt_ids": prompt.map { Int($0) }, "reply_prefix": prefix.count]
                } catch {
                    out = ["error": "\(error)"]
                }
                emit(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
            }
        }
    }
}
