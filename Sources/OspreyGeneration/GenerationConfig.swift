// GenerationConfig: every setting of one generation, as transformers' GenerationConfig names them.
// Values start at transformers' defaults, are overlaid by a folder's generation_config.json
// (`init(defaults:)`), and are then plain `var`s a caller overrides. Which logits processors run
// follows from the settings (Sampler, in Sampling.swift); extra processors are composable values
// appended after the built-in ones, before the sampling warpers, as transformers orders them.
import Foundation
import OspreyCore
import OspreyModels

/// Which KV cache a generation uses.
public enum CacheKind: String, Sendable, Equatable {
    /// The model's config-aware dynamic cache (sliding layers stop at their window).
    case dynamic
    /// A cache pre-sized for prompt + max new tokens that never allocates while decoding.
    case `static`
}

/// The settings of one generation (transformers' `GenerationConfig`).
public struct GenerationConfig: Sendable {
    /// Tokens to generate at most.
    public var maxNewTokens = 256
    /// End-of-sequence ids cannot be picked before this many tokens (MinNewTokensLengthLogitsProcessor).
    public var minNewTokens = 0
    /// Generation stops after producing any of these (the id is part of the output ids, not the text).
    public var eosTokenIds: [Int32] = []
    /// The padding id (used by batched generation; kept for completeness).
    public var padTokenId: Int32?
    /// false: greedy (argmax). true: sample with temperature, top-k, top-p and min-p.
    public var doSample = false
    /// Sampling temperature; 0 means greedy even when `doSample` is set.
    public var temperature: Float = 1
    /// Keep the k most likely tokens when sampling (nil or 0: no limit; transformers' default is 50).
    public var topK: Int? = 50
    /// Nucleus sampling mass (1: off).
    public var topP: Float = 1
    /// Drop tokens below min_p times the top probability (0: off).
    public var minP: Float = 0
    /// transformers' repetition penalty over prompt and output ids (1: off). Applies when greedy too.
    public var repetitionPenalty: Float = 1
    /// Seed of the sampler: the same seed, prompt and settings give the same tokens.
    public var seed: UInt64 = 0
    /// Generation stops once the decoded output contains one of these; the text API trims it off.
    public var stopStrings: [String] = []
    /// Extra processors, run after repetition penalty and min-new-tokens and before the warpers.
    public var logitsProcessors: [any LogitsProcessor] = []
    /// The KV cache to generate with.
    public var cache: CacheKind = .dynamic

    /// transformers' defaults.
    public init() {}

    /// Greedy (temperature 0) or sampled settings in a few words; the other fields keep their defaults.
    public init(maxNewTokens: Int, temperature: Float = 0, seed: UInt64 = 0, eosTokenIds: [Int32] = []) {
        self.init(maxNewTokens: maxNewTokens, sampling: SamplingParameters(temperature: temperature, seed: seed),
                  eosTokenIds: eosTokenIds)
    }

    /// Settings from explicit sampling parameters (temperature 0 is greedy).
    public init(maxNewTokens: Int, sampling: SamplingParameters, eosTokenIds: [Int32] = []) {
        self.maxNewTokens = maxNewTokens
        self.eosTokenIds = eosTokenIds
        self.sampling = sampling
    }

    /// transformers' defaults overlaid with a folder's generation_config.json.
    public init(defaults: GenerationDefaults?) {
        guard let d = defaults else { return }
        if let v = d.maxNewTokens { maxNewTokens = v }
        if let v = d.minNewTokens { minNewTokens = v }
        if let v = d.eosTokenId { eosTokenIds = v.ids.map { Int32(truncatingIfNeeded: $0) } }
        if let v = d.padTokenId { padTokenId = Int32(truncatingIfNeeded: v) }
        if let v = d.doSample { doSample = v }
        if let v = d.temperature { temperature = Float(v) }
        if let v = d.topK { topK = v }
        if let v = d.topP { topP = Float(v) }
        if let v = d.minP { minP = Float(v) }
        if let v = d.repetitionPenalty { repetitionPenalty = Float(v) }
        if let v = d.stopStrings { stopStrings = v.values }
    }

    /// What the sampler runs: the sampling settings when sampling, else greedy with the penalty.
    public var sampling: SamplingParameters {
        get {
            guard doSample, temperature > 0 else { return SamplingParameters(repetitionPenalty: repetitionPenalty, seed: seed) }
            return SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP,
                                      repetitionPenalty: repetitionPenalty, seed: seed)
        }
        set {
            doSample = newValue.temperature > 0
            (temperature, topK, topP, minP) = (newValue.temperature, newValue.topK, newValue.topP, newValue.minP)
            (repetitionPenalty, seed) = (newValue.repetitionPenalty, newValue.seed)
        }
    }

    /// Rejects settings transformers would reject, naming the setting.
    public func validate() throws {
        guard maxNewTokens >= 0 else { throw OspreyError.invalidArgument("max_new_tokens must be ≥ 0, got \(maxNewTokens)") }
        guard minNewTokens >= 0 else { throw OspreyError.invalidArgument("min_new_tokens must be ≥ 0, got \(minNewTokens)") }
        guard !stopStrings.contains("") else { throw OspreyError.invalidArgument("stop strings must not be empty") }
        try SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP,
                               repetitionPenalty: repetitionPenalty, seed: seed).validate()
    }
}
