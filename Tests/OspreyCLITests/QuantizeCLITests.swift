// `osprey quantize` run as a user runs it: a bf16 random checkpoint becomes an MXFP4 folder that
// `osprey generate` loads, and every bad input is one clear line on stderr with exit code 1.
import Foundation
import Testing
import OspreyModels

@Suite struct QuantizeCLITests {
    func folder() -> URL { FileManager.default.temporaryDirectory.appendingPathComponent("cli-q-\(UUID().uuidString)") }

    @Test func quantizesAndTheResultGenerates() throws {
        let (source, out) = (folder(), folder())
        defer { try? FileManager.default.removeItem(at: source); try? FileManager.default.removeItem(at: out) }
        try RandomGptOss.write(GptOssShape(), to: source, seed: 2)
        let r = try osprey(["quantize", "--model", source.path, "--to", "mxfp4", "--out", out.path, "--max-shard-size", "50KB"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("quantized 4 expert tensors to MXFP4 (transformers rule)"), "\(r.out)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors.index.json").path))
        let g = try osprey(["generate", "--model", out.path, "--prompt-ids", "1,2,3", "--max-new-tokens", "3", "--json", "--device", "cpu"])
        #expect(g.status == 0, "\(g.err)")
        let ocp = try osprey(["quantize", "--model", source.path, "--to", "MXFP4", "--out", out.path, "--rule", "ocp"])
        #expect(ocp.status == 0 && ocp.out.contains("(ocp rule)"), "\(ocp.err)")
    }

    @Test func badInputIsOneClearLine() throws {
        let (source, out) = (folder(), folder())
        defer { try? FileManager.default.removeItem(at: source); try? FileManager.default.removeItem(at: out) }
        let missing = folder().path
        expectCleanFailure(try osprey(["quantize", "--model", missing, "--to", "mxfp4", "--out", out.path]), mentioning: "no such model folder")

        var shape = GptOssShape()
        shape.mxfp4 = true
        try RandomGptOss.write(shape, to: source)
        expectCleanFailure(try osprey(["quantize", "--model", source.path, "--to", "mxfp4", "--out", out.path]), mentioning: "already quantized")
        expectCleanFailure(try osprey(["quantize", "--model", source.path, "--to", "int8", "--out", out.path]), mentioning: "unknown --to \"int8\"")

        try FileManager.default.removeItem(at: source)
        shape = GptOssShape()
        shape.hidden = 48
        try RandomGptOss.write(shape, to: source)
        expectCleanFailure(try osprey(["quantize", "--model", source.path, "--to", "mxfp4", "--out", out.path]),
                           mentioning: "multiple of 32, got 48")
        expectCleanFailure(try osprey(["quantize", "--model", source.path, "--to", "mxfp4", "--out", out.path, "--rule", "floor"]),
                           mentioning: "unknown --rule")
        expectCleanFailure(try osprey(["quantize", "--model", source.path, "--to", "mxfp4", "--out", out.path, "--max-shard-size", "lots"]),
                           mentioning: "--max-shard-size")
        #expect(!FileManager.default.fileExists(atPath: out.path), "nothing is written when the input is bad")
    }
}
