// gpu-check's decode-graph check: the batching runner replays recorded CUDA graphs for decode-only
// steps (ModelRunner). A replay runs the same kernels on the same inputs as the eager step, so
// generateBatch with graphs must give exactly the tokens it gives with OSPREY_CUDA_GRAPHS=0; a
// graph that read a stale buffer, or a shape key that missed something, shows up as a difference.
// Also reported: how many graphs were replayed (the check fails if none was), and the wall time
// of both runs.
import Foundation
import OspreyCore
import OspreyCUDA
import OspreyGeneration
import OspreyModels

enum GraphCheck {
    /// One report row: requests whose tokens are identical with and without graphs, replays, times.
    static func run(_ model: any LanguageModel, gpu: CUDABackend, name: String, prompts: [[Int32]], newTokens: Int) throws -> (line: String, passed: Bool) {
        var config = GenerationConfig()
        config.maxNewTokens = newTokens
        config.eosTokenIds = []
        let batch = BatchConfig(blockSize: 16, numBlocks: nil, maxBatchTokens: 512, maxSequences: 64)
        func generate(graphs: Bool) throws -> (outputs: [RequestID: BatchOutput], replays: Int, seconds: Double) {
            setenv("OSPREY_CUDA_GRAPHS", graphs ? "1" : "0", 1)
            defer { unsetenv("OSPREY_CUDA_GRAPHS") }
            let before = gpu.context.stats.graphLaunches, start = Date()
            let outputs = try model.generateBatch(inputs: prompts, config: config, batch: batch)
            return (outputs, gpu.context.stats.graphLaunches - before, Date().timeIntervalSince(start))
        }
        let eager = try generate(graphs: false), replayed = try generate(graphs: true)
        let identical = prompts.indices.filter {
            eager.outputs[RequestID($0)]?.generatedTokens == replayed.outputs[RequestID($0)]?.generatedTokens
        }.count
        let passed = identical == prompts.count && replayed.replays > 0 && eager.replays == 0
        return ("| \(name) | \(prompts.count) prompts, \(newTokens) new | \(identical)/\(prompts.count) identical | \(replayed.replays) | "
                + "\(String(format: "%.2f", eager.seconds)) s / \(String(format: "%.2f", replayed.seconds)) s | \(passed ? "ok" : "FAIL") |", passed)
    }
}

/// gpu-check's sampling check: `sample_gumbel` on the GPU against the CPU oracle (GumbelSampling)
/// on the same logits, temperatures and seeds. Both compute the same scores without fused
/// multiply-adds; only logf may differ by an ulp, which can flip a pick only on a near-tie of the
/// top two scores — so a differing pick passes only when the oracle's two scores are within 1e-5.
enum SamplingCheck {
    static func run(gpu: CUDABackend) throws -> (line: String, passed: Bool) {
        var rng = SystemRandomNumberGenerator()
        var identical = 0, nearTies = 0, rows = 0
        for V in [50, 4_099, 201_088] {
            let R = 16
            let logits = Tensor((0..<(R * V)).map { _ in Float.random(in: -8...8, using: &rng) }, shape: [R, V])
            var params: [Int32] = []
            for r in 0..<R {
                let t: Float = [0.25, 0.7, 1, 1.5][r % 4]
                let seed = UInt64.random(in: 0...UInt64.max, using: &rng)
                params += [Int32(bitPattern: t.bitPattern), Int32(bitPattern: UInt32(truncatingIfNeeded: seed)), Int32(bitPattern: UInt32(truncatingIfNeeded: seed >> 32))]
            }
            let p = Tensor(params.map { Float(bitPattern: UInt32(bitPattern: $0)) }, shape: [R, 3])
            let paramsI32 = Tensor(zeros: [R, 3], dtype: .i32)
            paramsI32.mutableRaw.copyMemory(from: p.raw, byteCount: 12 * R)
            let out = try gpu.makeBuffer([R], dtype: .i32)
            try gpu.beginStep()
            try gpu.sample(try gpu.upload(logits), parameters: try gpu.upload(paramsI32), into: out)
            let picks = try gpu.download(out)
            let got = (0..<R).map { picks.raw.load(fromByteOffset: 4 * $0, as: Int32.self) }
            let x = logits.raw.assumingMemoryBound(to: Float.self)
            for r in 0..<R {
                rows += 1
                let t = Float(bitPattern: UInt32(bitPattern: params[3 * r]))
                let seed = UInt64(UInt32(bitPattern: params[3 * r + 1])) | UInt64(UInt32(bitPattern: params[3 * r + 2])) << 32
                let want = GumbelSampling.pick(x + r * V, count: V, temperature: t, seed: seed)
                if want == got[r] { identical += 1; continue }
                let score = { (i: Int32) in GumbelSampling.score(x[r * V + Int(i)], inverseTemperature: 1 / t, seed: seed, index: Int(i)) }
                if abs(score(want) - score(got[r])) <= 1e-5 * max(abs(score(want)), 1) { nearTies += 1 }
            }
        }
        let passed = identical + nearTies == rows
        return ("| sample_gumbel vs GumbelSampling (CPU), V 50 / 4,099 / 201,088, 16 rows each | \(identical)/\(rows) identical, \(nearTies) near-ties | \(passed ? "ok" : "FAIL") |", passed)
    }
}
