// The CPU backend against hand-written references: this is the oracle, so its tests compute the
// same quantities a second, even plainer way (double precision, no chunking, no shortcuts).
import Foundation
import Testing
import OspreyCore
@testable import OspreyCPU

func randomTensor(_ shape: Shape, scale: Float = 1, seed: inout UInt64) -> Tensor {
    Tensor((0..<shape.count).map { _ in
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        return (Float(seed >> 40) / Float(1 << 24) * 2 - 1) * scale
    }, shape: shape)
}

func bf16Tensor(_ t: Tensor) -> Tensor {
    let out = Tensor(zeros: t.shape, dtype: .bf16)
    let p = out.mutableRaw.assumingMemoryBound(to: UInt16.self)
    for i in 0..<t.count { p[i] = bf16Bits(t.float(at: i)) }
    return out
}

@Suite struct CPUBackendTests {
    let cpu = CPUBackend()

    @Test func linearWithBf16WeightsAndBias() throws {
        var seed: UInt64 = 1
        let x = randomTensor([5, 37], seed: &seed), w = bf16Tensor(randomTensor([70, 37], seed: &seed))
        let b = randomTensor([70], seed: &seed)
        let y = try cpu.linear(x, weight: w, bias: b).floats()
        for t in 0..<5 {
            for o in 0..<70 {
                var s = Double(b.float(at: o))
                for i in 0..<37 { s += Double(x.float(at: t * 37 + i)) * Double(w.float(at: o * 37 + i)) }
                #expect(abs(Double(y[t * 70 + o]) - s) < 1e-4)
            }
        }
        #expect(throws: OspreyError.self) { try cpu.linear(x, weight: randomTensor([3, 36], seed: &seed), bias: nil) }
    }

    @Test func rmsNormAndEmbedding() throws {
        var seed: UInt64 = 2
        let x = randomTensor([3, 8], seed: &seed), w = randomTensor([8], seed: &seed)
        let y = try cpu.rmsNorm(x, weight: w, eps: 1e-5).floats()
        for t in 0..<3 {
            let row = (0..<8).map { Double(x.float(at: t * 8 + $0)) }
            let r = 1 / (row.map { $0 * $0 }.reduce(0, +) / 8 + 1e-5).squareRoot()
            for i in 0..<8 { #expect(abs(Double(y[t * 8 + i]) - row[i] * r * Double(w.float(at: i))) < 1e-5) }
        }
        let table = randomTensor([10, 4], seed: &seed)
        #expect(try cpu.embedding(table, ids: [3, 0]).floats() == Array(table.floats()[12..<16]) + Array(table.floats()[0..<4]))
        #expect(throws: OspreyError.self) { try cpu.embedding(table, ids: [10]) }
    }

    @Test func ropeRotatesHalvesAndKeepsNorm() throws {
        var seed: UInt64 = 3
        let x = randomTensor([4, 2, 8], seed: &seed)
        let inv: [Float] = [1, 0.1, 0.01, 0.001]
        let y = try cpu.rope(x, start: 5, invFreq: Tensor(inv, shape: [4]), scaling: 1)
        for t in 0..<4 {
            for h in 0..<2 {
                let base = (t * 2 + h) * 8
                for i in 0..<4 {
                    let a = Double(5 + t) * Double(inv[i])
                    let (x1, x2) = (Double(x.float(at: base + i)), Double(x.float(at: base + 4 + i)))
                    #expect(abs(Double(y.float(at: base + i)) - (x1 * cos(a) - x2 * sin(a))) < 1e-5)
                    #expect(abs(Double(y.float(at: base + 4 + i)) - (x2 * cos(a) + x1 * sin(a))) < 1e-5)
                }
            }
        }
        // Scaling multiplies every output.
        let z = try cpu.rope(x, start: 5, invFreq: Tensor(inv, shape: [4]), scaling: 2).floats()
        for (a, b) in zip(z, y.floats()) { #expect(abs(a - 2 * b) < 1e-5) }
    }

    /// Attention computed the plainest way, in double precision.
    func referenceAttention(q: Tensor, k: Tensor, v: Tensor, sinks: [Float]?, span: AttentionSpan, scale: Double) -> [Double] {
        let (T, Hq, D, S, Hkv) = (q.shape[0], q.shape[1], q.shape[2], k.shape[0], k.shape[1])
        var out = [Double](repeating: 0, count: T * Hq * D)
        for t in 0..<T {
            for h in 0..<Hq {
                let kvh = h / (Hq / Hkv)
                var scores: [(Int, Double)] = []
                for s in 0..<S {
                    let (i, j) = (span.queryStart + t, span.keyStart + s)
                    guard j <= i, span.window.map({ i - j < $0 }) ?? true else { continue }
                    var d = 0.0
                    for e in 0..<D { d += Double(q.float(at: (t * Hq + h) * D + e)) * Double(k.float(at: (s * Hkv + kvh) * D + e)) }
                    scores.append((s, d * scale))
                }
                let all = scores.map(\.1) + (sinks.map { [Double($0[h])] } ?? [])
                let m = all.max()!
                let denom = all.map { exp($0 - m) }.reduce(0, +)
                for (s, sc) in scores {
                    for e in 0..<D { out[(t * Hq + h) * D + e] += exp(sc - m) / denom * Double(v.float(at: (s * Hkv + kvh) * D + e)) }
                }
            }
        }
        return out
    }

    @Test(arguments: [nil, 3, 6] as [Int?])
    func attentionMatchesReference(window: Int?) throws {
        var seed: UInt64 = 4
        let (T, S, Hq, Hkv, D) = (5, 9, 6, 2, 8)
        let q = randomTensor([T, Hq, D], scale: 2, seed: &seed)
        let k = randomTensor([S, Hkv, D], scale: 2, seed: &seed), v = randomTensor([S, Hkv, D], seed: &seed)
        let sinks = randomTensor([Hq], scale: 3, seed: &seed)
        // Keys at positions 10..<19, queries at 14..<19: the last 5 keys are the queries' own.
        let span = AttentionSpan(queryStart: 14, keyStart: 10, window: window)
        for sink in [nil, sinks] {
            let y = try cpu.attention(q: q, k: k, v: v, sinks: sink, span: span, scale: 0.35).floats()
            let r = referenceAttention(q: q, k: k, v: v, sinks: sink?.floats(), span: span, scale: 0.35)
            for i in 0..<y.count { #expect(abs(Double(y[i]) - r[i]) < 1e-5) }
        }
    }

    @Test func sinksOnlyTakeProbabilityMass() throws {
        // With one visible key, output = v * p where p = 1 / (1 + exp(sink - logit)).
        let q = Tensor([1, 0], shape: [1, 1, 2]), k = Tensor([2, 0], shape: [1, 1, 2]), v = Tensor([3, 4], shape: [1, 1, 2])
        let y = try cpu.attention(q: q, k: k, v: v, sinks: Tensor([2], shape: [1]), span: AttentionSpan(queryStart: 0, keyStart: 0, window: nil), scale: 1).floats()
        #expect(abs(y[0] - 1.5) < 1e-6 && abs(y[1] - 2) < 1e-6)
    }

    @Test func topKSoftmaxPicksAndNormalises() throws {
        let logits = Tensor([0.1, 3, -1, 2, 2.5, 0, 1, 1], shape: [2, 4])
        let r = try cpu.topKSoftmax(logits, k: 2)
        #expect(r.ids.floats() == [1, 3, 0, 2])  // ties go to the lower index
        let w = r.weights.floats(), e = exp(Float(2) - 3)
        #expect(abs(w[0] - 1 / (1 + e)) < 1e-6 && abs(w[1] - e / (1 + e)) < 1e-6)
        #expect(abs(w[2] - 1 / (1 + exp(Float(-1.5)))) < 1e-6)
        #expect(throws: OspreyError.self) { try cpu.topKSoftmax(logits, k: 5) }
    }
}
