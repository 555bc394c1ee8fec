// Sampling from softmax(logits / temperature) as an argmax, so that a GPU can do it where it
// computes the logits (no row sent to the host): the Gumbel-max trick — argmax_i of
// logit_i / temperature + g_i, with g_i = -log(-log(u_i)) and u_i uniform in (0, 1), is distributed
// exactly as softmax(logits / temperature). Here u_i is a hash of (seed, i) (splitmix64's finaliser,
// 24 bits), so one 64-bit seed per row and step decides the draw on any backend: the CPU (this
// file, the oracle) and the CUDA kernel `sample_gumbel` (sampling.cu) compute the same scores.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Gumbel-max sampling with counter-based noise.
public enum GumbelSampling {
    /// u in (0, 1) for token `index` under `seed`: the top 24 bits of splitmix64(seed + (index + 1) · golden), centred.
    @inlinable
    public static func uniform(seed: UInt64, index: Int) -> Float {
        var z = seed &+ UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Float(z >> 40) + 0.5) / 16_777_216
    }

    /// logit / temperature + Gumbel noise of token `index` (`inverseTemperature` = 1 / temperature in f32).
    @inlinable
    public static func score(_ logit: Float, inverseTemperature: Float, seed: UInt64, index: Int) -> Float {
        let u = uniform(seed: seed, index: index)
        return logit * inverseTemperature - logf(-logf(u))
    }

    /// The token drawn from softmax(row / temperature) under `seed` (ties to the lower index; a
    /// row of NaN gives 0).
    public static func pick(_ row: UnsafePointer<Float>, count V: Int, temperature: Float, seed: UInt64) -> Int32 {
        let inv = 1 / temperature
        var best = -1, bestScore = -Float.infinity
        for i in 0..<V {
            let s = score(row[i], inverseTemperature: inv, seed: seed, index: i)
            if s > bestScore { (best, bestScore) = (i, s) }
        }
        return Int32(max(best, 0))
    }
}
