// `osprey generate`: load a model folder and continue a prompt given as text (encoded with the
// folder's tokenizer, the reply streamed as it is decoded) or as token ids.
import ArgumentParser
import Foundation
import OspreyCore
import OspreyGeneration
import OspreyModels
import OspreyTokenizers

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt with a model.")

    @Option(help: "A Hugging Face model folder (config.json + safetensors).")
    var model: String

    @Option(help: "The prompt as text, encoded with the model folder's tokenizer (tokenizer.json).")
    var prompt: String?

    @Option(name: .customLong("prompt-ids"), help: "The prompt as comma-separated token ids, e.g. 1,2,3.")
    var promptIds: String?

    @Option(name: .customLong("max-new-tokens"), help: "How many tokens to generate at most.")
    var maxNewTokens = 32

    @Option(help: "0 = greedy; above 0 samples from softmax(logits / temperature).")
    var temperature: Float = 0

    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 0

    @Option(name: .customLong("top-k"), help: "Sample from the k most likely tokens only (0: no limit).")
    var topK = 0

    @Option(name: .customLong("top-p"), help: "Sample from the smallest set of tokens whose probability reaches p.")
    var topP: Float = 1

    @Option(name: .customLong("min-p"), help: "Drop tokens less likely than min-p times the most likely one.")
    var minP: Float = 0

    @Option(name: .customLong("repetition-penalty"), help: "Penalise tokens already in the prompt or output (1: none).")
    var repetitionPenalty: Float = 1

    @Option(help: "cpu, cuda or auto.")
    var device: DeviceChoice = .auto

    @Flag(help: "Print load time and prefill/decode speed to stderr.")
    var stats = false

    @Flag(help: "Print one JSON object {\"prompt_ids\": [...], \"generated_ids\": [...]}.")
    var json = false

    func run() throws {
        try reportingErrors {
            guard (prompt == nil) != (promptIds == nil) else { throw CLIError("give exactly one of --prompt and --prompt-ids") }
            let backend = try device.backend()
            let clock = ContinuousClock()
            let loadStart = clock.now
            let folder = try ModelFolder(directory: URL(fileURLWithPath: model))
            let tokenizer = prompt == nil ? nil : try loadTokenizer(at: folder.directory)
            let ids: [Int32] = try tokenizer.map { try $0.encode(prompt!, addSpecialTokens: true).map { Int32($0) } } ?? parseIds(promptIds!)
            let lm = try ModelRegistry.load(folder, backend: backend)
            let loaded = clock.now
            let eos = Set((folder.generationDefaults?.eosTokenId?.ids ?? []).map { Int32($0) })
            let sampling = SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP,
                                              repetitionPenalty: repetitionPenalty, seed: seed)
            let params = GenerateParameters(maxNewTokens: maxNewTokens, sampling: sampling, eosTokenIds: eos)
            var firstToken: ContinuousClock.Instant?
            var detokenizer = tokenizer.map { StreamingDetokenizer(tokenizer: $0) }
            var text = ""
            var streamError: (any Error)?
            let generated = try OspreyGeneration.generate(model: lm, prompt: ids, parameters: params) { id in
                if firstToken == nil { firstToken = clock.now }
                do {
                    if let piece = try detokenizer?.append(Int(id)) {
                        text += piece
                        if !json { FileHandle.standardOutput.write(Data(piece.utf8)) }
                    }
                } catch { streamError = streamError ?? error }
            }
            if let streamError { throw streamError }
            if let rest = try detokenizer?.finish() {
                text += rest
                if !json { emit(rest) }
            }
            if stats, let firstToken {
                let done = clock.now
                let secs = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
                let decode = generated.count > 1 ? Double(generated.count - 1) / secs(done - firstToken) : 0
                FileHandle.standardError.write(Data(String(
                    format: "load %.3f s, prefill %d tokens %.1f tok/s, decode %d tokens %.2f tok/s\n",
                    secs(loaded - loadStart), ids.count, Double(ids.count) / secs(firstToken - loaded),
                    generated.count - 1, decode).utf8))
            }
            if json {
                struct Output: Encodable { let prompt_ids: [Int32], generated_ids: [Int32], text: String? }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                emit(String(decoding: try encoder.encode(Output(prompt_ids: ids, generated_ids: generated, text: tokenizer == nil ? nil : text)), as: UTF8.self))
            } else if tokenizer == nil {
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
