// `osprey generate`: load a model folder and continue a prompt given as token ids.
import ArgumentParser
import Foundation
import OspreyCore
import OspreyGeneration
import OspreyModels

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt with a model.")

    @Option(help: "A Hugging Face model folder (config.json + safetensors).")
    var model: String

    @Option(name: .customLong("prompt-ids"), help: "The prompt as comma-separated token ids, e.g. 1,2,3.")
    var promptIds: String

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
            let prompt = try parseIds(promptIds)
            let backend = try device.backend()
            let clock = ContinuousClock()
            let loadStart = clock.now
            let folder = try ModelFolder(directory: URL(fileURLWithPath: model))
            let lm = try ModelRegistry.load(folder, backend: backend)
            let loaded = clock.now
            let eos = Set((folder.generationDefaults?.eosTokenId?.ids ?? []).map { Int32($0) })
            let sampling = SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP,
                                              repetitionPenalty: repetitionPenalty, seed: seed)
            let params = GenerateParameters(maxNewTokens: maxNewTokens, sampling: sampling, eosTokenIds: eos)
            var firstToken: ContinuousClock.Instant?
            let ids = try OspreyGeneration.generate(model: lm, prompt: prompt, parameters: params) { _ in
                if firstToken == nil { firstToken = clock.now }
            }
            if stats, let firstToken {
                let done = clock.now
                let secs = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
                let decode = ids.count > 1 ? Double(ids.count - 1) / secs(done - firstToken) : 0
                FileHandle.standardError.write(Data(String(
                    format: "load %.3f s, prefill %d tokens %.1f tok/s, decode %d tokens %.2f tok/s\n",
                    secs(loaded - loadStart), prompt.count, Double(prompt.count) / secs(firstToken - loaded),
                    ids.count - 1, decode).utf8))
            }
            if json {
                let object: [String: [Int32]] = ["prompt_ids": prompt, "generated_ids": ids]
                let encoder = JSONEncoder()
                encoder.outputFormatting = .sortedKeys
                emit(String(decoding: try encoder.encode(object), as: UTF8.self))
            } else {
                emit(ids.map(String.init).joined(separator: ","))
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
