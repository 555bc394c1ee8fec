// The generation loop (kept small, like mlx-lm's generate_step): `TokenIterator` prefills the
// prompt, then runs one token at a time through the cache, picking each token from the last
// position's logits with the sampler (Sampling.swift). It ends at `maxNewTokens`, at an
// end-of-sequence id, or when the current task is cancelled; a caller stops it sooner by not
// asking for more. Text, stop strings and streaming are built on it (TextGeneration.swift,
// Streaming.swift).
import Foundation
import OspreyCore
import OspreyModels

/// Why a generation ended.
public enum FinishReason: String, Sendable, Equatable {
    /// `maxNewTokens` were generated.
    case length
    /// An end-of-sequence id was generated (it is the last id).
    case eos
    /// The output contains a stop string.
    case stop
    /// The caller stopped it: task cancellation, a stream consumer that went away, Ctrl-C.
    case cancelled
}

/// Generates ids one `next()` at a time over one cache.
public struct TokenIterator {
    /// The model generating.
    public let model: any LanguageModel
    /// The cache the prompt and generated ids are stored in.
    public let cache: any KVCache
    /// Ids in the prompt.
    public let promptLength: Int
    /// The ids generated so far.
    public private(set) var generated: [Int32] = []
    /// Why generation ended; nil while it may go on.
    public private(set) var finishReason: FinishReason?
    private let maxNewTokens: Int
    private let eos: Set<Int32>
    private var sampler: Sampler
    private var history: [Int32]
    private var input: [Int32]
    /// Plain greedy decoding on a GPU picks on the device, one step ahead (GreedyPipeline.swift),
    /// when the iterator owns its cache.
    private var pipeline: GreedyPipeline?

    /// Checks `config` and makes the cache (`config.cache`, or `cache` when given).
    public init(model: any LanguageModel, prompt: [Int32], config: GenerationConfig, cache: (any KVCache)? = nil) throws {
        guard !prompt.isEmpty else { throw OspreyError.invalidArgument("the prompt has no tokens") }
        try config.validate()
        self.model = model
        switch (cache, config.cache) {
        case (let given?, _): self.cache = given
        case (nil, .dynamic): self.cache = model.makeCache()
        case (nil, .static): self.cache = try model.makeCache(maxLength: prompt.count + config.maxNewTokens)
        }
        promptLength = prompt.count
        maxNewTokens = config.maxNewTokens
        eos = Set(config.eosTokenIds)
        sampler = Sampler(config, promptLength: prompt.count)
        (history, input) = (prompt, prompt)
        if maxNewTokens == 0 { finishReason = .length }
        // The pipeline computes one step past the last id it returns, so only a cache of our own may take it.
        if cache == nil && sampler.isPlainGreedy && model.backend.device != .cpu { pipeline = try GreedyPipeline(backend: model.backend) }
    }

    /// The next id (the first call prefills the prompt), or nil once generation has ended.
    public mutating func next() throws -> Int32? {
        guard finishReason == nil else { return nil }
        guard !Task.isCancelled else { finishReason = .cancelled; return nil }
        let id: Int32
        if pipeline != nil {
            id = try pipeline!.next(model: model, cache: cache, prompt: input, more: generated.count + 1 < maxNewTokens)
        } else {
            let logits = try model.backend.download(model.forward(input, cache: cache, allPositions: false))
            id = sampler.pick(logits, history: history)
        }
        generated.append(id)
        history.append(id)
        input = [id]
        if eos.contains(id) { finishReason = .eos } else if generated.count >= maxNewTokens { finishReason = .length }
        return id
    }

    /// Ends generation for a reason the caller found (a stop string, an interrupt).
    public mutating func stop(_ reason: FinishReason) { finishReason = reason }
}

/// Generates ids after `prompt` until `config` says to stop, calling `onToken` with each.
public func generate(model: any LanguageModel, prompt: [Int32], config: GenerationConfig,
                     onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
    var tokens = try TokenIterator(model: model, prompt: prompt, config: config)
    while let id = try tokens.next() { onToken(id) }
    return tokens.generated
}

/// The settings type `generate` took before GenerationConfig.
@available(*, deprecated, renamed: "GenerationConfig")
public typealias GenerateParameters = GenerationConfig

@available(*, deprecated, renamed: "generate(model:prompt:config:onToken:)")
public func generate(model: any LanguageModel, prompt: [Int32], parameters: GenerationConfig,
                     onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
    try generate(model: model, prompt: prompt, config: parameters, onToken: onToken)
}
