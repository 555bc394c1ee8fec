// The generation loop and its sampler: greedy is the argmax, sampling is seeded and follows the
// softmax, end-of-sequence ids stop generation, and bad settings are rejected.
import Foundation
import Testing
import OspreyCore
import OspreyCPU
import OspreyModels
@testable import OspreyGeneration

@Suite struct GenerateTests {
    @Test func greedyPicksTheArgmax() {
        var s = Sampler(SamplingParameters(temperature: 0, seed: 1))
        #expect(s.pick(Tensor([0.1, 2, -3, 1.9], shape: [1, 4])) == 1)
        #expect(s.pick(Tensor([5, 5, 1], shape: [1, 3])) == 0)  // ties to the lower id
    }

    @Test func samplingFollowsTheSoftmaxAndIsSeeded() {
        let logits = Tensor([0, log(3), -Float.infinity, 0], shape: [1, 4])  // probabilities 1/5, 3/5, 0, 1/5
        var counts = [0, 0, 0, 0]
        var s = Sampler(SamplingParameters(temperature: 1, seed: 42))
        for _ in 0..<5000 { counts[Int(s.pick(logits))] += 1 }
        #expect(counts[2] == 0)
        #expect(abs(Double(counts[1]) / 5000 - 0.6) < 0.03)
        #expect(abs(Double(counts[0]) / 5000 - 0.2) < 0.03)
        var a = Sampler(SamplingParameters(temperature: 0.7, seed: 9)), b = Sampler(SamplingParameters(temperature: 0.7, seed: 9))
        let ra = (0..<50).map { _ in a.pick(logits) }, rb = (0..<50).map { _ in b.pick(logits) }
        #expect(ra == rb)
    }

    @Test func eosStopsAndSettingsAreChecked() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gen-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try RandomGptOss.write(GptOssShape(), to: dir, seed: 11)
        let model = try ModelRegistry.load(ModelFolder(directory: dir), backend: CPUBackend())
        let free = try generate(model: model, prompt: [1, 2, 3], config: GenerationConfig(maxNewTokens: 10))
        #expect(free.count == 10)
        // Declare the third greedy token an end-of-sequence id: generation stops right after it.
        let stopped = try generate(model: model, prompt: [1, 2, 3],
                                   config: GenerationConfig(maxNewTokens: 10, eosTokenIds: [free[2]]))
        #expect(stopped == Array(free[0...(free.firstIndex(of: free[2])!)]))
        var streamed: [Int32] = []
        _ = try generate(model: model, prompt: [1, 2, 3], config: GenerationConfig(maxNewTokens: 4)) { streamed.append($0) }
        #expect(streamed == Array(free.prefix(4)))
        #expect(throws: OspreyError.self) { try generate(model: model, prompt: [], config: GenerationConfig(maxNewTokens: 1)) }
        #expect(throws: OspreyError.self) {
            try generate(model: model, prompt: [1], config: GenerationConfig(maxNewTokens: 1, temperature: .nan))
        }
    }
}
