// Rotary position embedding parameters: the inverse frequencies and the attention scaling that
// multiplies cos and sin. Default RoPE: invFreq[i] = 1 / theta^(2i/D). YaRN (as transformers'
// `_compute_yarn_parameters`): blend extrapolated frequencies (the default ones) and interpolated
// ones (divided by `factor`) with a linear ramp between the correction dims `low` and `high`
// (floored/ceiled when `truncate`), and scale cos/sin by 0.1 ln(factor) + 1 unless
// `attention_factor` is given. The rotation itself (half-split) is a backend op. Checked against
// transformers 5.17's `rotary_emb.inv_freq` in the fixtures (Tests/OspreyModelsTests/Fixtures).
import Foundation

/// RoPE settings as config.json spells them (`rope_scaling` or transformers 5's `rope_parameters`).
public struct RopeParameters: Decodable, Sendable, Equatable {
    public var ropeType: String?
    public var type: String?
    public var ropeTheta: Double?
    public var factor: Double?
    public var originalMaxPositionEmbeddings: Int?
    public var betaFast: Double?
    public var betaSlow: Double?
    public var truncate: Bool?
    public var attentionFactor: Double?
    public var mscale: Double?
    public var mscaleAllDim: Double?

    public init(ropeType: String? = nil, ropeTheta: Double? = nil, factor: Double? = nil, originalMaxPositionEmbeddings: Int? = nil,
                betaFast: Double? = nil, betaSlow: Double? = nil, truncate: Bool? = nil) {
        (self.ropeType, self.ropeTheta, self.factor, self.originalMaxPositionEmbeddings) = (ropeType, ropeTheta, factor, originalMaxPositionEmbeddings)
        (self.betaFast, self.betaSlow, self.truncate) = (betaFast, betaSlow, truncate)
    }

    /// The rope type, accepting the legacy `type` key; "default" when absent.
    public var resolvedType: String { ropeType ?? type ?? "default" }
}

/// Inverse frequencies and cos/sin scaling for one attention layer's rotary embedding.
public struct RotaryEmbedding: Sendable, Equatable {
    public var invFreq: [Float]
    public var attentionScaling: Float

    /// Builds the frequencies for `headDim`; `maxPositionEmbeddings` is the config's.
    public init(headDim: Int, theta: Double, parameters: RopeParameters?, maxPositionEmbeddings: Int) throws {
        let dim = headDim
        let exponents = stride(from: 0, to: dim, by: 2).map { Double(Float($0) / Float(dim)) }
        let posFreqs = exponents.map { Float(Foundation.pow(theta, $0)) }  // f32, as the reference
        let extrapolation = posFreqs.map { 1 / $0 }
        guard let p = parameters, p.resolvedType != "default" else {
            invFreq = extrapolation
            attentionScaling = 1
            return
        }
        guard p.resolvedType == "yarn" else {
            throw ModelError.unsupported("rope type \"\(p.resolvedType)\" (supported: default, yarn)")
        }
        // transformers 5.17: `factor` as given (the ratio of the two lengths only when it is
        // missing); a missing original length defaults to max_position_embeddings.
        let originalMax = p.originalMaxPositionEmbeddings ?? maxPositionEmbeddings
        guard originalMax > 0 else {
            throw ModelError.invalidConfig(field: "rope_scaling.original_max_position_embeddings", "must be positive")
        }
        let factor = p.factor ?? Double(maxPositionEmbeddings) / Double(originalMax)
        guard factor >= 1, factor.isFinite else { throw ModelError.invalidConfig(field: "rope_scaling.factor", "yarn needs a factor ≥ 1, got \(factor)") }
        func mscale(_ scale: Double, _ m: Double = 1) -> Double { scale <= 1 ? 1 : 0.1 * m * Foundation.log(scale) + 1 }
        if let af = p.attentionFactor {
            attentionScaling = Float(af)
        } else if let m = p.mscale, let mad = p.mscaleAllDim, m != 0, mad != 0 {
            attentionScaling = Float(mscale(factor, m) / mscale(factor, mad))
        } else {
            attentionScaling = Float(mscale(factor))
        }
        let betaFast = p.betaFast ?? 32, betaSlow = p.betaSlow ?? 1
        func correctionDim(_ rotations: Double) -> Double {
            Double(dim) * Foundation.log(Double(originalMax) / (rotations * 2 * Double.pi)) / (2 * Foundation.log(theta))
        }
        var low = correctionDim(betaFast), high = correctionDim(betaSlow)
        if p.truncate ?? true { low = low.rounded(.down); high = high.rounded(.up) }
        low = max(low, 0); high = min(high, Double(dim - 1))
        if low == high { high += 0.001 }
        invFreq = (0..<(dim / 2)).map { i in
            let ramp = Float(min(max((Double(i) - low) / (high - low), 0), 1))
            let extrapolationFactor = 1 - ramp
            let interpolation = 1 / (Float(factor) * posFreqs[i])
            return interpolation * (1 - extrapolationFactor) + extrapolation[i] * extrapolationFactor
        }
    }
}
