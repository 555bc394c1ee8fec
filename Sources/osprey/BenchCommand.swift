// `osprey bench`: the figures Osprey publishes beside the peer's (issue 5), measured the same way
// on any device. Load time (a first load, dropped, then a second with the page cache warm);
// batch-1 greedy decode tok/s after 4 warm-up tokens (the pipelined loop `osprey generate` runs
// on a GPU, into a StaticCache); prefill tok/s per prompt length (one untimed run, then
// `--repeat` timed ones); on CUDA the device memory in use. Each figure is the median of its
// timed runs. Writes BenchReport's JSON, which tools/render_bench.py sets beside
// tools/bench_transformers.py's. Batched decode arrives with continuous batching (issue 8):
// until then `--batch-sizes` accepts only 1, and this command never reports a batch it did not run.
import ArgumentParser
import Foundation
import OspreyCore
import OspreyCUDA
import OspreyGeneration
import OspreyModels

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Time load, decode and prefill on a model folder and write JSON (see tools/render_bench.py).")

    @Option(help: "Model folder.") var model: String
    @Option(help: "cpu, cuda, cuda:N or auto.") var device: DeviceChoice = .auto
    @Flag(help: "Expand MXFP4 experts to bf16 when loading (as the transformers peer holds them).") var dequantize = false
    @Option(name: .customLong("decode-tokens"), help: "Tokens timed per decode run (after 4 warm-up tokens).") var decodeTokens = 128
    @Option(name: .customLong("prompt-tokens"), help: "Prompt length before the timed decode.") var promptTokens = 128
    @Option(name: .customLong("prefill-lengths"), help: "Comma-separated prompt lengths to time prefill on.") var prefillLengths = "128,512,2048"
    @Option(name: .customLong("batch-sizes"), help: "Comma-separated decode batch sizes (above 1: continuous batching, generateBatch).") var batchSizes = "1"
    @Flag(name: .customLong("engine-batch-one"), help: "Time batch 1 through continuous batching too (generateBatch: paged cache, recorded decode graphs) instead of the pipelined generate loop.")
    var engineBatchOne = false
    @Option(help: "Timed runs per figure (the median is reported).") var `repeat` = 3
    @Option(help: "Also write the JSON to this file.") var json: String?

    private var clock: ContinuousClock { ContinuousClock() }
    private static let warmUpTokens = 4

    func run() throws {
        try reportingErrors {
            let lengths = try Self.positiveList(prefillLengths, flag: "--prefill-lengths")
            let batches = try Self.positiveList(batchSizes, flag: "--batch-sizes")
            guard decodeTokens > 0, promptTokens > 0, `repeat` > 0 else { throw CLIError("--decode-tokens, --prompt-tokens and --repeat must be positive") }
            let url = URL(fileURLWithPath: model)
            guard FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) else {
                throw CLIError("\(model) is not a model folder (no config.json)")
            }

            // The first load is dropped before the second (two 120b models would not fit one GPU).
            let loadS: Double
            do {
                let t = clock.now
                let first = try LoadedModel.load(url, device: device, dequantize: dequantize)
                loadS = seconds(since: t)
                if let note = first.deviceNote { FileHandle.standardError.write(Data("osprey: \(note)\n".utf8)) }
            }
            let t = clock.now
            let loaded = try LoadedModel.load(url, device: device, dequantize: dequantize)
            let loadWarmS = seconds(since: t)
            let m = loaded.model
            let gpu = (m.backend as? CUDABackend)?.context
            var memory = try gpu.map { [try $0.memoryInUse()] } ?? []

            let prompt = (0..<promptTokens).map { Int32(($0 * 7919 + 13) % m.vocabularySize) }
            _ = try timeDecode(m, prompt: prompt)  // warm-up: kernel compilation, GEMM plans
            var decodeRates: [BenchReport.Rate] = []
            for b in batches {
                let pipelined = b == 1 && !engineBatchOne
                let run = { pipelined ? try timeDecode(m, prompt: prompt) : try timeBatchDecode(m, batch: b) }
                if !pipelined { _ = try run() }  // warm-up at this batch size
                let r = median(try (0..<`repeat`).map { _ in try run() })
                decodeRates.append(BenchReport.Rate(batch: b, tokS: r.value, samples: r.samples))
                if let gpu { memory.append(try gpu.memoryInUse()) }
            }
            var prefill: [BenchReport.Rate] = []
            for n in lengths {
                _ = try timePrefill(m, length: n)
                let r = median(try (0..<`repeat`).map { _ in try timePrefill(m, length: n) })
                prefill.append(BenchReport.Rate(tokens: n, tokS: r.value, samples: r.samples))
                if let gpu { memory.append(try gpu.memoryInUse()) }
            }

            let gib = { (b: Int) in (Double(b) / 1_073_741_824 * 100).rounded() / 100 }
            let report = BenchReport(
                engine: "osprey \(Osprey.configuration.version)", device: Self.deviceName(gpu),
                driver: gpu.map { _ in Self.nvidiaDriverVersion() ?? "unknown" },
                cuda: gpu.map { "\($0.driverVersion / 1000).\($0.driverVersion % 1000 / 10)" },
                model: try ModelSummary(folder: loaded.folder, dequantized: dequantize),
                settings: .init(model: model, device: device.description, dequantize: dequantize, decodeTokens: decodeTokens,
                                promptTokens: promptTokens, prefillLengths: lengths, batchSizes: batches, repeat: `repeat`, json: json),
                results: .init(loadS: (loadS * 1e4).rounded() / 1e4, loadWarmS: (loadWarmS * 1e4).rounded() / 1e4,
                               decode: decodeRates, prefill: prefill,
                               memoryGib: memory.isEmpty ? nil : .init(afterLoad: gib(memory[0]), peak: gib(memory.max()!),
                                                                        method: "driver total - free, sampled after load, decode and each prefill")),
                date: ISO8601DateFormatter().string(from: Date()),
                command: "osprey " + CommandLine.arguments.dropFirst().joined(separator: " "))
            if let json { try report.write(to: json) }
            emit(String(decoding: try report.jsonData(), as: UTF8.self))
        }
    }

    // MARK: - Timing

    /// tok/s of one pipelined greedy run: `decodeTokens` tokens timed after the warm-up tokens
    /// (no end-of-sequence stop, so every run decodes the same count).
    private func timeDecode(_ m: any LanguageModel, prompt: [Int32]) throws -> Double {
        let cache = try m.makeCache(maxLength: prompt.count + Self.warmUpTokens + decodeTokens + 2)
        var produced = 0
        var start = clock.now
        _ = try generateGreedyPipelined(model: m, prompt: prompt, maxNewTokens: Self.warmUpTokens + 1 + decodeTokens, cache: cache) { _ in
            produced += 1
            if produced == Self.warmUpTokens + 1 { start = clock.now }
        }
        return Double(decodeTokens) / seconds(since: start)
    }

    /// Steady decode tok/s of `batch` requests through continuous batching (`generateBatch`), as the
    /// transformers peer measures generate at a batch size: the time of `batch` distinct prompts with
    /// `decodeTokens` new tokens less that with 1 new token (prefill and first token), over batch x (N - 1).
    private func timeBatchDecode(_ m: any LanguageModel, batch: Int) throws -> Double {
        let prompts = (0..<batch).map { b in (0..<promptTokens).map { Int32(($0 * 7919 + 13 + 104_729 * b) % m.vocabularySize) } }
        let settings = BatchConfig(blockSize: 32, numBlocks: nil, maxBatchTokens: max(2048, batch), maxSequences: max(256, batch))
        func time(_ newTokens: Int) throws -> Double {
            var config = GenerationConfig()
            (config.maxNewTokens, config.eosTokenIds) = (newTokens, [])
            let start = clock.now
            _ = try m.generateBatch(inputs: prompts, config: config, batch: settings)
            return seconds(since: start)
        }
        let full = try time(decodeTokens), first = try time(1)
        return Double(batch * (decodeTokens - 1)) / max(full - first, 1e-9)
    }

    /// tok/s of one prefill of `length` tokens into a fresh cache, up to the first token on the host.
    private func timePrefill(_ m: any LanguageModel, length: Int) throws -> Double {
        let ids = (0..<length).map { Int32(($0 * 31 + 7) % m.vocabularySize) }
        let slot = try m.backend.makeBuffer([1], dtype: .i32)
        let start = clock.now
        try m.backend.argmax(m.forward(ids, cache: m.makeCache(), allPositions: false), into: slot)
        _ = try m.backend.download(slot)
        return Double(length) / seconds(since: start)
    }

    private func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = clock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    private func median(_ samples: [Double]) -> (value: Double, samples: [Double]) {
        let rounded = samples.map { ($0 * 10).rounded() / 10 }
        let s = samples.sorted()
        let mid = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        return ((mid * 10).rounded() / 10, rounded)
    }

    // MARK: - Flags and the machine

    /// "128,512,2048" as positive integers, or a message naming the flag.
    static func positiveList(_ text: String, flag: String) throws -> [Int] {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw CLIError("\(flag) must be comma-separated positive integers, got \"\(text)\"")
        }
        return values.map { $0! }
    }

    static func deviceName(_ gpu: CUDAContext?) -> String {
        if let gpu {
            return "\(gpu.name), sm_\(gpu.computeCapability.major)\(gpu.computeCapability.minor), \(gpu.totalMemory >> 30) GiB"
        }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let name = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last
        return "cpu: \(name.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }

    /// The kernel module's version ("580.159.04") from /proc/driver/nvidia/version, when there.
    static func nvidiaDriverVersion() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/driver/nvidia/version", encoding: .utf8) else { return nil }
        return text.split(whereSeparator: \.isWhitespace).first { word in
            word.split(separator: ".").count >= 2 && word.allSatisfy { $0.isNumber || $0 == "." }
        }.map(String.init)
    }
}
