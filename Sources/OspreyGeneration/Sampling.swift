// Sampling, as transformers' generation does it: logits processors applied in order
// (repetition penalty, min-new-tokens, any extra processors, then temperature, top-k, top-p,
// min-p), then a draw from the softmax of what is left — or the argmax when not sampling. Each
// processor is a small value; `Sampler` composes them from the settings (like mlx-lm's
// make_sampler). Host-side: it reads one row of downloaded logits (sampling on the GPU comes with
// the CUDA sampling kernels).
import Foundation
import OspreyCore

/// How the next token is chosen.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 picks the most likely token (greedy); above 0 samples from softmax(logits / temperature).
    public var temperature: Float = 0
    /// Keep only the k most likely tokens (nil or 0: no limit).
    public var topK: Int? = nil
    /// Keep the smallest set of most likely tokens whose probability reaches top_p (1: no limit).
    public var topP: Float = 1
    /// Drop tokens less likely than min_p times the most likely one (0: no limit).
    public var minP: Float = 0
    /// Divide positive (multiply negative) logits of tokens already seen by this (1: none).
    public var repetitionPenalty: Float = 1
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int? = nil, topP: Float = 1, minP: Float = 0,
                repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        (self.temperature, self.topK, self.topP, self.minP, self.repetitionPenalty, self.seed) =
            (temperature, topK, topP, minP, repetitionPenalty, seed)
    }

    /// Rejects settings transformers would reject, naming the setting.
    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else { throw OspreyError.invalidArgument("temperature must be a finite number ≥ 0, got \(temperature)") }
        guard (topK ?? 0) >= 0 else { throw OspreyError.invalidArgument("top_k must be ≥ 0, got \(topK ?? 0)") }
        guard topP > 0, topP <= 1 else { throw OspreyError.invalidArgument("top_p must be in (0, 1], got \(topP)") }
        guard minP >= 0, minP <= 1 else { throw OspreyError.invalidArgument("min_p must be in [0, 1], got \(minP)") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else {
            throw OspreyError.invalidArgument("repetition_penalty must be a finite number > 0, got \(repetitionPenalty)")
        }
    }
}

/// One step of logits processing: edits the scores of one row in place.
public protocol LogitsProcessor: Sendable {
    func process(_ scores: inout [Float], history: [Int32])
}

/// transformers' RepetitionPenaltyLogitsProcessor: seen tokens' scores are divided by the
/// penalty when positive and multiplied by it when negative.
public struct RepetitionPenalty: LogitsProcessor {
    public let penalty: Float
    public init(penalty: Float) { self.penalty = penalty }
    public func process(_ scores: inout [Float], history: [Int32]) {
        for id in Set(history) where id >= 0 && Int(id) < scores.count {
            let s = scores[Int(id)]
            scores[Int(id)] = s < 0 ? s * penalty : s / penalty
        }
    }
}

/// transformers' MinNewTokensLengthLogitsProcessor: end-of-sequence ids score -inf until
/// `minNewTokens` ids follow the prompt.
public struct MinNewTokens: LogitsProcessor {
    public let minNewTokens: Int
    public let promptLength: Int
    public let eosTokenIds: [Int32]

    public init(minNewTokens: Int, promptLength: Int, eosTokenIds: [Int32]) {
        (self.minNewTokens, self.promptLength, self.eosTokenIds) = (minNewTokens, promptLength, eosTokenIds)
    }

    public func process(_ scores: inout [Float], history: [Int32]) {
        guard history.count - promptLength < minNewTokens else { return }
        for id in eosTokenIds where id >= 0 && Int(id) < scores.count { scores[Int(id)] = -.infinity }
    }
}

/// Divides every score by the temperature.
public struct Temperature: LogitsProcessor {
    public let value: Float
    public init(value: Float) { self.value = value }
    public func process(_ scores: inout [Float], history: [Int32]) {
        for i in scores.indices { scores[i] /= value }
    }
}

/// Keeps the scores at least as large as the k-th largest (ties at the boundary are kept).
public struct TopK: LogitsProcessor {
    public let k: Int
    public init(k: Int) { self.k = k }
    public func process(_ scores: inout [Float], history: [Int32]) {
        guard k > 0, k < scores.count else { return }
        let kth = scores.sorted(by: >)[k - 1]
        for i in scores.indices where scores[i] < kth { scores[i] = -.infinity }
    }
}

/// Keeps the most likely tokens until their probability mass reaches p (at least one token).
public struct TopP: LogitsProcessor {
    public let p: Float
    public init(p: Float) { self.p = p }
    public func process(_ scores: inout [Float], history: [Int32]) {
        guard p < 1 else { return }
        let probs = softmax(scores)
        // transformers sorts ascending and drops the tokens whose cumulative mass is ≤ 1 - p.
        let order = scores.indices.sorted { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 > $1) }
        var cumulative: Float = 0
        for (rank, i) in order.enumerated() where rank < order.count - 1 {
            cumulative += probs[i]
            if cumulative <= 1 - p { scores[i] = -.infinity }
        }
    }
}

/// Drops tokens whose probability is below min_p times the top probability (at least one kept).
public struct MinP: LogitsProcessor {
    public let minP: Float
    public init(minP: Float) { self.minP = minP }
    public func process(_ scores: inout [Float], history: [Int32]) {
        guard minP > 0 else { return }
        let probs = softmax(scores)
        let threshold = minP * (probs.max() ?? 0)
        for i in scores.indices where probs[i] < threshold { scores[i] = -.infinity }
    }
}

func softmax(_ scores: [Float]) -> [Float] {
    let m = scores.max() ?? 0
    guard m > -.infinity else { return scores.map { _ in 0 } }
    let e = scores.map { expf($0 - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}

/// Picks tokens from rows of logits with the processors `parameters` asks for.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    public let processors: [any LogitsProcessor]
    private var state: UInt64

    /// A sampler with the processors `parameters` asks for, with `extra` run after the repetition
    /// penalty and before the sampling warpers.
    public init(_ parameters: SamplingParameters, extra: [any LogitsProcessor] = []) {
        self.parameters = parameters
        var list: [any LogitsProcessor] = []
        if parameters.repetitionPenalty != 1 { list.append(RepetitionPenalty(penalty: parameters.repetitionPenalty)) }
        list += extra
        if parameters.temperature > 0 {
            if parameters.temperature != 1 { list.append(Temperature(value: parameters.temperature)) }
            if let k = parameters.topK, k > 0 { list.append(TopK(k: k)) }
            if parameters.topP < 1 { list.append(TopP(p: parameters.topP)) }
            if parameters.minP > 0 { list.append(MinP(minP: parameters.minP)) }
        }
        processors = list
        state = parameters.seed &+ 0x9E37_79B9_7F4A_7C15
    }

    /// The sampler of one generation: `config`'s settings, min-new-tokens and extra processors.
    public init(_ config: GenerationConfig, promptLength: Int) {
        var extra: [any LogitsProcessor] = []
        if config.minNewTokens > 0 && !config.eosTokenIds.isEmpty {
            extra.append(MinNewTokens(minNewTokens: config.minNewTokens, promptLength: promptLength, eosTokenIds: config.eosTokenIds))
        }
        self.init(config.sampling, extra: extra + config.logitsProcessors)
    }

    /// Whether this sampler is a plain argmax (no processors, temperature 0), which a GPU can do on
    /// the device.
    public var isPlainGreedy: Bool { processors.isEmpty && parameters.temperature == 0 }

    /// The temperature of plain sampling — no processor but the temperature itself — which is drawn
    /// by Gumbel-max (`GumbelSampling`, so a GPU can draw it on the device); nil otherwise.
    public var plainTemperature: Float? {
        guard parameters.temperature > 0, processors.allSatisfy({ $0 is Temperature }) else { return nil }
        return parameters.temperature
    }

    /// The seed of the next plain-sampling draw; advances the generator exactly as `pick` does.
    public mutating func nextSeed() -> UInt64 { next() }

    /// The next token for the last row of `logits` ([.., V], host f32), given the ids so far.
    public mutating func pick(_ logits: Tensor, history: [Int32] = []) -> Int32 {
        let V = logits.shape[-1]
        let row = logits.raw.assumingMemoryBound(to: Float.self) + (logits.count - V)
        if isPlainGreedy {  // no copy of the row
            var best = 0
            for i in 1..<V where row[i] > row[best] { best = i }
            return Int32(best)
        }
        if let temperature = plainTemperature {  // the draw a device makes, on the host (no copy either)
            return GumbelSampling.pick(row, count: V, temperature: temperature, seed: next())
        }
        var scores = Array(UnsafeBufferPointer(start: row, count: V))
        for p in processors { p.process(&scores, history: history) }
        var best = 0
        for i in 1..<V where scores[i] > scores[best] { best = i }
        guard parameters.temperature > 0 else { return Int32(best) }
        let probs = softmax(scores)
        var u = Float(Double(next() >> 11) / Double(1 << 53))
        for i in 0..<V where probs[i] > 0 {
            u -= probs[i]
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
