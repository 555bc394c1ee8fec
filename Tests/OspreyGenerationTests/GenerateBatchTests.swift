// generateBatch and the serving Engine on the CPU: greedy outputs must equal one-at-a-time
// generation exactly (the CPU backend computes each row the same way whatever the batch), under
// every shape of step the scheduler makes — chunked prefill with a small token budget, few
// sequences per step, preemption in a tiny pool, blocks of 4 and 32 positions — with either KV
// pool. One-at-a-time generation keeps f32 keys and values; against a bf16 pool (the default) its
// reference is the same generation with each layer's keys and values rounded to bf16 as they
// enter the cache (`BF16RoundingCache`), which is exactly what the pool stores, so the comparison
// stays exact. A tolerance against plain f32 would be weaker on both counts: on a random model
// with near-tied logits rounding alone flips some tokens, so a loose bound would also let a wrong
// block or slot through; the size of the rounding's effect is gpu-check's business (its bf16 and
// f32 pool rows side by side), not the scheduler's.
import Foundation
import Testing
import OspreyCore
import OspreyModels
@testable import OspreyGeneration

@Suite struct GenerateBatchTests {
    /// Prompts of varied lengths, some longer than the random model's sliding window (8).
    static func prompts(_ n: Int, vocab: Int, seed: UInt64) -> [[Int32]] {
        var s = seed
        func next() -> UInt64 { s &+= 0x9E37_79B9_7F4A_7C15; var z = s; z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9; return z ^ (z >> 27) }
        return (0..<n).map { _ in (0..<(1 + Int(next() % 23))).map { _ in Int32(1 + next() % UInt64(vocab - 1)) } }
    }

    func greedy(_ newTokens: Int) -> GenerationConfig {
        var c = GenerationConfig()
        c.maxNewTokens = newTokens
        return c
    }

    /// One-at-a-time generation holding keys and values as a pool of `kv` does (see the top).
    func alone(_ model: any LanguageModel, _ prompt: [Int32], _ config: GenerationConfig, kv: DType = BatchConfig().kvDType) throws -> [Int32] {
        var tokens = try TokenIterator(model: model, prompt: prompt, config: config,
                                       cache: kv == .bf16 ? BF16RoundingCache(model.makeCache()) : nil)
        while try tokens.next() != nil {}
        return tokens.generated
    }

    static let batches = [
        BatchConfig(blockSize: 4, numBlocks: 400, maxBatchTokens: 64, maxSequences: 8),
        BatchConfig(blockSize: 32, numBlocks: 64, maxBatchTokens: 2048, maxSequences: 256),
        BatchConfig(blockSize: 4, numBlocks: 400, maxBatchTokens: 5, maxSequences: 3),   // chunked prefill
        BatchConfig(blockSize: 4, numBlocks: 24, maxBatchTokens: 64, maxSequences: 8),    // preemption
    ]

    @Test(arguments: batches + batches.map { var b = $0; b.kvDType = .f32; return b })
    func greedyBatchEqualsOneAtATime(batch: BatchConfig) throws {
        try withRandomFolder(tokenizer: false) { dir in
            let model = try LoadedModel.load(dir, device: .cpu).model
            let inputs = Self.prompts(7, vocab: model.vocabularySize, seed: 3)
            let config = greedy(12)
            let outputs = try model.generateBatch(inputs: inputs, config: config, batch: batch)
            #expect(outputs.count == inputs.count)
            for (i, prompt) in inputs.enumerated() {
                let alone = try alone(model, prompt, config, kv: batch.kvDType)
                let out = try #require(outputs[RequestID(i)])
                #expect(out.promptIds == prompt)
                #expect(out.generatedTokens == alone, "request \(i) (prompt of \(prompt.count))")
                #expect(out.finishReason == .length)
            }
        }
    }

    @Test func preemptionHappensInATinyPool() throws {
        try withRandomFolder(tokenizer: false) { dir in
            let model = try LoadedModel.load(dir, device: .cpu).model
            let engine = try BatchEngine(model: model, config: BatchConfig(blockSize: 4, numBlocks: 24, maxBatchTokens: 64, maxSequences: 8))
            for p in Self.prompts(7, vocab: model.vocabularySize, seed: 3) { try engine.add(prompt: p, generation: greedy(12)) }
            while engine.hasWork { _ = try engine.step() }
            #expect(engine.scheduler.metrics.preemptions > 0)
            #expect(engine.scheduler.blocks.freeBlockCount == 24)
        }
    }

    @Test func stopTokensEndRequestsEarly() throws {
        try withRandomFolder(tokenizer: false) { dir in
            let model = try LoadedModel.load(dir, device: .cpu).model
            let inputs = Self.prompts(4, vocab: model.vocabularySize, seed: 9)
            // Stop on each request's own third greedy token: the batch must stop there too.
            var config = greedy(10)
            let first = try inputs.map { try alone(model, $0, config) }
            config.eosTokenIds = first.map { $0[2] }
            let outputs = try model.generateBatch(inputs: inputs, config: config, batch: BatchConfig(blockSize: 4, numBlocks: 200))
            for (i, prompt) in inputs.enumerated() {
                let expected = try alone(model, prompt, config)
                #expect(outputs[RequestID(i)]?.generatedTokens == expected)
                #expect(outputs[RequestID(i)]?.finishReason == (expected.count < 10 ? .eos : .length))
            }
        }
    }

    @Test func seededSamplingMatchesOneAtATime() throws {
        try withRandomFolder(tokenizer: false) { dir in
            let model = try LoadedModel.load(dir, device: .cpu).model
            let inputs = Self.prompts(3, vocab: model.vocabularySize, seed: 5)
            var config = greedy(8)
            (config.doSample, config.temperature, config.topK, config.seed) = (true, 0.9, 20, 42)
            let outputs = try model.generateBatch(inputs: inputs, config: config, batch: BatchConfig(blockSize: 4, numBlocks: 200))
            for (i, prompt) in inputs.enumerated() {
                #expect(outputs[RequestID(i)]?.generatedTokens == (try alone(model, prompt, config)))
            }
        }
    }

    @Test func badRequestsAreRefusedWithAReason() throws {
        try withRandomFolder(tokenizer: false) { dir in
            let model = try LoadedModel.load(dir, device: .cpu).model
            let engine = try BatchEngine(model: model, config: BatchConfig(blockSize: 4, numBlocks: 8))
            #expect(throws: BatchError.self) { try engine.add(prompt: [], generation: greedy(4)) }
            #expect(throws: BatchError.self) { try engine.add(prompt: Array(repeating: 1, count: 200), generation: greedy(4)) }
            #expect(throws: BatchError.self) { try engine.add(prompt: [1], generation: greedy(0)) }
            #expect(!engine.hasWork)
            #expect(throws: BatchError.self) { try BatchEngine(model: model, config: BatchConfig(blockSize: 4, numBlocks: 8, kvDType: .f16)) }
        }
    }

    @Test func thePoolStoresTheConfiguredDType() throws {
        try withRandomFolder(tokenizer: false) { dir in
            let model = try LoadedModel.load(dir, device: .cpu).model
            #expect(BatchConfig().kvDType == .bf16)
            for kv in [DType.bf16, .f32] {
                let engine = try BatchEngine(model: model, config: BatchConfig(blockSize: 4, numBlocks: 8, kvDType: kv))
                #expect(engine.runner.cache.dtype == kv)
                #expect(engine.runner.cache.keys.allSatisfy { $0.dtype == kv } && engine.runner.cache.values.allSatisfy { $0.dtype == kv })
            }
        }
    }

    @Test func engineStreamsMatchGenerateBatchAndCancelFreesBlocks() async throws {
        try await withRandomFolderAsync { dir in
            let model = try LoadedModel.load(dir, device: .cpu).model
            let inputs = Self.prompts(5, vocab: model.vocabularySize, seed: 11)
            let config = greedy(10)
            let expected = try model.generateBatch(inputs: inputs, config: config, batch: BatchConfig(blockSize: 4, numBlocks: 300))
            let engine = try Engine(model: model, config: BatchConfig(blockSize: 4, numBlocks: 30_000, maxBatchTokens: 16, maxSequences: 4))
            // A long request, cancelled after its first token: 50,000 tokens take the engine minutes, so
            // the cancel lands while it runs even when this task is scheduled late (the stream buffers).
            var long = config
            long.maxNewTokens = 50_000
            let doomed = try engine.add(prompt: [1, 2, 3], generation: long)
            let streams = try inputs.map { try engine.add(prompt: $0, generation: config) }
            var doomedTokens = 0, doomedFinish: FinishReason?
            for try await e in doomed.tokens {
                if e.token != nil { doomedTokens += 1; if doomedTokens == 1 { engine.cancel(doomed.id) } }
                doomedFinish = e.finish ?? doomedFinish
            }
            #expect(doomedFinish == .cancelled)
            #expect(doomedTokens < 50_000)
            var got: [[Int32]] = []
            for s in streams {
                var tokens: [Int32] = [], finish: FinishReason?
                for try await e in s.tokens {
                    if let t = e.token { tokens.append(t) }
                    finish = e.finish ?? finish
                }
                #expect(finish == .length)
                got.append(tokens)
            }
            for (i, tokens) in got.enumerated() { #expect(tokens == expected[RequestID(i)]?.generatedTokens) }
            engine.shutdown()
            let m = engine.metrics
            #expect(m.scheduler.freeBlocks == m.totalBlocks)
            #expect(m.requestsFinished == inputs.count)
            #expect(m.requestsCancelled == 1)
        }
    }
}

/// A one-sequence cache that rounds each layer's keys and values to bf16 (nearest even, as a bf16
/// paged pool stores them) before `inner` keeps them: the one-at-a-time reference of a bf16 pool.
final class BF16RoundingCache: KVCache {
    let inner: any KVCache
    init(_ inner: any KVCache) { self.inner = inner }

    var offset: Int { inner.offset }
    func storedTokens(layer: Int) -> Int { inner.storedTokens(layer: layer) }
    func advance(by count: Int) { inner.advance(by: count) }
    func update(layer: Int, k: Tensor, v: Tensor) throws -> (k: Tensor, v: Tensor, keyStart: Int) {
        func rounded(_ t: Tensor) -> Tensor { Tensor(t.floats().map { floatFromBF16(bf16Bits($0)) }, shape: t.shape) }
        return try inner.update(layer: layer, k: rounded(k), v: rounded(v))
    }
}

/// `withRandomFolder` for async bodies.
func withRandomFolderAsync(_ body: (URL) async throws -> Void) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gen-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    try RandomGptOss.write(GptOssShape(), to: dir, seed: 1)
    try await body(dir)
}
