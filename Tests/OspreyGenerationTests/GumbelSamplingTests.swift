// Plain temperature sampling by Gumbel-max (GumbelSampling): its draws follow softmax(logits / T),
// the Sampler and the backends' `sample` op draw the same token for the same seed, and the
// batching runner's device draws equal one-at-a-time generation with the same seed.
import Foundation
import Testing
import OspreyCore
import OspreyCPU
@testable import OspreyGeneration

@Suite struct GumbelSamplingTests {
    @Test(arguments: [Float(0.5), 1, 2])
    func drawsFollowTheSoftmax(temperature: Float) {
        let logits: [Float] = [1.0, 0.2, -0.5, 2.0, 0.0]
        let weights = logits.map { exp(Double($0 / temperature)) }
        let probs = weights.map { $0 / weights.reduce(0, +) }
        var counts = [Int](repeating: 0, count: logits.count)
        let n = 40_000
        logits.withUnsafeBufferPointer { row in
            for seed in 0..<UInt64(n) {
                counts[Int(GumbelSampling.pick(row.baseAddress!, count: row.count, temperature: temperature, seed: seed &* 7919 &+ 3))] += 1
            }
        }
        for (c, p) in zip(counts, probs) {
            // 5 standard deviations of a binomial proportion over 40,000 draws.
            #expect(abs(Double(c) / Double(n) - p) <= 5 * (p * (1 - p) / Double(n)).squareRoot() + 1e-9)
        }
    }

    @Test func uniformsAreInsideTheOpenInterval() {
        for seed: UInt64 in [0, 1, .max, 0x9E37_79B9_7F4A_7C15] {
            for i in [0, 1, 2, 1000, 201_087] {
                let u = GumbelSampling.uniform(seed: seed, index: i)
                #expect(u > 0 && u < 1)
            }
        }
    }

    @Test func samplerBackendAndRunnerDrawTheSameToken() throws {
        var rng = SystemRandomNumberGenerator()
        let V = 997
        let logits = Tensor((0..<(3 * V)).map { _ in Float.random(in: -4...4, using: &rng) }, shape: [3, V])
        var sampler = Sampler(SamplingParameters(temperature: 0.8, seed: 1234))
        #expect(sampler.plainTemperature == 0.8)
        var twin = sampler
        // The Sampler's draw for row 2 is GumbelSampling's with the seed nextSeed() gives.
        let picked = sampler.pick(logits.rows(2..<3))
        let seed = twin.nextSeed()
        let x = logits.raw.assumingMemoryBound(to: Float.self)
        #expect(picked == GumbelSampling.pick(x + 2 * V, count: V, temperature: 0.8, seed: seed))
        // The CPU backend's sample op (the default implementation) on the same row and seed.
        let params = Tensor(zeros: [1, 3], dtype: .i32)
        for (i, v) in [Int32(bitPattern: Float(0.8).bitPattern), Int32(bitPattern: UInt32(truncatingIfNeeded: seed)),
                       Int32(bitPattern: UInt32(truncatingIfNeeded: seed >> 32))].enumerated() {
            params.mutableRaw.storeBytes(of: v, toByteOffset: 4 * i, as: Int32.self)
        }
        let out = Tensor(zeros: [1], dtype: .i32)
        try CPUBackend().sample(logits.rows(2..<3), parameters: params, into: out)
        #expect(out.raw.load(as: Int32.self) == picked)
        // Settings beyond a temperature stay on the host.
        #expect(Sampler(SamplingParameters(temperature: 0.8, topK: 20, seed: 1)).plainTemperature == nil)
        #expect(Sampler(SamplingParameters(temperature: 0)).plainTemperature == nil)
    }

    @Test func batchedTemperatureSamplingMatchesOneAtATime() throws {
        try withRandomFolder(tokenizer: false) { dir in
            let model = try LoadedModel.load(dir, device: .cpu).model
            let inputs = GenerateBatchTests.prompts(4, vocab: model.vocabularySize, seed: 21)
            var config = GenerationConfig()
            (config.maxNewTokens, config.eosTokenIds) = (9, [])
            (config.doSample, config.temperature, config.topK, config.seed) = (true, 1.3, nil, 77)
            let outputs = try model.generateBatch(inputs: inputs, config: config, batch: BatchConfig(blockSize: 4, numBlocks: 200))
            var distinct = Set<[Int32]>()
            for (i, prompt) in inputs.enumerated() {
                let alone = try generate(model: model, prompt: prompt, config: config)
                #expect(outputs[RequestID(i)]?.generatedTokens == alone)
                distinct.insert(alone)
            }
            #expect(distinct.count > 1)
        }
    }
}
