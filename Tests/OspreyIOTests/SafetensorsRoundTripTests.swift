// Swift → Swift round trips through SafetensorsWriter and the readers, the writer's layout rules,
// and checkpoint folders: single file, sharded with an index, and broken indexes.

import Foundation
import OspreyCore
import OspreyIO
import Testing

private func expectSame(_ a: Tensor, _ b: Tensor, _ name: String) {
    #expect(a.dtype == b.dtype && a.shape == b.shape, "\(name): \(b.dtype) \(b.shape) != \(a.dtype) \(a.shape)")
    #expect(bytes(of: a) == bytes(of: b), "\(name): bytes differ")
}

private func indexJSON(_ weightMap: [String: String]) -> String {
    let pairs = weightMap.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
    return "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {\(pairs)}}"
}

private func checkpointError(_ dir: URL) -> SafetensorsError? {
    do { _ = try SafetensorsCheckpoint(directory: dir); return nil } catch { return error as? SafetensorsError }
}

@Suite struct SafetensorsRoundTripTests {
    @Test func writeThenReadEveryDType() throws {
        let url = try scratchDirectory().appendingPathComponent("all.safetensors")
        let tensors = sampleTensors()
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt", "note": "ünïcode \"quoted\"\n"], to: url)
        let file = try SafetensorsFile(url: url)
        #expect(file.metadata == ["format": "pt", "note": "ünïcode \"quoted\"\n"])
        #expect(Set(file.tensorNames) == Set(tensors.map(\.name)))
        for (name, t) in tensors { expectSame(t, try file.tensor(name), name) }
        #expect(file.info("experts.gate_up_proj_scales")?.dtype == .f8E8M0)
        #expect(file.info("experts.gate_up_proj_blocks_f4")?.dtype == .f4)
    }

    @Test func layoutFollowsSafetensors() throws {
        let url = try scratchDirectory().appendingPathComponent("layout.safetensors")
        try SafetensorsWriter.write(sampleTensors(), metadata: nil, to: url)
        let raw = try [UInt8](Data(contentsOf: url))
        let n = raw[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        #expect(n % 8 == 0)
        let header = String(decoding: raw[8..<(8 + n)], as: UTF8.self)
        #expect(header.hasPrefix("{\"layers.0.i64\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]},\"layers.0.f32\""))
        // Widest dtype first, then by name; data in header order.
        let file = try SafetensorsFile(url: url)
        #expect(file.tensorNames == ["layers.0.i64", "layers.0.f32", "scalar", "layers.0.i32", "model.embed.weight", "empty",
                                     "layers.0.f16", "experts.gate_up_proj_scales", "layers.0.u8", "experts.gate_up_proj_blocks_f4"])
        let offsets = file.tensorNames.compactMap { file.info($0)?.dataOffsets }
        #expect(zip(offsets, offsets.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(header.hasSuffix("}") || header.last == " ")
    }

    @Test func manyTensors() throws {
        let url = try scratchDirectory().appendingPathComponent("many.safetensors")
        let tensors = (0..<20_000).map { ("model.layers.\($0 / 20).mlp.experts.\($0 % 20).weight", Tensor([Float($0)], shape: [1])) }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: url)
        let clock = ContinuousClock()
        var file: SafetensorsFile? = nil
        let elapsed = try clock.measure { file = try SafetensorsFile(url: url) }
        #expect(file?.tensorNames.count == 20_000)
        #expect(try file?.tensor("model.layers.999.mlp.experts.19.weight").floats() == [19_999])
        #expect(elapsed < .seconds(10), "opening a 20k-tensor header took \(elapsed)")
    }

    @Test func tensorsOutliveTheirFile() throws {
        let url = try scratchDirectory().appendingPathComponent("keep.safetensors")
        let tensors = sampleTensors()
        try SafetensorsWriter.write(tensors, metadata: nil, to: url)
        var view: Tensor? = nil
        do { view = try SafetensorsFile(url: url).tensor("layers.0.f32") }
        expectSame(tensors[1].tensor, view!, "layers.0.f32")
    }

    @Test func writerRejectsBadInput() throws {
        let url = try scratchDirectory().appendingPathComponent("bad.safetensors")
        let t = Tensor([1, 2], shape: [2])
        #expect(throws: SafetensorsError.self) { try SafetensorsWriter.write([("a", t), ("a", t)], metadata: nil, to: url) }
        #expect(throws: SafetensorsError.self) { try SafetensorsWriter.write([("__metadata__", t)], metadata: nil, to: url) }
        #expect(throws: SafetensorsError.self) {
            try SafetensorsWriter.write([("odd", Tensor(zeros: [3], dtype: .e2m1))], metadata: nil, to: url)
        }
        #expect(!FileManager.default.fileExists(atPath: url.path))
        #expect(throws: SafetensorsError.self) {
            try SafetensorsWriter.writeSharded([("a", t)], metadata: nil, directory: url.deletingLastPathComponent(), maxShardBytes: 0)
        }
    }

    @Test func singleFileCheckpoint() throws {
        let dir = try scratchDirectory()
        let tensors = sampleTensors()
        try SafetensorsWriter.writeSharded(tensors, metadata: ["format": "pt"], directory: dir, maxShardBytes: 1 << 20)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.safetensors"])
        let ckpt = try SafetensorsCheckpoint(directory: dir)
        #expect(ckpt.tensorNames == tensors.map(\.name).sorted())
        #expect(ckpt.totalBytes == tensors.reduce(0) { $0 + $1.tensor.byteCount })
        for (name, t) in tensors { expectSame(t, try ckpt.tensor(name), name) }
        do { _ = try ckpt.tensor("missing"); Issue.record("missing tensor returned") } catch let e as SafetensorsError {
            #expect(e.description.contains("missing") && e.description.contains(dir.path))
        }
    }

    @Test func shardedCheckpoint() throws {
        let dir = try scratchDirectory()
        let tensors = sampleTensors()
        try SafetensorsWriter.writeSharded(tensors, metadata: ["format": "pt"], directory: dir, maxShardBytes: 64)
        let ckpt = try SafetensorsCheckpoint(directory: dir)
        #expect(ckpt.files.count > 2)
        #expect(ckpt.files.map(\.url.lastPathComponent).allSatisfy { $0.hasSuffix("-of-0000\(ckpt.files.count).safetensors") })
        #expect(ckpt.files.allSatisfy { $0.metadata == ["format": "pt"] })
        #expect(ckpt.tensorNames == tensors.map(\.name).sorted())
        for (name, t) in tensors { expectSame(t, try ckpt.tensor(name), name); #expect(ckpt.contains(name)) }
        #expect(!ckpt.contains("nope") && ckpt.info("nope") == nil)
        let index = try String(contentsOf: dir.appendingPathComponent("model.safetensors.index.json"), encoding: .utf8)
        #expect(index.hasPrefix("{\n  \"metadata\": {\n    \"total_size\": \(ckpt.totalBytes)\n  },\n  \"weight_map\": {\n"))
        // The f32 tensor (96 bytes) is over the limit, so it has a shard of its own.
        let f32Shard = ckpt.file(containing: "layers.0.f32")
        #expect(f32Shard?.tensorNames == ["layers.0.f32"])

        // Saving again as one file removes the stale shards and index.
        try SafetensorsWriter.writeSharded(tensors, metadata: nil, directory: dir, maxShardBytes: 1 << 20)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.safetensors"])
    }

    @Test func indexPointingToMissingShard() throws {
        let dir = try scratchDirectory()
        try SafetensorsWriter.write([("a", Tensor([1], shape: [1]))], metadata: nil, to: dir.appendingPathComponent("s1.safetensors"))
        for shard in ["s2.safetensors", "../s1.safetensors", "/etc/passwd", ""] {
            try indexJSON(["a": shard]).write(to: dir.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
            guard case .missingShard(_, "a", shard)? = checkpointError(dir) else { Issue.record("shard '\(shard)' accepted"); continue }
        }
    }

    @Test func indexListingTensorMissingFromShard() throws {
        let dir = try scratchDirectory()
        try SafetensorsWriter.write([("a", Tensor([1], shape: [1]))], metadata: nil, to: dir.appendingPathComponent("s1.safetensors"))
        try indexJSON(["a": "s1.safetensors", "b": "s1.safetensors"])
            .write(to: dir.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
        let error = checkpointError(dir)
        guard case .tensorMissingFromShard(_, "b", "s1.safetensors")? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(error!.description.contains("model.safetensors.index.json"))
    }

    @Test(arguments: ["{", "[]", "{\"metadata\":{}}", "{\"weight_map\":[]}", "{\"weight_map\":{\"a\":1}}",
                      "{\"weight_map\":{\"a\":\"s\",\"a\":\"s\"}}", "{\"weight_map\":{},\"weight_map\":{}}", "{\"metadata\":3,\"weight_map\":{}}"])
    func invalidIndex(text: String) throws {
        let dir = try scratchDirectory()
        try text.write(to: dir.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
        guard case .invalidIndex? = checkpointError(dir) else { Issue.record("index \(text) accepted"); return }
    }

    @Test func folderWithoutCheckpointAndBadShard() throws {
        let dir = try scratchDirectory()
        guard case .noCheckpoint? = checkpointError(dir) else { Issue.record("empty folder accepted"); return }
        try Data([1, 2, 3]).write(to: dir.appendingPathComponent("s.safetensors"))
        try indexJSON(["a": "s.safetensors"]).write(to: dir.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
        guard case .fileTooSmall? = checkpointError(dir) else { Issue.record("corrupt shard accepted"); return }
    }
}
