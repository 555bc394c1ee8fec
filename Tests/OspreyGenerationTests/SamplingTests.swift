// Logits processors against their definitions in transformers, as properties over random rows:
// top-k keeps exactly the scores ≥ the k-th largest, top-p keeps the smallest most-likely set whose
// mass reaches p, min-p drops tokens below min_p x the top probability, the repetition penalty
// divides positive and multiplies negative seen scores; sampling only ever returns kept tokens.
import Foundation
import Testing
import OspreyCore
@testable import OspreyGeneration

@Suite struct SamplingTests {
    struct Rng: RandomNumberGenerator {
        var s: UInt64
        mutating func next() -> UInt64 { s = s &* 6364136223846793005 &+ 1442695040888963407; return s ^ (s >> 31) }
    }

    static func randomRow(_ rng: inout Rng, _ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -6...6, using: &rng) } }

    @Test func topKKeepsTheKLargest() {
        var rng = Rng(s: 1)
        for trial in 0..<200 {
            let n = Int.random(in: 2...64, using: &rng), k = Int.random(in: 1...n, using: &rng)
            var row = Self.randomRow(&rng, n)
            let kth = row.sorted(by: >)[k - 1]
            let original = row
            TopK(k: k).process(&row, history: [])
            for i in 0..<n { #expect((row[i] == -.infinity) == (original[i] < kth), "trial \(trial)") }
            #expect(row.filter { $0 > -.infinity }.count >= k)
        }
    }

    @Test func topPKeepsTheSmallestSetReachingP() {
        var rng = Rng(s: 2)
        for _ in 0..<200 {
            let n = Int.random(in: 2...40, using: &rng), p = Float.random(in: 0.05...0.99, using: &rng)
            var row = Self.randomRow(&rng, n)
            let probs = softmax(row)
            TopP(p: p).process(&row, history: [])
            let kept = row.indices.filter { row[$0] > -.infinity }
            #expect(!kept.isEmpty)
            // Every kept token is at least as likely as every dropped one.
            let minKept = kept.map { probs[$0] }.min()!
            for i in row.indices where row[i] == -.infinity { #expect(probs[i] <= minKept) }
            // The kept mass reaches p (up to rounding); dropping the least likely kept token would not.
            let mass = kept.map { probs[$0] }.reduce(0, +)
            #expect(mass >= p - 1e-5)
            #expect(mass - minKept < p + 1e-5)
        }
    }

    @Test func minPAndRepetitionPenalty() {
        var rng = Rng(s: 3)
        for _ in 0..<100 {
            var row = Self.randomRow(&rng, 30)
            let probs = softmax(row), top = probs.max()!
            MinP(minP: 0.2).process(&row, history: [])
            for i in row.indices { #expect((row[i] == -.infinity) == (probs[i] < 0.2 * top)) }
        }
        var scores: [Float] = [2, -2, 3, 0.5]
        RepetitionPenalty(penalty: 2).process(&scores, history: [0, 1, 1, 9, -1])
        #expect(scores == [1, -4, 3, 0.5])
    }

    @Test func samplingReturnsOnlyKeptTokensAndIsSeeded() throws {
        var rng = Rng(s: 4)
        let row = Self.randomRow(&rng, 50)
        let params = SamplingParameters(temperature: 0.8, topK: 5, topP: 0.9, minP: 0.05, repetitionPenalty: 1.3, seed: 7)
        try params.validate()
        var allowed = row
        for p in Sampler(params).processors { p.process(&allowed, history: [3, 4]) }
        var a = Sampler(params), b = Sampler(params)
        let logits = Tensor(row, shape: [1, 50])
        for _ in 0..<300 {
            let x = a.pick(logits, history: [3, 4])
            #expect(allowed[Int(x)] > -.infinity)
            #expect(x == b.pick(logits, history: [3, 4]))
        }
        #expect(Sampler(params).processors.count == 5)
        #expect(Sampler(SamplingParameters()).processors.isEmpty)  // greedy: argmax of the raw row
    }

    @Test func badSettingsAreRejected() {
        for p in [SamplingParameters(temperature: -1), SamplingParameters(topK: -2), SamplingParameters(topP: 0),
                  SamplingParameters(topP: 1.5), SamplingParameters(minP: 2), SamplingParameters(repetitionPenalty: 0)] {
            #expect(throws: OspreyError.self) { try p.validate() }
        }
    }
}
