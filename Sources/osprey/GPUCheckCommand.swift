// `osprey gpu-check`: the GPU test suite, run on the GPU machine (which has no Swift toolchain,
// only this binary). (a) every CUDA op against the CPU oracle on fresh random inputs of several
// shapes, with the workspace poisoned (NaN) before each op; (b) the transformers fixtures on the
// GPU: logits at every prompt position and the 32 greedy tokens; (c) optionally a model folder:
// decode speed and the steady-state counters (allocations, syncs, compilations per token).
// Writes a markdown report and exits non-zero when any check fails.
import ArgumentParser
import Foundation
import OspreyCore
import OspreyCPU
import OspreyCUDA
import OspreyGeneration
import OspreyIO
import OspreyModels

struct GPUCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu-check", abstract: "Check every CUDA op against the CPU oracle, and the fixtures on the GPU.")

    @Option(help: "Folder of transformers fixtures (each with reference.safetensors).")
    var fixtures: String?

    @Option(help: "A model folder to time decode on (e.g. a random gpt-oss-20b-shaped checkpoint).")
    var model: String?

    @Option(name: .customLong("batch-model"), help: "Another model folder for the batching check (e.g. the shipped trained model).")
    var batchModel: String?

    @Option(name: .customLong("decode-tokens"), help: "Tokens to decode on --model.")
    var decodeTokens = 64

    @Flag(help: "Also time every kernel of one decode step and one 2,048-token prefill (GPU time per kernel name).")
    var profile = false

    @Option(name: .customLong("long-decode"), help: "Also generate this many tokens after a 1,024-token prompt with the config-aware cache and with every layer full (KV bytes and tok/s).")
    var longDecode: Int?

    @Option(name: .customLong("long-decode-csv"), help: "Write the long-decode samples here as CSV.")
    var longDecodeCSV: String?

    @Option(help: "Write the markdown report here (also printed).")
    var report: String?

    func run() throws {
        try reportingErrors {
            let gpu = try CUDABackend(ordinal: 0)
            var lines = ["# gpu-check", "", "- date: \(ISO8601DateFormatter().string(from: Date()))",
                         "- device: \(gpu.context.name), sm_\(gpu.context.computeCapability.major)\(gpu.context.computeCapability.minor), \(gpu.context.totalMemory >> 30) GiB",
                         "- command: osprey gpu-check \(CommandLine.arguments.dropFirst(2).joined(separator: " "))", ""]
            var failures = 0
            gpu.context.poisonWorkspace = true
            var checks = OpChecks(gpu: gpu)
            let ops = try checks.runAll() + mxfp4OddCaseChecks(gpu: gpu) + groupedMXFP4Checks(gpu: gpu)
            lines += ["## Ops against the CPU oracle (max |Δ| / max |ref|; bound 1e-4 for f32 compute, 1e-2 where cuBLASLt takes bf16 inputs, 3e-2 for int8 inputs)", "",
                      "| op | case | relative error | result |", "|---|---|---|---|"]
            for r in ops {
                lines.append("| \(r.op) | \(r.shape) | \(String(format: "%.2e", r.error)) | \(r.passed ? "ok" : "FAIL") |")
                if !r.passed { failures += 1 }
            }
            gpu.context.poisonWorkspace = false
            if let fixtures {
                lines += ["", "## transformers fixtures on the GPU", "",
                          "| fixture | max relative L2 over positions | max |Δ| / max |logit| | greedy 32 identical (generate / pipelined on the GPU) |", "|---|---|---|---|"]
                for name in try FileManager.default.contentsOfDirectory(atPath: fixtures).sorted() {
                    let dir = URL(fileURLWithPath: fixtures).appendingPathComponent(name)
                    guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("reference.safetensors").path) else { continue }
                    let r = try checkFixture(dir, gpu: gpu)
                    let ok = r.l2 <= 2e-2 && r.greedy == "yes / yes"
                    if !ok { failures += 1 }
                    lines.append("| \(name) | \(String(format: "%.2e", r.l2)) | \(String(format: "%.2e", r.maxRel)) | \(r.greedy) |")
                }
            }
            lines += ["", "## Continuous batching: generateBatch against one-at-a-time greedy on the GPU", "",
                      "Teacher-forced: each batch token against the one-at-a-time argmax given the same prefix; control: one-at-a-time with the prompt prefilled in chunks of 16, judged the same way (numerics only, no batching). Bound: 99%, or within 1 point of the control. Each model runs with the default bf16 KV pool and an f32 one (one-at-a-time keeps f32); the bf16 row's control is each prompt alone through the engine with the same bf16 pool.", "",
                      "| model | workload | teacher-forced agreement | control | free-running agreement | median top-2 logit gap (relative) | generateBatch time | result |", "|---|---|---|---|---|---|---|---|"]
            var batchModels: [(String, URL, Int)] = []
            if let fixtures {
                for name in try FileManager.default.contentsOfDirectory(atPath: fixtures).sorted()
                where FileManager.default.fileExists(atPath: URL(fileURLWithPath: fixtures).appendingPathComponent("\(name)/config.json").path) {
                    batchModels.append((name, URL(fileURLWithPath: fixtures).appendingPathComponent(name), 24))
                }
            }
            if let shipped = batchModel { batchModels.append((URL(fileURLWithPath: shipped).lastPathComponent, URL(fileURLWithPath: shipped), 48)) }
            if let model { batchModels.append((URL(fileURLWithPath: model).lastPathComponent, URL(fileURLWithPath: model), 32)) }
            var graphLines = ["", "## Decode graphs: generateBatch replaying recorded CUDA graphs against eager steps (must be identical)", "",
                              "| model | workload | requests | graph replays | eager / graphs time | result |", "|---|---|---|---|---|---|"]
            for (name, dir, newTokens) in batchModels {
                let m = try ModelRegistry.load(ModelFolder(directory: dir), backend: gpu)
                let prompts = BatchCheck.prompts(count: 12, lengths: 5...300, vocabulary: m.vocabularySize, seed: 3)
                let graphs = try GraphCheck.run(m, gpu: gpu, name: name, prompts: prompts, newTokens: newTokens)
                graphLines.append(graphs.line)
                if !graphs.passed { failures += 1 }
                for r in try BatchCheck.run(m, name: name, prompts: prompts, newTokens: newTokens) {
                    lines.append(r.line)
                    if !r.passed { failures += 1 }
                }
                if dir.path == model {
                    lines += try BatchCheck.profileDecode(m, gpu: gpu, sequences: 64, promptLength: 200)
                    lines += try BatchCheck.profileDecode(m, gpu: gpu, sequences: 1, promptLength: 500)
                }
            }
            lines += graphLines
            let sampling = try SamplingCheck.run(gpu: gpu)
            lines += ["", "## Sampling on the device (Gumbel-max) against the CPU oracle", "", "| check | result | |", "|---|---|---|", sampling.line]
            if !sampling.passed { failures += 1 }
            if let model {
                let (decodeLines, decodeFailures) = try timeDecode(URL(fileURLWithPath: model), gpu: gpu)
                lines += ["", "## Decode on \(model)", ""] + decodeLines
                failures += decodeFailures
            }
            lines += ["", failures == 0 ? "All checks passed." : "\(failures) check(s) FAILED."]
            let text = lines.joined(separator: "\n") + "\n"
            emit(text)
            if let report { try Data(text.utf8).write(to: URL(fileURLWithPath: report)) }
            if failures > 0 { throw ExitCode.failure }
        }
    }

    private func checkFixture(_ dir: URL, gpu: CUDABackend) throws -> (l2: Float, maxRel: Float, greedy: String) {
        let ref = try SafetensorsFile(url: dir.appendingPathComponent("reference.safetensors"))
        let ids = try ref.tensor("input_ids").floats().map { Int32($0) }
        let refLogits = try ref.tensor("logits").floats()
        let refGreedy = try ref.tensor("greedy_ids").floats().map { Int32($0) }
        let model = try ModelRegistry.load(ModelFolder(directory: dir), backend: gpu)
        let V = model.vocabularySize
        let logits = try gpu.download(model.forward(ids, cache: model.makeCache(), allPositions: true)).floats()
        var l2: Float = 0
        let scale = refLogits.map(abs).max() ?? 1
        var maxRel: Float = 0
        for t in 0..<ids.count {
            var num: Float = 0, den: Float = 0
            for v in 0..<V {
                let d = logits[t * V + v] - refLogits[t * V + v]
                num += d * d; den += refLogits[t * V + v] * refLogits[t * V + v]
                maxRel = max(maxRel, abs(d) / scale)
            }
            l2 = max(l2, (num / max(den, 1e-30)).squareRoot())
            if logits[t * V..<(t + 1) * V].contains(where: { $0.isNaN }) { l2 = .nan }
        }
        let greedy = try generate(model: model, prompt: ids, config: GenerationConfig(maxNewTokens: refGreedy.count))
        let pipelined = try generateGreedyPipelined(model: model, prompt: ids, maxNewTokens: refGreedy.count)
        let verdict = { (got: [Int32]) -> String in
            guard got != refGreedy else { return "yes" }
            let i = (0..<min(got.count, refGreedy.count)).first { got[$0] != refGreedy[$0] } ?? min(got.count, refGreedy.count)
            return "NO (first difference at \(i): \(got.dropFirst(i).prefix(4)) vs \(refGreedy.dropFirst(i).prefix(4)))"
        }
        return (l2.isNaN ? .infinity : l2, maxRel, "\(verdict(greedy)) / \(verdict(pipelined))")
    }

    /// Load, prefill and pipelined greedy decode (the loop `osprey generate` runs on a GPU), the
    /// steady loop's counters (which must be zero: allocations, stream synchronisations,
    /// compilations), and a 2,048-token prefill. Returns the report lines and the failures.
    private func timeDecode(_ dir: URL, gpu: CUDABackend) throws -> ([String], Int) {
        let clock = ContinuousClock()
        let secs = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        let t0 = clock.now
        let model = try ModelRegistry.load(ModelFolder(directory: dir), backend: gpu)
        let loaded = clock.now
        let prompt = (0..<128).map { Int32(($0 * 7919 + 13) % model.vocabularySize) }
        let warmUp = 4
        let cache = try model.makeCache(maxLength: prompt.count + warmUp + decodeTokens + 2)
        var produced = 0
        var firstToken = loaded, start = loaded
        _ = try generateGreedyPipelined(model: model, prompt: prompt, maxNewTokens: warmUp + 1 + decodeTokens, cache: cache) { _ in
            produced += 1
            if produced == 1 { firstToken = clock.now }
            if produced == warmUp + 1 { gpu.context.resetStats(); start = clock.now }
        }
        let elapsed = clock.now - start
        let s = gpu.context.stats
        var failures = 0
        let steady = s.deviceAllocations == 0 && s.hostSynchronizations == 0 && s.kernelCompilations == 0
        if !steady { failures += 1 }
        // Prefill of one 2,048-token prompt (fresh cache). The first run also builds the GEMM plans.
        let longPrompt = (0..<2048).map { Int32(($0 * 31 + 7) % model.vocabularySize) }
        var prefillTimes: [Duration] = []
        for _ in 0..<2 {
            let prefillStart = clock.now
            let slot = try gpu.makeBuffer([1], dtype: .i32)
            try gpu.argmax(model.forward(longPrompt, cache: model.makeCache(), allPositions: false), into: slot)
            _ = try gpu.download(slot)
            prefillTimes.append(clock.now - prefillStart)
        }
        let n = Double(decodeTokens)
        var lines = [
            "- load: \(String(format: "%.2f", secs(loaded - t0))) s; prefill 128 tokens to the first token: \(String(format: "%.3f", secs(firstToken - loaded))) s",
            "- decode, batch 1 (greedy, pipelined, argmax on the GPU): \(String(format: "%.1f", n / secs(elapsed))) tok/s over \(decodeTokens) tokens (after \(warmUp) warm-up tokens)",
            "- prefill, one 2,048-token prompt: \(String(format: "%.0f", 2048 / secs(prefillTimes[1]))) tok/s (first run, with GEMM planning: \(String(format: "%.0f", 2048 / secs(prefillTimes[0]))) tok/s)",
            "- steady decode, per token: \(String(format: "%.1f", Double(s.kernelLaunches) / n)) kernel launches, \(String(format: "%.2f", Double(s.eventWaits) / n)) event waits (the host reading the previous token while the GPU runs this one); in all \(decodeTokens) tokens: \(s.deviceAllocations) device allocations, \(s.hostSynchronizations) stream synchronisations, \(s.kernelCompilations) compilations — \(steady ? "ok (must be 0)" : "FAIL (must be 0)")",
        ]
        if profile { lines += try profileSteps(model, gpu: gpu, longPrompt: longPrompt) }
        if let longDecode {
            guard let gptOss = model as? GptOssModel else { throw ValidationError("--long-decode needs a gpt-oss model") }
            lines += try LongDecode.run(gptOss, gpu: gpu, tokens: longDecode, csv: longDecodeCSV)
        }
        return (lines, failures)
    }

    /// GPU time per kernel name over one decode step (after a 512-token prompt) and one 2,048-token prefill.
    private func profileSteps(_ model: any LanguageModel, gpu: CUDABackend, longPrompt: [Int32]) throws -> [String] {
        var lines: [String] = []
        let cache = model.makeCache()
        let slot = try gpu.makeBuffer([1], dtype: .i32)
        try gpu.argmax(model.forward(Array(longPrompt.prefix(512)), cache: cache, allPositions: false), into: slot)
        for (title, run) in [("one decode step at position 512", { try gpu.argmax(model.forward(tokens: slot, cache: cache, allPositions: false), into: slot) }),
                             ("one 2,048-token prefill", { try gpu.argmax(model.forward(longPrompt, cache: model.makeCache(), allPositions: false), into: slot) })] {
            gpu.context.profile = [:]
            gpu.context.profileKernels = true
            try run()
            gpu.context.profileKernels = false
            let total = gpu.context.profile.values.reduce(0) { $0 + $1.milliseconds }
            lines += ["", "### GPU time per kernel, \(title) (each launch timed alone: \(String(format: "%.3f", total)) ms in all)", "",
                      "| kernel | ms | share | launches |", "|---|---|---|---|"]
            for (name, v) in gpu.context.profile.sorted(by: { $0.value.milliseconds > $1.value.milliseconds }) {
                lines.append("| \(name) | \(String(format: "%.3f", v.milliseconds)) | \(String(format: "%.1f", 100 * v.milliseconds / total))% | \(v.launches) |")
            }
        }
        return lines
    }

    private func argmax(_ t: Tensor) -> Int32 {
        let p = t.raw.assumingMemoryBound(to: Float.self)
        var best = 0
        for i in 1..<t.count where p[i] > p[best] { best = i }
        return Int32(best)
    }
}
