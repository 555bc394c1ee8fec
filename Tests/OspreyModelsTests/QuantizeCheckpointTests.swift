// `CheckpointQuantizer` (osprey quantize) on random bf16 gpt-oss checkpoints: the saved folder
// reloads in Osprey; its logits equal those of the bf16 model whose experts are the MXFP4 values
// (so the layout, transposes and packing are right) and are close to the original model's within
// what 4-bit weights allow; every tensor that is not an expert is byte-identical; the config and
// the sharded index are valid; bad input fails with a typed error naming the fault.
import Foundation
import Testing
import OspreyCore
import OspreyCPU
import OspreyIO
import OspreyQuant
@testable import OspreyModels

@Suite struct QuantizeCheckpointTests {
    static var shape: GptOssShape {
        var s = GptOssShape()
        (s.layers, s.hidden, s.intermediate, s.experts, s.topK) = (3, 64, 96, 4, 2)
        return s
    }
    static let ids: [Int32] = (0..<19).map { Int32(($0 * 53 + 7) % 256) }

    func quantized(_ shape: GptOssShape = shape, options: MXFP4QuantizeOptions = MXFP4QuantizeOptions())
        throws -> (source: URL, out: URL, report: MXFP4QuantizeReport) {
        let (source, out) = (temporaryFolder("q-src"), temporaryFolder("q-out"))
        do {
            try RandomGptOss.write(shape, to: source, seed: 11)
            try Data("{\"chat_template\": \"x\"}".utf8).write(to: source.appendingPathComponent("tokenizer_config.json"))
            return (source, out, try CheckpointQuantizer.quantizeMXFP4(model: source, out: out, options: options))
        } catch {
            cleanup(source)
            cleanup(out)
            throw error
        }
    }

    /// A folder path that is never created (the errors below are raised before anything is written).
    static var nowhere: URL { FileManager.default.temporaryDirectory.appendingPathComponent("q-never-\(UUID().uuidString)") }

    @Test func savedFolderIsShardedValidAndKeepsEveryOtherTensorByteForByte() throws {
        var options = MXFP4QuantizeOptions()
        options.maxShardBytes = 40_000
        let (source, out, report) = try quantized(options: options)
        defer { cleanup(source); cleanup(out) }
        let src = try SafetensorsCheckpoint(directory: source), dst = try SafetensorsCheckpoint(directory: out)
        #expect(report.quantized.count == 6 && report.kept.count == src.tensorNames.count - 6)
        #expect(dst.files.count > 1, "expected several shards at 40 kB")
        let (E, H, I) = (4, 64, 96)
        for l in 0..<3 {
            let e = "model.layers.\(l).mlp.experts"
            #expect(!dst.contains("\(e).gate_up_proj") && !dst.contains("\(e).down_proj"))
            #expect(dst.info("\(e).gate_up_proj_blocks")?.shape == [E, 2 * I, H / 32, 16])
            #expect(dst.info("\(e).gate_up_proj_scales")?.shape == [E, 2 * I, H / 32])
            #expect(dst.info("\(e).down_proj_blocks")?.shape == [E, H, I / 32, 16])
            #expect(dst.info("\(e).down_proj_scales")?.shape == [E, H, I / 32])
            for p in ["gate_up_proj", "down_proj"] {  // each pair in one shard
                #expect(dst.file(containing: "\(e).\(p)_blocks")?.url == dst.file(containing: "\(e).\(p)_scales")?.url)
            }
        }
        for name in report.kept {
            let a = try src.tensor(name), b = try dst.tensor(name)
            #expect(a.dtype == b.dtype && a.shape == b.shape, "\(name)")
            #expect(memcmp(a.raw, b.raw, a.byteCount) == 0, "\(name) changed")
        }
        // The index: every tensor once, total_size = the bytes written.
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("model.safetensors.index.json"))) as! [String: Any]
        let weightMap = index["weight_map"] as! [String: String]
        #expect(Set(weightMap.keys) == Set(dst.tensorNames) && weightMap.count == report.kept.count + 12)
        #expect((index["metadata"] as? [String: Any])?["total_size"] as? Int == dst.totalBytes && dst.totalBytes == report.bytesOut)
        #expect(dst.files.allSatisfy { $0.metadata == ["format": "pt"] })
        // config.json: the source's keys unchanged plus quantization_config; side files copied.
        let c0 = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as! [String: Any]
        var c1 = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
        let q = try #require(c1.removeValue(forKey: "quantization_config") as? [String: Any])
        func canonical(_ o: [String: Any]) throws -> Data { try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) }
        #expect(try canonical(c0) == canonical(c1))
        #expect(q["quant_method"] as? String == "mxfp4")
        #expect(q["modules_to_not_convert"] as? [String] == CheckpointQuantizer.defaultModulesToNotConvert)
        #expect(try ModelFolder(directory: out).config(as: GptOssConfig.self).quantizationConfig?.quantMethod == "mxfp4")
        #expect(Set(report.copiedFiles) == ["generation_config.json", "tokenizer_config.json"])
        #expect(FileManager.default.contentsEqual(atPath: source.appendingPathComponent("tokenizer_config.json").path,
                                                  andPath: out.appendingPathComponent("tokenizer_config.json").path))
    }

    @Test func logitsEqualTheDequantizedModelAndStayCloseToTheOriginal() throws {
        let (source, out, _) = try quantized()
        let (dense, noisy) = (temporaryFolder("q-dense"), temporaryFolder("q-noisy"))
        defer { cleanup(source); cleanup(out); cleanup(dense); cleanup(noisy) }
        // Two bf16 checkpoints: `dense` holds exactly the MXFP4 values as experts (e2m1 x 2^k is exact
        // in bf16); `noisy` holds the original experts plus the same quantization error with random
        // signs: an error of exactly the same size per weight but no structure.
        let src = try SafetensorsCheckpoint(directory: source), dst = try SafetensorsCheckpoint(directory: out)
        var (denseTensors, noisyTensors): ([(name: String, tensor: Tensor)], [(name: String, tensor: Tensor)]) = ([], [])
        var (err2, ref2): (Double, Double) = (0, 0)
        var rng: UInt64 = 0x0DDB_1A5E
        for name in src.tensorNames {
            let original = try src.tensor(name)
            guard dst.contains(name + "_blocks") else {
                denseTensors.append((name, original))
                noisyTensors.append((name, original))
                continue
            }
            let rows = try MXFP4Codec.dequantize(blocks: dst.tensor(name + "_blocks"), scales: dst.tensor(name + "_scales"))  // [E, out, in]
            let back = transposeLastTwo(rows)  // [E, in, out]
            let (d, n) = (Tensor(zeros: back.shape, dtype: .bf16), Tensor(zeros: back.shape, dtype: .bf16))
            for i in 0..<back.count {
                let (q, w) = (back.float(at: i), original.float(at: i))
                #expect(floatFromBF16(bf16Bits(q)) == q)
                rng = rng &* 6364136223846793005 &+ 1442695040888963407
                d.mutableRaw.storeBytes(of: bf16Bits(q), toByteOffset: 2 * i, as: UInt16.self)
                n.mutableRaw.storeBytes(of: bf16Bits(w + (rng >> 63 == 0 ? 1 : -1) * (q - w)), toByteOffset: 2 * i, as: UInt16.self)
                err2 += Double((q - w) * (q - w))
                ref2 += Double(w * w)
            }
            denseTensors.append((name, d))
            noisyTensors.append((name, n))
        }
        for (folder, tensors) in [(dense, denseTensors), (noisy, noisyTensors)] {
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: folder.appendingPathComponent("model.safetensors"))
            try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"), to: folder.appendingPathComponent("config.json"))
        }
        func logits(_ url: URL) throws -> [Float] {
            let m = try loadCPU(url)
            return try m.forward(Self.ids, cache: m.makeCache(), allPositions: true).floats()
        }
        func relativeRMS(_ a: [Float], _ b: [Float]) -> Double {
            let d2 = zip(a, b).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
            return (d2 / b.reduce(0.0) { $0 + Double($1 * $1) }).squareRoot()
        }
        let (lq, ld, ln, lb) = (try logits(out), try logits(dense), try logits(noisy), try logits(source))
        #expect(relativeMaxError(lq, ld) < 1e-4, "MXFP4 folder vs its bf16 expansion")
        // The weights' relative RMS error is what 4 bits give (~0.10 for these uniform weights; each
        // element within half a grid step, MXFP4CodecTests). How much logits move for an error of
        // that size depends on the network, so the bound is calibrated on the same network: the
        // quantized model may be off by at most 1.5x what the same-size unstructured error does. A
        // layout slip (wrong transpose, nibble order, scale row) fails the exact check above; a
        // biased or clipping rule would exceed this one.
        let weightError = (err2 / ref2).squareRoot()
        let (quantError, noiseError) = (relativeRMS(lq, lb), relativeRMS(ln, lb))
        #expect(weightError > 0.05 && weightError < 0.15, "weight relative RMS error \(weightError)")
        #expect(quantError < 1.5 * noiseError, "logits' relative RMS error \(quantError); same-size random error gives \(noiseError)")
    }

    @Test func modulesToNotConvertKeepTheirExperts() throws {
        var options = MXFP4QuantizeOptions()
        options.modulesToNotConvert = ["model.layers.1.mlp.experts"]
        let (source, out, report) = try quantized(options: options)
        defer { cleanup(source); cleanup(out) }
        let dst = try SafetensorsCheckpoint(directory: out)
        #expect(report.quantized.count == 4)
        #expect(dst.contains("model.layers.1.mlp.experts.gate_up_proj") && !dst.contains("model.layers.1.mlp.experts.gate_up_proj_blocks"))
        #expect(dst.contains("model.layers.2.mlp.experts.down_proj_blocks"))
        let q = try ModelFolder(directory: out).config(as: GptOssConfig.self).quantizationConfig
        #expect(q?.modulesToNotConvert == CheckpointQuantizer.defaultModulesToNotConvert + ["model.layers.1.mlp.experts"])
        let m = try loadCPU(out)  // mixed MXFP4 and bf16 experts load
        #expect(try m.forward(Self.ids, cache: m.makeCache(), allPositions: false).floats().allSatisfy(\.isFinite))
    }

    @Test func badInputFailsWithTypedErrors() throws {
        let missing = URL(fileURLWithPath: "/nonexistent/osprey-model")
        #expect(throws: QuantizeError.modelFolderMissing(path: missing.path)) {
            try CheckpointQuantizer.quantizeMXFP4(model: missing, out: Self.nowhere)
        }
        let (source, out, _) = try quantized()
        defer { cleanup(source); cleanup(out) }
        #expect(throws: QuantizeError.alreadyQuantized(path: out.path, method: "mxfp4")) {
            try CheckpointQuantizer.quantizeMXFP4(model: out, out: Self.nowhere)
        }
        #expect(throws: QuantizeError.outputIsInput(path: source.path)) {
            try CheckpointQuantizer.quantizeMXFP4(model: source, out: source)
        }
        var odd = Self.shape
        odd.hidden = 48
        #expect(throws: QuantizeError.notDivisibleBy32(tensor: "model.layers.0.mlp.experts.gate_up_proj", dimension: "hidden_size", size: 48)) {
            try quantized(odd)
        }
        odd = Self.shape
        odd.intermediate = 40
        #expect(throws: QuantizeError.notDivisibleBy32(tensor: "model.layers.0.mlp.experts.down_proj", dimension: "intermediate_size", size: 40)) {
            try quantized(odd)
        }
        let other = temporaryFolder()
        defer { cleanup(other) }
        try RandomGptOss.write(Self.shape, to: other)
        let config = other.appendingPathComponent("config.json")
        let text = try String(contentsOf: config, encoding: .utf8).replacingOccurrences(of: "\"gpt_oss\"", with: "\"llama\"")
        try text.write(to: config, atomically: true, encoding: .utf8)
        #expect(throws: QuantizeError.unsupportedModelType("llama", supported: ["gpt_oss"])) {
            try CheckpointQuantizer.quantizeMXFP4(model: other, out: Self.nowhere)
        }
    }
}
