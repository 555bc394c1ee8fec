// `osprey bench` end to end on a tiny random checkpoint on the CPU: the JSON it writes has every
// field tools/render_bench.py reads, with positive figures, and bad flags fail with one clear line.
import Foundation
import Testing
import OspreyModels

@Suite struct BenchCLITests {
    private func tinyModel() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)")
        var shape = GptOssShape()
        shape.mxfp4 = true
        try RandomGptOss.write(shape, to: dir, seed: 1)
        return dir
    }

    @Test func writesTheSchemaWithPositiveFigures() throws {
        let dir = try tinyModel()
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("bench.json").path
        let r = try osprey(["bench", "--model", dir.path, "--device", "cpu", "--decode-tokens", "8", "--prompt-tokens", "8",
                            "--prefill-lengths", "16,32", "--batch-sizes", "1,3", "--repeat", "2", "--json", json])
        #expect(r.status == 0, "\(r.err)")
        let report = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        #expect((report["engine"] as? String)?.hasPrefix("osprey ") == true)
        #expect((report["device"] as? String)?.hasPrefix("cpu") == true)
        #expect(report["driver"] == nil)  // CUDA only
        #expect(ISO8601DateFormatter().date(from: report["date"] as? String ?? "") != nil)
        let model = try #require(report["model"] as? [String: Any])
        for key in ["layers", "hidden", "intermediate", "heads", "kv_heads", "head_dim", "experts", "top_k", "vocab", "weight_bytes"] {
            #expect((model[key] as? Int ?? 0) > 0, "model.\(key)")
        }
        #expect(model["quantization"] as? String == "mxfp4")
        let settings = try #require(report["settings"] as? [String: Any])
        for key in ["model", "device", "dequantize", "decode_tokens", "prompt_tokens", "prefill_lengths", "batch_sizes", "repeat", "json"] {
            #expect(settings[key] != nil, "settings.\(key)")
        }
        #expect(settings["prefill_lengths"] as? [Int] == [16, 32])
        let results = try #require(report["results"] as? [String: Any])
        #expect((results["load_s"] as? Double ?? 0) > 0 && (results["load_warm_s"] as? Double ?? 0) > 0)
        let decode = try #require(results["decode"] as? [[String: Any]])
        #expect(decode.map { $0["batch"] as? Int } == [1, 3])
        #expect(decode.allSatisfy { ($0["tok_s"] as? Double ?? 0) > 0 && ($0["samples"] as? [Double])?.count == 2 })
        let prefill = try #require(results["prefill"] as? [[String: Any]])
        #expect(prefill.map { $0["tokens"] as? Int } == [16, 32])
        #expect(prefill.allSatisfy { ($0["tok_s"] as? Double ?? 0) > 0 })
        #expect(results["memory_gib"] == nil)  // CUDA only
        // The same object on stdout.
        #expect(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) is [String: Any])
    }

    @Test func badFlagsFailCleanly() throws {
        let dir = try tinyModel()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = ["bench", "--model", dir.path, "--device", "cpu"]
        expectCleanFailure(try osprey(base + ["--batch-sizes", "1,0"]), mentioning: "--batch-sizes")
        expectCleanFailure(try osprey(base + ["--prefill-lengths", "0"]), mentioning: "--prefill-lengths")
        expectCleanFailure(try osprey(base + ["--prefill-lengths", "128,x"]), mentioning: "--prefill-lengths")
        expectCleanFailure(try osprey(base + ["--repeat", "0"]), mentioning: "--repeat")
        expectCleanFailure(try osprey(["bench", "--model", dir.appendingPathComponent("missing").path, "--device", "cpu"]),
                           mentioning: "not a model folder")
        let noModel = try osprey(["bench"])
        #expect(noModel.status != 0 && noModel.err.contains("--model") && !noModel.err.contains("Fatal error"))
    }
}
