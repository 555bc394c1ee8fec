// The pipelined greedy loop (device argmax, one step ahead) against plain greedy `generate`, and
// the CPU backend's argmax (the oracle of the GPU kernel): ties go to the lower index.
import Foundation
import Testing
import OspreyCore
import OspreyCPU
import OspreyModels
import OspreyGeneration

struct GreedyPipelineTests {
    @Test func argmaxTakesTheFirstMaximumOfEachRow() throws {
        let logits = Tensor([1, 5, 5, 2, -1, -3, -1, -2, 0, 0, 0, 0], shape: [3, 4])
        let out = Tensor(zeros: [3], dtype: .i32)
        try CPUBackend().argmax(logits, into: out)
        #expect((0..<3).map { out.raw.load(fromByteOffset: 4 * $0, as: Int32.self) } == [1, 0, 0])
        #expect(throws: OspreyError.self) { try CPUBackend().argmax(logits, into: Tensor(zeros: [2], dtype: .i32)) }
    }

    @Test(arguments: [false, true]) func pipelinedGreedyEqualsGreedyGenerate(mxfp4: Bool) throws {
        try withRandomFolder(vocab: 256, tokenizer: false, mxfp4: mxfp4, seed: 7) { dir in
            let model = try ModelRegistry.load(ModelFolder(directory: dir), backend: CPUBackend())
            let prompt: [Int32] = [3, 17, 99, 4, 250, 8]
            let config = GenerationConfig(maxNewTokens: 12, temperature: 0)
            let reference = try generate(model: model, prompt: prompt, config: config)
            let pipelined = try generateGreedyPipelined(model: model, prompt: prompt, maxNewTokens: 12)
            #expect(pipelined == reference)
            // An end-of-sequence id ends it at that id, as generate does.
            let eos = reference[4]
            let stopped = try generateGreedyPipelined(model: model, prompt: prompt, maxNewTokens: 12, eosTokenIds: [eos])
            #expect(stopped == Array(reference.prefix(through: reference.firstIndex(of: eos)!)))
            #expect(try generateGreedyPipelined(model: model, prompt: prompt, maxNewTokens: 0).isEmpty)
        }
    }
}
