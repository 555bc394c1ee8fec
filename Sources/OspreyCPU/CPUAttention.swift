// Rotary embeddings and attention with learned sinks on the CPU.
// Attention per query row i and head h: logits_j = q_i . k_j * scale for the visible keys j
// (j <= i, and i - j < window on sliding layers), plus the head's sink logit as one extra column;
// subtract the max, softmax over all of them, drop the sink's share, weight the values. With no
// sinks this is plain causal softmax attention. GQA: query head h reads kv head h / (Hq / Hkv).
import Foundation
import OspreyCore

extension CPUBackend {
    public func rope(_ x: Tensor, start: Int, invFreq frequencies: Tensor, scaling: Float) throws -> Tensor {
        let invFreq = frequencies.floats()
        guard x.shape.rank == 3, x.shape[2] == 2 * invFreq.count else {
            throw OspreyError.invalidTensor("rope of \(x.shape) with \(invFreq.count) frequencies")
        }
        return Self.rotate(x, invFreq: invFreq, scaling: scaling) { start + $0 }
    }

    /// Half-split rotation of x [T, heads, D], row t at `position(t)` (both rope ops).
    static func rotate(_ x: Tensor, invFreq: [Float], scaling: Float, position: (Int) -> Int) -> Tensor {
        let (T, Hn, D) = (x.shape[0], x.shape[1], x.shape[2])
        let half = D / 2
        let out = Tensor(zeros: x.shape, dtype: .f32)
        let (xp, op) = (x.f32Pointer, out.f32Pointer)
        var cosv = [Float](repeating: 0, count: half), sinv = cosv
        for t in 0..<T {
            for i in 0..<half {
                let angle = Float(position(t)) * invFreq[i]  // f32 product, as the reference computes it
                cosv[i] = Float(Foundation.cos(Double(angle))) * scaling
                sinv[i] = Float(Foundation.sin(Double(angle))) * scaling
            }
            for h in 0..<Hn {
                let base = (t * Hn + h) * D
                for i in 0..<half {
                    let x1 = xp[base + i], x2 = xp[base + half + i]
                    op[base + i] = x1 * cosv[i] - x2 * sinv[i]
                    op[base + half + i] = x2 * cosv[i] + x1 * sinv[i]
                }
            }
        }
        return out
    }

    public func attention(q: Tensor, k: Tensor, v: Tensor, sinks: Tensor?, span: AttentionSpan, scale: Float) throws -> Tensor {
        guard q.shape.rank == 3, k.shape.rank == 3, k.shape == v.shape, q.shape[2] == k.shape[2],
              k.shape[1] > 0, q.shape[1] % k.shape[1] == 0 else {
            throw OspreyError.invalidTensor("attention of q \(q.shape), k \(k.shape), v \(v.shape)")
        }
        let (T, Hq, D) = (q.shape[0], q.shape[1], q.shape[2])
        let (S, Hkv) = (k.shape[0], k.shape[1])
        let group = Hq / Hkv
        if let sinks, sinks.count != Hq { throw OspreyError.invalidTensor("sinks \(sinks.shape) for \(Hq) heads") }
        let sink = sinks?.toF32().floats()
        let out = Tensor(zeros: [T, Hq * D], dtype: .f32)
        let (qp, kp, vp, op) = (q.f32Pointer, k.f32Pointer, v.f32Pointer, out.f32Pointer)
        parallelFor(T * Hq) { pairs in
            var logits = [Float](repeating: 0, count: S)
            for pair in pairs {
                let (t, h) = (pair / Hq, pair % Hq)
                let kvh = h / group
                let qpos = span.queryStart + t
                let qrow = qp + (t * Hq + h) * D
                var m = sink?[h] ?? -Float.infinity
                for s in 0..<S {
                    let kpos = span.keyStart + s
                    let visible = kpos <= qpos && (span.window.map { qpos - kpos < $0 } ?? true)
                    logits[s] = visible ? dot(qrow, kp + (s * Hkv + kvh) * D, D) * scale : -Float.infinity
                    m = max(m, logits[s])
                }
                guard m > -Float.infinity else { continue }  // nothing visible and no sink: zeros
                var denom: Float = sink.map { Foundation.exp($0[h] - m) } ?? 0
                let orow = op + (t * Hq + h) * D
                for s in 0..<S where logits[s] > -Float.infinity {
                    let p = Foundation.exp(logits[s] - m)
                    denom += p
                    let vrow = vp + (s * Hkv + kvh) * D
                    for d in 0..<D { orow[d] += p * vrow[d] }
                }
                for d in 0..<D { orow[d] /= denom }
            }
        }
        return out
    }
}
