// The generation loop (kept small, like mlx-lm's generate_step): prefill the prompt, then one
// token at a time through the cache, picking each token from the last position's logits with the
// sampler. Stops at `maxNewTokens` or an end-of-sequence id. Sampling settings beyond
// temperature and seed arrive with GenerationConfig (issue 7).
import Foundation
import OspreyCore
import OspreyModels

/// Settings for one `generate` call.
public struct GenerateParameters: Sendable {
    public var maxNewTokens: Int
    /// 0 picks the most likely token (greedy); above 0 samples from softmax(logits / temperature).
    public var temperature: Float
    public var seed: UInt64
    /// Generation stops after producing any of these ids (the id is included in the output).
    public var eosTokenIds: Set<Int32>

    public init(maxNewTokens: Int, temperature: Float = 0, seed: UInt64 = 0, eosTokenIds: Set<Int32> = []) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.seed = seed
        self.eosTokenIds = eosTokenIds
    }
}

/// Generates up to `parameters.maxNewTokens` ids after `prompt`, calling `onToken` with each.
public func generate(model: any LanguageModel, prompt: [Int32], parameters: GenerateParameters,
                     onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
    guard !prompt.isEmpty else { throw OspreyError.invalidArgument("the prompt has no tokens") }
    guard parameters.maxNewTokens >= 0 else { throw OspreyError.invalidArgument("max new tokens must be ≥ 0") }
    guard parameters.temperature >= 0, parameters.temperature.isFinite else {
        throw OspreyError.invalidArgument("temperature must be a finite number ≥ 0")
    }
    let cache = model.makeCache()
    var sampler = Sampler(temperature: parameters.temperature, seed: parameters.seed)
    var generated: [Int32] = []
    var input = prompt
    while generated.count < parameters.maxNewTokens {
        let logits = try model.backend.download(model.forward(input, cache: cache, allPositions: false))
        let next = sampler.pick(logits)
        generated.append(next)
        onToken(next)
        if parameters.eosTokenIds.contains(next) { break }
        input = [next]
    }
    return generated
}

/// Picks a token from one row of logits: argmax at temperature 0, else a seeded softmax draw.
struct Sampler {
    let temperature: Float
    var state: UInt64

    init(temperature: Float, seed: UInt64) {
        self.temperature = temperature
        state = seed &+ 0x9E37_79B9_7F4A_7C15
    }

    mutating func pick(_ logits: Tensor) -> Int32 {
        let V = logits.shape[-1]
        let row = logits.raw.assumingMemoryBound(to: Float.self)
        var best = 0
        for i in 1..<V where row[i] > row[best] { best = i }
        guard temperature > 0 else { return Int32(best) }
        let m = row[best]
        var total: Double = 0
        for i in 0..<V { total += Double(expf((row[i] - m) / temperature)) }
        var u = Double(next() >> 11) / Double(1 << 53) * total
        for i in 0..<V {
            u -= Double(expf((row[i] - m) / temperature))
            if u <= 0 { return Int32(i) }
        }
        return Int32(best)
    }

    /// splitmix64.
    private mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
