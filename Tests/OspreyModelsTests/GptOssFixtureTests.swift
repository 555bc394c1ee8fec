// gpt-oss on the CPU against Hugging Face transformers 5.17 (fixtures made by
// tools/make_gpt_oss_fixtures.py; see Fixtures/README.md): logits at every prompt position within
// 1e-3 x max|logit|, the 32 greedy tokens identical (no EOS stopping), each greedy step's logits
// close too, incremental decode equal to recompute, and the YaRN frequencies equal to transformers'.
import Foundation
import Testing
import OspreyCore
import OspreyCPU
import OspreyIO
@testable import OspreyModels

@Suite struct GptOssFixtureTests {
    static let fixtures = ["tiny-bf16", "tiny-mxfp4", "odd-bf16"]

    struct Reference {
        let inputIds: [Int32], logits: [Float], greedyIds: [Int32], greedyLogits: [Float], invFreq: [Float]
        let attentionScaling: Float

        init(_ folder: URL) throws {
            let f = try SafetensorsFile(url: folder.appendingPathComponent("reference.safetensors"))
            func ints(_ n: String) throws -> [Int32] { try f.tensor(n).floats().map { Int32($0) } }
            inputIds = try ints("input_ids")
            greedyIds = try ints("greedy_ids")
            logits = try f.tensor("logits").floats()
            greedyLogits = try f.tensor("greedy_logits").floats()
            invFreq = try f.tensor("rope_inv_freq").floats()
            attentionScaling = Float(f.metadata["attention_scaling"] ?? "") ?? .nan
        }
    }

    @Test(arguments: fixtures)
    func promptLogitsMatchTransformers(name: String) throws {
        let dir = TestPaths.fixtures.appendingPathComponent(name)
        let ref = try Reference(dir)
        let model = try loadCPU(dir)
        let V = model.vocabularySize
        let logits = try model.forward(ref.inputIds, cache: model.makeCache(), allPositions: true).floats()
        #expect(logits.count == ref.logits.count)
        let bound = 1e-3 * ref.logits.map(abs).max()!
        for t in 0..<ref.inputIds.count {
            let d = (0..<V).map { abs(logits[t * V + $0] - ref.logits[t * V + $0]) }.max()!
            #expect(d <= bound, "\(name) position \(t): max |Δ| \(d) > \(bound)")
        }
    }

    @Test(arguments: fixtures)
    func greedyTokensMatchTransformers(name: String) throws {
        let dir = TestPaths.fixtures.appendingPathComponent(name)
        let ref = try Reference(dir)
        let model = try loadCPU(dir)
        let V = model.vocabularySize
        let cache = model.makeCache()
        var input = ref.inputIds
        var ids: [Int32] = []
        let bound = 1e-3 * ref.greedyLogits.map(abs).max()!
        for step in 0..<ref.greedyIds.count {
            let row = try model.forward(input, cache: cache, allPositions: false).floats()
            let d = (0..<V).map { abs(row[$0] - ref.greedyLogits[step * V + $0]) }.max()!
            #expect(d <= bound, "\(name) greedy step \(step): max |Δ| \(d)")
            let next = Int32(row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!)
            ids.append(next)
            input = [next]
        }
        #expect(ids == ref.greedyIds)
    }

    @Test(arguments: fixtures)
    func ropeFrequenciesMatchTransformers(name: String) throws {
        let dir = TestPaths.fixtures.appendingPathComponent(name)
        let ref = try Reference(dir)
        let folder = try ModelFolder(directory: dir)
        let c = try folder.config(as: GptOssConfig.self)
        let rope = try RotaryEmbedding(headDim: c.resolvedHeadDim, theta: c.resolvedRopeTheta, parameters: c.resolvedRope,
                                       maxPositionEmbeddings: c.resolvedMaxPositions)
        #expect(rope.invFreq.count == ref.invFreq.count)
        for (a, b) in zip(rope.invFreq, ref.invFreq) { #expect(abs(a - b) <= 1e-6 * abs(b), "\(name): \(a) vs \(b)") }
        #expect(abs(rope.attentionScaling - ref.attentionScaling) < 1e-6)
    }
}
