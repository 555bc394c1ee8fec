// gpu-check's continuous-batching section. (1) generateBatch on the GPU against one-at-a-time
// greedy generation of the same prompts on the GPU: the share of generated tokens that agree
// position by position (free running: one flipped near-tie changes everything after it), and
// teacher-forced — each batch token judged against the argmax of the one-at-a-time model fed the
// batch's own tokens so far, so a flip counts once. The bound: 99% teacher-forced, or no worse
// (by 1 point) than a control that changes only the numerics — one-at-a-time generation with the
// prompt prefilled in chunks of 16 — since bf16 GEMMs round differently with the batch shape and
// random models have near-ties (the median relative gap between the top two logits is reported).
// generateBatch runs twice, with the default bf16 KV pool and with an f32 one: one-at-a-time
// generation keeps f32 keys and values, so the f32 row isolates batching itself and the bf16 row
// adds the pool's rounding (the serving default). Its control is each prompt alone through the
// same engine with the same bf16 pool (the rounding without the batching), judged the same way.
// (2) A batched decode step timed: wall time per step at 64 sequences and the GPU time per kernel.
import Foundation
import OspreyCore
import OspreyCUDA
import OspreyGeneration
import OspreyModels

enum BatchCheck {
    /// Rows of the report (a bf16 and an f32 KV pool) and whether each passed.
    static func run(_ model: any LanguageModel, name: String, prompts: [[Int32]], newTokens: Int) throws -> [(line: String, passed: Bool)] {
        var config = GenerationConfig()
        config.maxNewTokens = newTokens
        config.eosTokenIds = []
        // One-at-a-time references, shared by both pools: greedy tokens, and the control's agreement.
        var alone: [[Int32]] = [], controlForced = 0
        for p in prompts {
            alone.append(try generate(model: model, prompt: p, config: config))
            // Control: one-at-a-time with the prompt prefilled in chunks of 16 (other GEMM shapes,
            // no batching): how often numerics alone flip a token on this model.
            let cache = model.makeCache()
            var start = 0
            while start < p.count - 1 {
                let end = min(start + 16, p.count - 1)
                _ = try model.forward(Array(p[start..<end]), cache: cache, allPositions: false)
                start = end
            }
            var control: [Int32] = []
            var last = try model.backend.download(model.forward([p.last!], cache: cache, allPositions: false))
            for _ in 0..<newTokens {
                let t = argmax(last)
                control.append(t)
                if control.count == newTokens { break }
                last = try model.backend.download(model.forward([t], cache: cache, allPositions: false))
            }
            controlForced += try forcedAgreement(model, prompt: p, tokens: control).agreeing
        }
        let total = alone.reduce(0) { $0 + $1.count }
        let controlRate = Double(controlForced) / Double(max(total, 1))
        let pct = { (x: Double) in String(format: "%.2f", 100 * x) }
        return try [BatchConfig().kvDType, .f32].map { kv in
            let batch = BatchConfig(blockSize: 16, numBlocks: nil, maxBatchTokens: 512, maxSequences: 64, kvDType: kv)
            let start = Date()
            let outputs = try model.generateBatch(inputs: prompts, config: config, batch: batch)
            let batchS = Date().timeIntervalSince(start)
            var same = 0, forced = 0, identical = 0
            var gaps: [Float] = []
            for (i, p) in prompts.enumerated() {
                let got = outputs[RequestID(i)]?.generatedTokens ?? []
                same += zip(alone[i], got).filter { $0 == $1 }.count
                if got == alone[i] { identical += 1 }
                let judged = try forcedAgreement(model, prompt: p, tokens: got)
                forced += judged.agreeing
                gaps += judged.gaps
            }
            gaps.sort()
            // With a bf16 pool the control also keeps its keys and values in bf16: each prompt alone
            // through the same engine and pool (one sequence per step: the pool's rounding, no batching).
            var control = controlRate
            if kv != .f32 {
                var forcedAlone = 0
                for p in prompts {
                    let one = try model.generateBatch(inputs: [p], config: config, batch: batch)
                    forcedAlone += try forcedAgreement(model, prompt: p, tokens: one[RequestID(0)]?.generatedTokens ?? []).agreeing
                }
                control = Double(forcedAlone) / Double(max(total, 1))
            }
            let rate = Double(forced) / Double(max(total, 1))
            let passed = rate >= 0.99 || rate >= control - 0.01
            return ("| \(name) | \(prompts.count) prompts of \(prompts.map(\.count).min()!)–\(prompts.map(\.count).max()!) tokens, \(newTokens) new, KV \(kv) | "
                    + "\(pct(rate))% (\(forced)/\(total)) | \(pct(control))% | \(pct(Double(same) / Double(max(total, 1))))%; "
                    + "\(identical)/\(prompts.count) identical | \(String(format: "%.1e", gaps.isEmpty ? 0 : gaps[gaps.count / 2])) | "
                    + "\(String(format: "%.2f", batchS)) s | \(passed ? "ok" : "FAIL") |", passed)
        }
    }

    /// How many of `tokens` are the one-at-a-time model's argmax given the prompt and the tokens
    /// before them, and per position the gap between its top two logits over the top one's size.
    static func forcedAgreement(_ model: any LanguageModel, prompt: [Int32], tokens: [Int32]) throws -> (agreeing: Int, gaps: [Float]) {
        guard !tokens.isEmpty else { return (0, []) }
        let logits = try model.backend.download(model.forward(prompt + tokens.dropLast(), cache: model.makeCache(), allPositions: true))
        let V = model.vocabularySize, base = logits.raw.assumingMemoryBound(to: Float.self)
        var agreeing = 0, gaps: [Float] = []
        for (j, token) in tokens.enumerated() {
            let row = base + (prompt.count - 1 + j) * V
            var best = 0, second = -Float.infinity
            for v in 1..<V where row[v] > row[best] { best = v }
            for v in 0..<V where v != best { second = max(second, row[v]) }
            if Int32(best) == token { agreeing += 1 }
            gaps.append((row[best] - second) / max(abs(row[best]), 1e-30))
        }
        return (agreeing, gaps)
    }

    static func argmax(_ t: Tensor) -> Int32 {
        let p = t.raw.assumingMemoryBound(to: Float.self), n = t.count
        var best = 0
        for i in 1..<n where p[i] > p[best] { best = i }
        return Int32(best)
    }

    /// Prompts of varied lengths.
    static func prompts(count: Int, lengths: ClosedRange<Int>, vocabulary: Int, seed: Int) -> [[Int32]] {
        (0..<count).map { i in
            let n = lengths.lowerBound + (i * 7919 + seed) % (lengths.count)
            return (0..<n).map { Int32(($0 * 31 + i * 17 + seed) % vocabulary) }
        }
    }

    /// Wall time per decode step with `sequences` requests decoding (prompts of `promptLength`),
    /// and the GPU time per kernel of one such step; first, while the prompts fill, the same for a
    /// prefill step of `maxBatchTokens` tokens.
    static func profileDecode(_ model: any LanguageModel, gpu: CUDABackend, sequences: Int, promptLength: Int, kvBlocks: Int? = nil,
                              maxBatchTokens: Int = 2048) throws -> [String] {
        var config = GenerationConfig()
        config.maxNewTokens = 64
        config.eosTokenIds = []
        let engine = try BatchEngine(model: model, config: BatchConfig(blockSize: 32, numBlocks: kvBlocks, maxBatchTokens: maxBatchTokens, maxSequences: 256))
        let kv = engine.config.kvDType
        for p in prompts(count: sequences, lengths: promptLength...promptLength, vocabulary: model.vocabularySize, seed: 5) {
            try engine.add(prompt: p, generation: config)
        }
        var lines: [String] = []
        _ = try engine.step()  // the first prefill chunk: kernels compile here
        if sequences * promptLength >= 3 * maxBatchTokens {  // two more full prefill steps: one timed, one profiled
            try gpu.synchronize()
            let start = Date()
            _ = try engine.step()
            try gpu.synchronize()
            let wall = Date().timeIntervalSince(start)
            let tokens = engine.scheduler.metrics.scheduledTokens
            lines += try profiledStep(engine, gpu: gpu, title: "Prefill step, \(tokens) prompt tokens, KV \(kv): \(String(format: "%.2f", wall * 1e3)) ms wall "
                                      + "(\(String(format: "%.0f", Double(tokens) / wall)) tok/s)")
        }
        while engine.scheduler.metrics.scheduledTokens != sequences || engine.steps < 2 { _ = try engine.step() }
        let steps = 16, start = Date()
        for _ in 0..<steps { _ = try engine.step() }
        let wall = Date().timeIntervalSince(start) / Double(steps)
        lines += try profiledStep(engine, gpu: gpu, title: "Batched decode step, \(sequences) sequences at ~\(promptLength + 4) positions, KV \(kv): "
                                  + "\(String(format: "%.2f", wall * 1e3)) ms wall per step (\(String(format: "%.0f", Double(sequences) / wall)) tok/s)")
        while engine.hasWork { _ = try engine.step() }
        return lines
    }

    /// One engine step with every launch timed alone: a table of the GPU time per kernel name.
    private static func profiledStep(_ engine: BatchEngine, gpu: CUDABackend, title: String) throws -> [String] {
        gpu.context.profile = [:]
        gpu.context.profileKernels = true
        defer { gpu.context.profileKernels = false }
        _ = try engine.step()
        let gpuMs = gpu.context.profile.values.reduce(0) { $0 + $1.milliseconds }
        var lines = ["", "### \(title); GPU time of one step, each launch timed alone: \(String(format: "%.2f", gpuMs)) ms", "",
                     "| kernel | ms | share | launches |", "|---|---|---|---|"]
        for (name, v) in gpu.context.profile.sorted(by: { $0.value.milliseconds > $1.value.milliseconds }).prefix(16) {
            lines.append("| \(name) | \(String(format: "%.3f", v.milliseconds)) | \(String(format: "%.1f", 100 * v.milliseconds / gpuMs))% | \(v.launches) |")
        }
        return lines
    }
}
