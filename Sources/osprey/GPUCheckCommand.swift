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

    @Option(name: .customLong("decode-tokens"), help: "Tokens to decode on --model.")
    var decodeTokens = 64

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
            let ops = try checks.runAll()
            lines += ["## Ops against the CPU oracle (max |Δ| / max |ref|; bound 1e-4, f32 compute)", "",
                      "| op | case | relative error | result |", "|---|---|---|---|"]
            for r in ops {
                lines.append("| \(r.op) | \(r.shape) | \(String(format: "%.2e", r.error)) | \(r.passed ? "ok" : "FAIL") |")
                if !r.passed { failures += 1 }
            }
            gpu.context.poisonWorkspace = false
            if let fixtures {
                lines += ["", "## transformers fixtures on the GPU", "",
                          "| fixture | max relative L2 over positions | max |Δ| / max |logit| | greedy 32 identical |", "|---|---|---|---|"]
                for name in try FileManager.default.contentsOfDirectory(atPath: fixtures).sorted() {
                    let dir = URL(fileURLWithPath: fixtures).appendingPathComponent(name)
                    guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("reference.safetensors").path) else { continue }
                    let r = try checkFixture(dir, gpu: gpu)
                    let ok = r.l2 <= 2e-2 && r.greedy
                    if !ok { failures += 1 }
                    lines.append("| \(name) | \(String(format: "%.2e", r.l2)) | \(String(format: "%.2e", r.maxRel)) | \(r.greedy ? "yes" : "NO") |")
                }
            }
            if let model {
                lines += ["", "## Decode on \(model)", ""] + (try timeDecode(URL(fileURLWithPath: model), gpu: gpu))
            }
            lines += ["", failures == 0 ? "All checks passed." : "\(failures) check(s) FAILED."]
            let text = lines.joined(separator: "\n") + "\n"
            emit(text)
            if let report { try Data(text.utf8).write(to: URL(fileURLWithPath: report)) }
            if failures > 0 { throw ExitCode.failure }
        }
    }

    private func checkFixture(_ dir: URL, gpu: CUDABackend) throws -> (l2: Float, maxRel: Float, greedy: Bool) {
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
        let greedy = try generate(model: model, prompt: ids, parameters: GenerateParameters(maxNewTokens: refGreedy.count))
        return (l2.isNaN ? .infinity : l2, maxRel, greedy == refGreedy)
    }

    private func timeDecode(_ dir: URL, gpu: CUDABackend) throws -> [String] {
        let clock = ContinuousClock()
        let t0 = clock.now
        let model = try ModelRegistry.load(ModelFolder(directory: dir), backend: gpu)
        let loaded = clock.now
        let cache = model.makeCache()
        let prompt = (0..<128).map { Int32(($0 * 7919 + 13) % model.vocabularySize) }
        var next = try argmax(gpu.download(model.forward(prompt, cache: cache, allPositions: false)))
        let prefilled = clock.now
        for _ in 0..<4 { next = try argmax(gpu.download(model.forward([next], cache: cache, allPositions: false))) }  // warm-up
        gpu.context.resetStats()
        let start = clock.now
        var enqueue = Duration.zero  // host time spent issuing the step's work (the GPU runs behind it)
        for _ in 0..<decodeTokens {
            let a = clock.now
            let logits = try model.forward([next], cache: cache, allPositions: false)
            enqueue += clock.now - a
            next = try argmax(gpu.download(logits))
        }
        let elapsed = clock.now - start
        // Prefill of one 2,048-token prompt (fresh cache; its kernels are compiled already).
        let longPrompt = (0..<2048).map { Int32(($0 * 31 + 7) % model.vocabularySize) }
        let prefillStart = clock.now
        _ = try argmax(gpu.download(model.forward(longPrompt, cache: model.makeCache(), allPositions: false)))
        let prefillTime = clock.now - prefillStart
        let secs = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        let s = gpu.context.stats
        let n = Double(decodeTokens)
        return [
            "- load: \(String(format: "%.2f", secs(loaded - t0))) s; prefill 128 tokens: \(String(format: "%.3f", secs(prefilled - loaded))) s",
            "- decode, batch 1: \(String(format: "%.1f", n / secs(elapsed))) tok/s over \(decodeTokens) tokens (after 4 warm-up tokens)",
            "- prefill, one 2,048-token prompt: \(String(format: "%.0f", 2048 / secs(prefillTime))) tok/s",
            "- host time issuing each step: \(String(format: "%.2f", secs(enqueue) / n * 1000)) ms of \(String(format: "%.2f", secs(elapsed) / n * 1000)) ms per token",
            "- per decoded token: \(String(format: "%.1f", Double(s.kernelLaunches) / n)) kernel launches, \(String(format: "%.2f", Double(s.deviceAllocations) / n)) device allocations, \(String(format: "%.2f", Double(s.hostSynchronizations) / n)) host synchronisations, \(s.kernelCompilations) compilations in all",
        ]
    }

    private func argmax(_ t: Tensor) -> Int32 {
        let p = t.raw.assumingMemoryBound(to: Float.self)
        var best = 0
        for i in 1..<t.count where p[i] > p[best] { best = i }
        return Int32(best)
    }
}
