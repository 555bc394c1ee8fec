// `osprey chat --model DIR`: an interactive chat on stdin. Each line is a user message; the reply
// streams to stdout as it is generated and joins the history, so later turns see earlier ones.
// gpt-oss chats in harmony (reasoning effort in the system message, reasoning on the analysis
// channel, shown dimmed with --show-reasoning); other models use their Jinja chat template.
// It works with stdin not a terminal (lines piped in; no prompt is printed then), which is how it
// is tested. Ctrl-C stops the reply being generated; at the prompt, or twice, it exits.
// `/reset` clears the history; end of input (Ctrl-D) ends the chat.
import ArgumentParser
import Foundation
import OspreyGeneration
import OspreyModels

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Chat with a model on the terminal (one line per message).")

    @Option(help: "A Hugging Face model folder (default: the shipped toy model, Models/osprey-tiny-shakespeare; config.json, safetensors, tokenizer).")
    var model: String?

    @Option(name: .customLong("reasoning-effort"), help: "low, medium or high (harmony models).")
    var reasoningEffort: ReasoningEffort?

    @Flag(name: .customLong("show-reasoning"), help: "Show the model's reasoning (dimmed on a terminal).")
    var showReasoning = false

    @Option(help: "A system message to start the chat with.")
    var system: String?

    @OptionGroup var sampling: SamplingOptions

    @Option(help: "cpu, cuda, cuda:N or auto.")
    var device: DeviceChoice = .auto

    @Flag(help: "Print each turn's token counts and decode speed to stderr.")
    var stats = false

    func run() throws {
        try reportingErrors {
            let loaded = try LoadedModel.load(DefaultModel.folder(for: model), device: device)
            if let note = loaded.deviceNote { FileHandle.standardError.write(Data("osprey: \(note)\n".utf8)) }
            let format = try loaded.requireChatFormat()
            let config = try loaded.chatConfig(sampling.apply(to: loaded.generationConfig))
            let interactive = isatty(STDIN_FILENO) != 0, colour = isatty(STDOUT_FILENO) != 0
            let interrupts = Interrupts()
            var history = system.map { [ChatMessage.system($0)] } ?? []
            while true {
                if interactive { write("> ") }
                guard let line = readLine(strippingNewline: true) else { break }
                if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
                if line == "/reset" { history = system.map { [ChatMessage.system($0)] } ?? []; continue }
                history.append(.user(line))
                let prompt = try format.render(history, reasoningEffort: reasoningEffort)
                let start = ContinuousClock.now
                var parser = ChatReplyParser(format: format)
                var tokens = try TokenIterator(model: loaded.model, prompt: prompt, config: config)
                var display = ReplyDisplay(showReasoning: showReasoning, colour: colour)
                try interrupts.generation {
                    while let id = try tokens.next() {
                        display.show(parser.append(id))
                        if interrupts.stopRequested { tokens.stop(.cancelled) }
                    }
                }
                display.show(parser.finish())
                display.end()
                let reply = parser.reply
                if let error = reply.formatError, stats { FileHandle.standardError.write(Data("osprey: reply shown as text (\(error))\n".utf8)) }
                history.append(reply.message)
                if stats {
                    let d = ContinuousClock.now - start
                    let secs = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
                    FileHandle.standardError.write(Data(String(format: "[prompt %d tokens, reply %d tokens, %.1f tok/s]\n",
                                                               prompt.count, tokens.generated.count,
                                                               Double(tokens.generated.count) / secs).utf8))
                }
            }
        }
    }
}

/// Writes reply deltas: reasoning (dimmed on a terminal) when asked, the answer, tool calls.
struct ReplyDisplay {
    let showReasoning: Bool
    let colour: Bool
    private var inReasoning = false

    init(showReasoning: Bool, colour: Bool) { (self.showReasoning, self.colour) = (showReasoning, colour) }

    mutating func show(_ deltas: [ChatDelta]) {
        for delta in deltas {
            switch delta {
            case .reasoning(let t) where showReasoning:
                if !inReasoning { write(colour ? "\u{1B}[2m" : "[reasoning] "); inReasoning = true }
                write(t)
            case .reasoning: continue
            case .content(let t):
                leaveReasoning()
                write(t)
            case .toolCall(let call):
                leaveReasoning()
                write("\n[tool call] \(call.name)(\(call.arguments))\n")
            }
        }
    }

    mutating func end() {
        leaveReasoning()
        write("\n")
    }

    private mutating func leaveReasoning() {
        guard inReasoning else { return }
        write(colour ? "\u{1B}[0m\n" : "\n")
        inReasoning = false
    }
}

extension ReasoningEffort: ExpressibleByArgument {}

private func write(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }
