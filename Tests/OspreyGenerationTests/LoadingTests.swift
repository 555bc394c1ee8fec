// LoadedModel.load: one call gives the model (family from model_type), tokenizer, generation
// config and chat format; `dequantize` expands MXFP4 experts to bf16 with the same outputs; folders
// that cannot load fail with errors that name the problem.
import Foundation
import Testing
import OspreyCore
import OspreyCPU
import OspreyModels
@testable import OspreyGeneration

@Suite struct LoadingTests {
    @Test func loadsModelTokenizerAndConfig() throws {
        try withRandomFolder(vocab: 300) { dir in
            let lm = try LoadedModel.load(dir, device: .cpu)
            #expect(lm.model is GptOssModel && lm.model.backend.device == .cpu && lm.deviceNote == nil)
            #expect(lm.tokenizer?.vocabularySize == 300)
            #expect(lm.generationConfig.eosTokenIds == [299] && lm.generationConfig.padTokenId == 298)
            #expect(try lm.encode("hi") == [104, 105])
            // generation_config.json is optional: eos then comes from config.json.
            try FileManager.default.removeItem(at: dir.appendingPathComponent("generation_config.json"))
            #expect(try LoadedModel.load(dir, device: .cpu).generationConfig.eosTokenIds == [299])
        }
        #expect(DeviceChoice("cuda:1") == .cuda(1) && DeviceChoice("cpu") == .cpu && DeviceChoice("gpu") == nil)
    }

    @Test func dequantizeGivesTheSameOutputs() throws {
        try withRandomFolder(tokenizer: false, mxfp4: true, seed: 3) { dir in
            let packed = try LoadedModel.load(dir, device: .cpu)
            let dense = try LoadedModel.load(dir, device: .cpu, dequantize: true)
            let weights = dense.folder.weights
            #expect(weights.contains("model.layers.0.mlp.experts.gate_up_proj") && !weights.contains("model.layers.0.mlp.experts.gate_up_proj_blocks"))
            #expect(try weights.tensor("model.layers.0.mlp.experts.down_proj").dtype == .bf16)
            #expect(weights.totalBytes > packed.folder.weights.totalBytes)
            let ids: [Int32] = [3, 1, 4, 1, 5, 9, 2, 6]
            let a = try packed.model.forward(ids, cache: packed.model.makeCache(), allPositions: true).floats()
            let b = try dense.model.forward(ids, cache: dense.model.makeCache(), allPositions: true).floats()
            let scale = a.map(abs).max()!
            #expect(zip(a, b).map { abs($0 - $1) }.max()! / scale < 1e-5)
        }
    }

    @Test func aDeviceWithoutMXFP4KernelsGetsDequantizedExperts() throws {
        try withRandomFolder(tokenizer: false, mxfp4: true, seed: 4) { dir in
            let folder = try ModelFolder(directory: dir)
            let packed = try LoadedModel.load(folder, backend: CPUBackend())
            #expect(packed.deviceNote == nil && packed.folder.weights.contains("model.layers.0.mlp.experts.gate_up_proj_blocks"))
            let fallback = try LoadedModel.load(folder, backend: CPUBackend(mxfp4Unavailable: "a device without them"))
            #expect(fallback.deviceNote == "a device without them: MXFP4 experts dequantized to bf16 at load (as --dequantize does)")
            #expect(fallback.folder.weights.contains("model.layers.0.mlp.experts.gate_up_proj")
                    && !fallback.folder.weights.contains("model.layers.0.mlp.experts.gate_up_proj_blocks"))
            let ids: [Int32] = [2, 7, 1, 8]
            let a = try packed.model.forward(ids, cache: packed.model.makeCache(), allPositions: true).floats()
            let b = try fallback.model.forward(ids, cache: fallback.model.makeCache(), allPositions: true).floats()
            #expect(zip(a, b).map { abs($0 - $1) }.max()! / a.map(abs).max()! < 1e-5)
        }
        // A dense checkpoint has nothing to expand: no note.
        try withRandomFolder(tokenizer: false, seed: 4) { dir in
            let dense = try LoadedModel.load(try ModelFolder(directory: dir), backend: CPUBackend(mxfp4Unavailable: "x"))
            #expect(dense.deviceNote == nil)
        }
    }

    @Test func badFoldersFailClearly() throws {
        #expect(throws: ModelError.self) { try LoadedModel.load(URL(fileURLWithPath: "/nonexistent"), device: .cpu) }
        try withRandomFolder { dir in
            let configURL = dir.appendingPathComponent("config.json")
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
            config["model_type"] = "mystery"
            try JSONSerialization.data(withJSONObject: config).write(to: configURL)
            #expect(throws: ModelError.unknownModelType("mystery", supported: ModelRegistry.supported)) {
                try LoadedModel.load(dir, device: .cpu)
            }
            try Data("{".utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
            do { _ = try LoadedModel.load(dir, device: .cpu); Issue.record("a broken tokenizer.json loaded") } catch {
                #expect("\(error)".contains("tokenizer.json"))
            }
        }
    }
}
