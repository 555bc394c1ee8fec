// The continuous-batching engine's synchronous core: a Scheduler (who runs, in token counts and
// block ids), a ModelRunner (device inputs, the forward pass, sampling) and the per-request state
// between them (samplers, token history, timings). One call of `step()` is one forward pass over
// every scheduled request. `generateBatch` drives it to the end; the serving `Engine` drives it
// from its own thread. Not thread-safe: one owner calls it.
import Foundation
import OspreyCore
import OspreyCUDA
import OspreyModels

/// Settings of continuous batching (transformers' `num_blocks`, `max_batch_tokens`, `block_size`).
public struct BatchConfig: Sendable {
    /// Token positions per KV block.
    public var blockSize = 32
    /// Blocks in the KV pool; nil sizes it from the device: `memoryFraction` of the GPU memory free
    /// after the weights and a profile forward of `maxBatchTokens` tokens (its workspace kept), or on
    /// the CPU enough for `cpuTokens` positions per layer group.
    public var numBlocks: Int?
    /// Tokens one step computes at most (decodes plus prefill chunks).
    public var maxBatchTokens = 2048
    /// Requests one step runs at most.
    public var maxSequences = 256
    /// Share of the free GPU memory the KV pool may take when `numBlocks` is nil.
    public var memoryFraction = 0.8
    /// Positions the CPU pool holds per group when `numBlocks` is nil.
    public var cpuTokens = 16_384
    /// What the KV pool stores: bf16 (half the bytes of f32, so twice the blocks fit and a decode
    /// step reads half as much; keys and values are rounded to nearest even as they are written)
    /// or f32 (the one-sequence caches' precision).
    public var kvDType = DType.bf16

    public init(blockSize: Int = 32, numBlocks: Int? = nil, maxBatchTokens: Int = 2048, maxSequences: Int = 256,
                kvDType: DType = .bf16) {
        (self.blockSize, self.numBlocks, self.maxBatchTokens, self.maxSequences) = (blockSize, numBlocks, maxBatchTokens, maxSequences)
        self.kvDType = kvDType
    }
}

/// Timings of one request (seconds since it was added).
public struct RequestTiming: Sendable, Equatable {
    public var added: Double
    /// When its first token was sampled.
    public var firstToken: Double?
    /// When its last token so far was sampled.
    public var lastToken: Double?
    public var tokens = 0

    /// Time to first token.
    public var ttft: Double? { firstToken.map { $0 - added } }
    /// Mean time between tokens after the first.
    public var interTokenLatency: Double? {
        guard let f = firstToken, let l = lastToken, tokens > 1 else { return nil }
        return (l - f) / Double(tokens - 1)
    }
}

/// Scheduler + runner + per-request state.
public final class BatchEngine {
    public let model: any LanguageModel
    public let config: BatchConfig
    public private(set) var scheduler: Scheduler
    let runner: ModelRunner
    private var samplers: [RequestID: Sampler] = [:]
    private var histories: [RequestID: [Int32]] = [:]
    /// Per request, live or finished (the caller may `forget` them).
    public private(set) var timings: [RequestID: RequestTiming] = [:]
    private var nextID = 0
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    /// Steps run, and the tokens they fed.
    public private(set) var steps = 0, tokensFed = 0

    /// An engine over `model` with a KV pool sized by `config`.
    public init(model: any LanguageModel, config: BatchConfig = BatchConfig()) throws {
        guard PagedKVCache.dtypes.contains(config.kvDType) else {
            throw BatchError.invalidSetting("kvDType \(config.kvDType): the KV pool stores bf16 or f32")
        }
        let (layout, slots) = try KVBlockLayout.grouping(layerWindows: model.attentionWindows, blockSize: config.blockSize)
        let numBlocks = try config.numBlocks ?? Self.blocksFitting(model: model, layout: layout, slots: slots, config: config)
        scheduler = try Scheduler(layout: layout, numBlocks: numBlocks, maxBatchTokens: config.maxBatchTokens,
                                  maxSequences: config.maxSequences)
        runner = try ModelRunner(model: model, layout: layout, layerSlots: slots, blockCount: numBlocks, kvDType: config.kvDType)
        (self.model, self.config) = (model, config)
        started = clock.now
    }

    /// Queues a generation of `prompt` with `generation`'s limits, stop ids and sampling; returns its id.
    @discardableResult
    public func add(prompt: [Int32], generation: GenerationConfig, id: RequestID? = nil) throws -> RequestID {
        try generation.sampling.validate()
        let id = id ?? RequestID(nextID)
        nextID = max(nextID, id.value + 1)
        try scheduler.add(BatchRequest(id: id, prompt: prompt, maxNewTokens: generation.maxNewTokens,
                                       stopTokens: Set(generation.eosTokenIds), minNewTokens: generation.minNewTokens))
        samplers[id] = Sampler(generation, promptLength: prompt.count)
        histories[id] = prompt
        timings[id] = RequestTiming(added: now())
        return id
    }

    /// Ends a request at once, returning its KV blocks to the pool; false if it is not live.
    @discardableResult
    public func cancel(_ id: RequestID) -> Bool {
        (samplers[id], histories[id]) = (nil, nil)
        return scheduler.cancel(id)
    }

    /// Some request is waiting or running.
    public var hasWork: Bool { scheduler.hasWork }

    /// One forward pass over the scheduled requests; returns each entry's new token and finish.
    public func step() throws -> [SequenceUpdate] {
        let batch = scheduler.schedule()
        guard !batch.isEmpty else { return [] }
        let sampled = try runner.run(batch, sampler: { self.samplers[$0] }, history: { self.histories[$0] ?? [] },
                                     update: { self.samplers[$0] = $1 })
        let updates = try scheduler.complete(batch, sampled: sampled)
        let t = now()
        for u in updates {
            if let token = u.token {
                histories[u.id]?.append(token)
                timings[u.id]?.tokens += 1
                if timings[u.id]?.firstToken == nil { timings[u.id]?.firstToken = t }
                timings[u.id]?.lastToken = t
            }
            if u.finish != nil { (samplers[u.id], histories[u.id]) = (nil, nil) }
        }
        steps += 1
        tokensFed += batch.tokenCount
        return updates
    }

    /// Drops the timings of finished requests.
    public func forget(_ id: RequestID) { timings[id] = nil }

    private func now() -> Double {
        let d = clock.now - started
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// Blocks for the pool when the config does not say: a share of the GPU memory free after a
    /// forward of `maxBatchTokens` tokens (blocks of `config.kvDType`), or `cpuTokens` positions
    /// per group on the CPU.
    static func blocksFitting(model: any LanguageModel, layout: KVBlockLayout, slots: [KVBlockLayout.LayerSlot],
                              config: BatchConfig) throws -> Int {
        let groupSize = (slots.map(\.index).max() ?? 0) + 1
        let perBlock = PagedKVCache.bytesPerBlock(groupSize: groupSize, blockSize: config.blockSize, rowShape: model.kvRowShape,
                                                  dtype: config.kvDType)
        guard let cuda = model.backend as? CUDABackend else {
            return layout.groupCount * layout.blockCount(covering: config.cpuTokens)
        }
        // The profile run (how vLLM sizes its pool): one forward of a full step's tokens first, so
        // that the workspace the largest prefill step needs is held before the pool takes its share
        // of what is free. A pool sized first left 8,192-token steps out of memory (2026-11-29).
        _ = try model.forward([Int32](repeating: 0, count: config.maxBatchTokens), cache: model.makeCache(), allPositions: false)
        let free = try cuda.context.memoryFree()
        let blocks = Int(Double(free) * config.memoryFraction) / perBlock
        guard blocks >= 1 else {
            throw BatchError.invalidSetting("only \(free >> 20) MiB of GPU memory is free: no room for a KV block of \(perBlock >> 10) KiB")
        }
        return blocks
    }
}
