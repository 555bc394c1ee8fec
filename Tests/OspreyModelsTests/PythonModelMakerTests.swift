// tools/make_random_gpt_oss.py (the benchmarks' model maker, run on the GPU machine) writes a
// folder Osprey loads: sharded safetensors with an index, the published config layout, MXFP4
// experts. Checked here on the tiny shape: shards and index agree, the model runs on the CPU with
// finite logits, and the same seed gives the same bytes.
import Foundation
import Testing
import OspreyCore
import OspreyModels

@Suite struct PythonModelMakerTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("tools/make_random_gpt_oss.py")

    func make(_ args: [String]) throws -> (status: Int32, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.script.path] + args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func tinyShapeLoadsAndRuns() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("maker-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try make(["--shape", "tiny", "--out", dir.path, "--shard-mb", "0.2", "--seed", "3"])
        #expect(r.status == 0, "\(r.err)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".safetensors") }
        #expect(files.count >= 2)
        let folder = try ModelFolder(directory: dir)
        #expect(folder.modelType == "gpt_oss")
        #expect(folder.weights.tensorNames.contains("model.layers.1.mlp.experts.down_proj_blocks"))
        let model = try loadCPU(dir)
        let logits = try model.forward([1, 2, 3, 4], cache: model.makeCache(), allPositions: true)
        #expect(logits.shape == [4, 1024])
        let values = logits.floats()
        #expect(values.allSatisfy { $0.isFinite })
    }

    @Test func sameSeedSameBytesAndBadFlagsFail() throws {
        let a = FileManager.default.temporaryDirectory.appendingPathComponent("maker-\(UUID().uuidString)")
        let b = FileManager.default.temporaryDirectory.appendingPathComponent("maker-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: a); try? FileManager.default.removeItem(at: b) }
        let (ra, rb) = (try make(["--shape", "tiny", "--out", a.path]), try make(["--shape", "tiny", "--out", b.path]))
        #expect(ra.status == 0 && rb.status == 0)
        let name = "model-00001-of-00001.safetensors"
        #expect(FileManager.default.contents(atPath: a.appendingPathComponent(name).path)
                == FileManager.default.contents(atPath: b.appendingPathComponent(name).path))
        let bad = try make(["--shape", "tiny", "--hidden", "48", "--out", a.path])
        #expect(bad.status != 0 && bad.err.contains("multiples of 32") && !bad.err.contains("Traceback"))
    }
}
