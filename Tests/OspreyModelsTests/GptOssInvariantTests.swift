// gpt-oss invariants on random checkpoints of shapes no fixture has (odd head counts, windows
// shorter than the prompt, expert counts that are not powers of two, MXFP4): incremental decode
// equals a full recompute, sliding layers stop growing at the window, MXFP4 experts equal their
// bf16 expansion, and bad folders fail with errors naming what is wrong.
import Foundation
import Testing
import OspreyCore
import OspreyCPU
import OspreyIO
import OspreyQuant
@testable import OspreyModels

@Suite struct GptOssInvariantTests {
    static var shapes: [GptOssShape] {
        var a = GptOssShape()
        a.layers = 2
        var b = GptOssShape()
        (b.hidden, b.heads, b.kvHeads, b.headDim, b.experts, b.topK, b.window, b.intermediate) = (48, 3, 1, 24, 3, 2, 3, 40)
        b.layers = 3
        b.layerTypes = ["full_attention", "sliding_attention", "sliding_attention"]
        var c = GptOssShape()
        (c.experts, c.topK, c.window, c.intermediate, c.heads, c.kvHeads, c.mxfp4) = (5, 3, 4, 96, 6, 2, true)
        c.layers = 3
        return [a, b, c]
    }

    @Test(arguments: shapes.indices)
    func incrementalDecodeEqualsFullRecompute(shapeIndex: Int) throws {
        let dir = temporaryFolder()
        defer { cleanup(dir) }
        try RandomGptOss.write(Self.shapes[shapeIndex], to: dir, seed: UInt64(shapeIndex))
        let model = try loadCPU(dir)
        let ids: [Int32] = (0..<21).map { Int32(($0 * 37 + 11) % 256) }
        let full = try model.forward(ids, cache: model.makeCache(), allPositions: true).floats()
        let V = model.vocabularySize
        // Prefill 7, then a chunk of 5, then one token at a time.
        let cache = model.makeCache()
        var got = try model.forward(Array(ids[0..<7]), cache: cache, allPositions: true).floats()
        got += try model.forward(Array(ids[7..<12]), cache: cache, allPositions: true).floats()
        for t in 12..<ids.count { got += try model.forward([ids[t]], cache: cache, allPositions: false).floats() }
        #expect(cache.offset == ids.count)
        for t in 0..<ids.count {
            let err = relativeMaxError(Array(got[t * V..<(t + 1) * V]), Array(full[t * V..<(t + 1) * V]))
            #expect(err < 1e-4, "position \(t): relative error \(err)")
        }
        // The last-position-only path returns the last row of the full logits.
        let last = try model.forward(ids, cache: model.makeCache(), allPositions: false).floats()
        #expect(relativeMaxError(last, Array(full[(ids.count - 1) * V..<ids.count * V])) < 1e-6)
    }

    /// Linear biases are held in f32 whatever the checkpoint stores (cuBLASLt's bias epilogue adds
    /// an f32 bias to the f32 output), carrying the checkpoint's bf16 values exactly.
    @Test func linearBiasesLoadAsF32WithTheCheckpointsValues() throws {
        let dir = temporaryFolder()
        defer { cleanup(dir) }
        try RandomGptOss.write(GptOssShape(), to: dir)
        let folder = try ModelFolder(directory: dir)
        let model = try #require(try loadCPU(dir) as? GptOssModel)
        let attention = model.layers[0].attention
        for (name, linear) in [("q_proj", attention.qProj), ("k_proj", attention.kProj), ("v_proj", attention.vProj), ("o_proj", attention.oProj)] {
            let stored = try folder.weights.tensor("model.layers.0.self_attn.\(name).bias")
            #expect(stored.dtype == .bf16)
            let bias = try #require(linear.bias)
            #expect(bias.dtype == .f32 && bias.shape == stored.shape)
            #expect(bias.floats() == stored.floats(), "\(name): the f32 copy holds the checkpoint's values")
        }
        #expect(model.layers[0].mlp.router.bias?.dtype == .f32)
    }

    @Test func slidingLayersPlateauAtTheWindowWhileFullLayersGrow() throws {
        let dir = temporaryFolder()
        defer { cleanup(dir) }
        var shape = GptOssShape()
        shape.window = 5
        try RandomGptOss.write(shape, to: dir)
        let model = try loadCPU(dir)
        let cache = model.makeCache()
        _ = try model.forward([1, 2, 3], cache: cache, allPositions: false)
        #expect(cache.storedTokens(layer: 0) == 3 && cache.storedTokens(layer: 1) == 3)
        let dynamic = try #require(cache as? DynamicCache)
        var slidingCapacity: Set<Int> = []
        for n in 4...300 {
            _ = try model.forward([Int32(n % 256)], cache: cache, allPositions: false)
            #expect(cache.storedTokens(layer: 0) == min(n, 4))  // window - 1
            #expect(cache.storedTokens(layer: 1) == n)
            slidingCapacity.insert(dynamic.capacityTokens(layer: 0))
            #expect(dynamic.capacityTokens(layer: 1) >= n)
        }
        // The sliding layer's memory never changed after the prompt; the full layer's grew past 256.
        #expect(slidingCapacity.count == 1 && slidingCapacity.first! <= 2 * 64)
        #expect(dynamic.capacityTokens(layer: 1) >= 300)
    }

    @Test func mxfp4ExpertsEqualTheirBf16Expansion() throws {
        let (mx, dense) = (temporaryFolder(), temporaryFolder())
        defer { cleanup(mx); cleanup(dense) }
        var shape = GptOssShape()
        (shape.mxfp4, shape.experts, shape.topK) = (true, 3, 2)
        try RandomGptOss.write(shape, to: mx, seed: 5)
        // Rewrite the experts as bf16 [E, in, out] (e2m1 x 2^k is exact in bf16), drop quantization_config.
        let ckpt = try SafetensorsCheckpoint(directory: mx)
        var tensors: [(name: String, tensor: Tensor)] = []
        for name in ckpt.tensorNames where !name.hasSuffix("_scales") {
            if name.hasSuffix("_blocks") {
                let base = String(name.dropLast("_blocks".count))
                let f = try MXFP4Codec.dequantize(blocks: ckpt.tensor(name), scales: ckpt.tensor(base + "_scales"))
                tensors.append((base, toBF16(transposeLastTwo(f))))
            } else {
                tensors.append((name, try ckpt.tensor(name)))
            }
        }
        try SafetensorsWriter.write(tensors, metadata: nil, to: dense.appendingPathComponent("model.safetensors"))
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: mx.appendingPathComponent("config.json"))) as! [String: Any]
        config["quantization_config"] = nil
        try JSONSerialization.data(withJSONObject: config).write(to: dense.appendingPathComponent("config.json"))
        let ids: [Int32] = [5, 9, 200, 17, 3, 3, 80, 41, 12, 7, 99]
        let a = try loadCPU(mx), b = try loadCPU(dense)
        let la = try a.forward(ids, cache: a.makeCache(), allPositions: true).floats()
        let lb = try b.forward(ids, cache: b.makeCache(), allPositions: true).floats()
        #expect(relativeMaxError(la, lb) < 1e-5)
    }

    func toBF16(_ t: Tensor) -> Tensor {
        let out = Tensor(zeros: t.shape, dtype: .bf16)
        for i in 0..<t.count {
            let v = t.float(at: i)
            #expect(floatFromBF16(bf16Bits(v)) == v)
            out.mutableRaw.storeBytes(of: bf16Bits(v), toByteOffset: 2 * i, as: UInt16.self)
        }
        return out
    }

    @Test func badFoldersFailWithErrorsThatNameTheProblem() throws {
        let dir = temporaryFolder()
        defer { cleanup(dir) }
        try RandomGptOss.write(GptOssShape(), to: dir)
        let configURL = dir.appendingPathComponent("config.json")
        let good = try Data(contentsOf: configURL)
        func withConfig(_ edit: (inout [String: Any]) -> Void) throws -> String {
            var c = try JSONSerialization.jsonObject(with: good) as! [String: Any]
            edit(&c)
            try JSONSerialization.data(withJSONObject: c).write(to: configURL)
            defer { try? good.write(to: configURL) }
            do { _ = try loadCPU(dir); return "" } catch { return "\(error)" }
        }
        #expect(try withConfig { $0["model_type"] = "llama9" }.contains("gpt_oss"))
        #expect(try withConfig { $0["num_key_value_heads"] = 3 }.contains("num_key_value_heads"))
        #expect(try withConfig { $0["layer_types"] = ["full_attention"] }.contains("layer_types"))
        #expect(try withConfig { $0["hidden_size"] = "big" }.contains("hidden_size"))
        #expect(try withConfig { $0["vocab_size"] = nil }.contains("vocab_size"))
        #expect(try withConfig { $0["hidden_size"] = 65 }.contains("model.embed_tokens.weight"))
        #expect(try withConfig { $0["rope_scaling"] = ["rope_type": "longrope", "factor": 2.0] }.contains("longrope"))
        try Data("{not json".utf8).write(to: configURL)
        #expect(throws: ModelError.self) { try ModelFolder(directory: dir) }
        #expect(throws: ModelError.self) { try ModelFolder(directory: dir.appendingPathComponent("nowhere")) }
    }
}
