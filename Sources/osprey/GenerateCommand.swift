// `osprey generate`: load a model folder and continue a prompt given as text (encoded with the
// folder's tokenizer, the reply streamed as it is decoded) or as token ids. Settings start from the
// folder's generation_config.json; each flag given overrides one. Ctrl-C stops the generation and
// prints what was generated (Interrupt.swift).
import ArgumentParser
import Foundation
import OspreyCore
import OspreyGeneration
import OspreyModels
import OspreyTokenizers

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt with a model.")

    @Option(help: "A Hugging Face model folder (default: the shipped toy model, Models/osprey-tiny-shakespeare; config.json + safetensors).")
    var model: String?

    @Option(help: "The prompt as text, encoded with the model folder's tokenizer (tokenizer.json).")
    var prompt: String?

    @Option(name: .customLong("prompt-ids"), help: "The prompt as comma-separated token ids, e.g. 1,2,3.")
    var promptIds: String?

    @OptionGroup var sampling: SamplingOptions

    @Option(help: "cpu, cuda, cuda:N or auto.")
    var device: DeviceChoice = .auto

    @Flag(help: "Expand MXFP4 weights to bf16 at load.")
    var dequantize = false

    @Flag(help: "Print load time and prefill/decode speed to stderr.")
    var stats = false

    @Flag(help: "Print one JSON object {\"prompt_ids\": [...], \"generated_ids\": [...], \"text\": ...}.")
    var json = false

    func run() throws {
        try reportingErrors {
            guard (prompt == nil) != (promptIds == nil) else { throw CLIError("give exactly one of --prompt and --prompt-ids") }
            let ids = try promptIds.map(parseIds)
            let clock = ContinuousClock()
            let loadStart = clock.now
            let loaded = try LoadedModel.load(DefaultModel.folder(for: model), device: device, dequantize: dequantize)
            if let note = loaded.deviceNote { FileHandle.standardError.write(Data("osprey: \(note)\n".utf8)) }
            let promptIDs = try ids ?? loaded.encode(prompt!)
            let config = try sampling.apply(to: loaded.generationConfig)
            if !config.stopStrings.isEmpty { _ = try loaded.requireTokenizer() }
            let loadedAt = clock.now
            let interrupts = Interrupts()
            var firstToken: ContinuousClock.Instant?
            var text: String?
            let generated: [Int32] = try interrupts.generation {
                guard loaded.tokenizer != nil else {
                    var tokens = try TokenIterator(model: loaded.model, prompt: promptIDs, config: config)
                    while !interrupts.stopRequested, try tokens.next() != nil { firstToken = firstToken ?? clock.now }
                    return tokens.generated
                }
                var generator = try loaded.textGenerator(prompt: promptIDs, config: config)
                while let piece = try generator.next() {
                    firstToken = firstToken ?? clock.now
                    if !json && prompt != nil { FileHandle.standardOutput.write(Data(piece.utf8)) }
                    if interrupts.stopRequested { generator.stop() }
                }
                text = generator.text
                return generator.ids
            }
            if !json && prompt != nil { emit("") }
            if stats, let firstToken {
                let secs = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
                let decode = generated.count > 1 ? Double(generated.count - 1) / secs(clock.now - firstToken) : 0
                FileHandle.standardError.write(Data(String(
                    format: "load %.3f s, prefill %d tokens %.1f tok/s, decode %d tokens %.2f tok/s\n",
                    secs(loadedAt - loadStart), promptIDs.count, Double(promptIDs.count) / secs(firstToken - loadedAt),
                    generated.count - 1, decode).utf8))
            }
            if json {
                struct Output: Encodable { let prompt_ids: [Int32], generated_ids: [Int32], text: String? }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                emit(String(decoding: try encoder.encode(Output(prompt_ids: promptIDs, generated_ids: generated, text: text)), as: UTF8.self))
            } else if prompt == nil {
                emit(generated.map(String.init).joined(separator: ","))
            }
        }
    }

    private func parseIds(_ text: String) throws -> [Int32] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let ids = parts.map { Int32($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, !ids.contains(nil) else {
            throw CLIError("--prompt-ids must be comma-separated integers, got \"\(text)\"")
        }
        return ids.compactMap { $0 }
    }
}

/// The generation flags `generate` and `chat` share; each one given overrides the folder's setting.
struct SamplingOptions: ParsableArguments {
    @Option(name: .customLong("max-new-tokens"), help: "How many tokens to generate at most (default: the folder's, else 256).")
    var maxNewTokens: Int?

    @Option(name: .customLong("min-new-tokens"), help: "End-of-sequence ids are not picked before this many tokens.")
    var minNewTokens: Int?

    @Option(help: "0 = greedy; above 0 samples from softmax(logits / temperature) (default: the folder's, else greedy).")
    var temperature: Float?

    @Option(help: "Seed for sampling.")
    var seed: UInt64?

    @Option(name: .customLong("top-k"), help: "Sample from the k most likely tokens only (0: no limit).")
    var topK: Int?

    @Option(name: .customLong("top-p"), help: "Sample from the smallest set of tokens whose probability reaches p.")
    var topP: Float?

    @Option(name: .customLong("min-p"), help: "Drop tokens less likely than min-p times the most likely one.")
    var minP: Float?

    @Option(name: .customLong("repetition-penalty"), help: "Penalise tokens already in the prompt or output (1: none).")
    var repetitionPenalty: Float?

    @Option(name: .customLong("stop"), help: "Stop once the output contains this text (repeatable; the text is trimmed off).")
    var stop: [String] = []

    /// `base` with every flag given applied, checked.
    func apply(to base: GenerationConfig) throws -> GenerationConfig {
        var c = base
        if let v = maxNewTokens { c.maxNewTokens = v }
        if let v = minNewTokens { c.minNewTokens = v }
        if let v = temperature {
            c.temperature = v
            c.doSample = v != 0
        }
        if let v = seed { c.seed = v }
        if let v = topK { c.topK = v }
        if let v = topP { c.topP = v }
        if let v = minP { c.minP = v }
        if let v = repetitionPenalty { c.repetitionPenalty = v }
        if !stop.isEmpty { c.stopStrings = stop }
        try c.validate()
        return c
    }
}
