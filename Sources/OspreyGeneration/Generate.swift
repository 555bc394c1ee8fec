// The generation loop (kept small, like mlx-lm's generate_step): prefill the prompt, then one
// token at a time through the cache, picking each token from the last position's logits with the
// sampler (Sampling.swift). Stops at `maxNewTokens` or an end-of-sequence id.
import Foundation
import OspreyCore
import OspreyModels

/// Settings for one `generate` call.
public struct GenerateParameters: Sendable {
    public var maxNewTokens: Int
    public var sampling: SamplingParameters
    /// Generation stops after producing any of these ids (the id is included in the output).
    public var eosTokenIds: Set<Int32>

    public init(maxNewTokens: Int, temperature: Float = 0, seed: UInt64 = 0, eosTokenIds: Set<Int32> = []) {
        self.init(maxNewTokens: maxNewTokens, sampling: SamplingParameters(temperature: temperature, seed: seed), eosTokenIds: eosTokenIds)
    }

    public init(maxNewTokens: Int, sampling: SamplingParameters, eosTokenIds: Set<Int32> = []) {
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.eosTokenIds = eosTokenIds
    }
}

/// Generates up to `parameters.maxNewTokens` ids after `prompt`, calling `onToken` with each.
public func generate(model: any LanguageModel, prompt: [Int32], parameters: GenerateParameters,
                     onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
    guard !prompt.isEmpty else { throw OspreyError.invalidArgument("the prompt has no tokens") }
    guard parameters.maxNewTokens >= 0 else { throw OspreyError.invalidArgument("max new tokens must be ≥ 0") }
    try parameters.sampling.validate()
    let cache = model.makeCache()
    var sampler = Sampler(parameters.sampling)
    var history = prompt
    var generated: [Int32] = []
    var input = prompt
    while generated.count < parameters.maxNewTokens {
        let logits = try model.backend.download(model.forward(input, cache: cache, allPositions: false))
        let next = sampler.pick(logits, history: history)
        generated.append(next)
        history.append(next)
        onToken(next)
        if parameters.eosTokenIds.contains(next) { break }
        input = [next]
    }
    return generated
}
