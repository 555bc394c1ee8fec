// Round trips with Python's safetensors package, both ways. Python writes with its own writers
// (safetensors.numpy.save_file for numpy dtypes; safetensors.serialize with TensorSpec over raw
// buffers for bf16, f8_e8m0 and f4, which numpy lacks) and Swift must read identical bytes,
// shapes, dtypes and metadata; Swift writes and Python must read the same back, and Python's own
// writer fed the same tensors must produce the very same file bytes. These tests fail (never
// skip) when python3, numpy or safetensors is missing: CI installs them.

import Foundation
import OspreyCore
import OspreyIO
import Testing

private let pythonWriter = """
import sys, json
import numpy as np
from safetensors.numpy import save_file
from safetensors import TensorSpec, serialize
rng = np.random.default_rng(0)
npfile, rawfile = sys.argv[1], sys.argv[2]
arrays = {
    "f32": (rng.standard_normal((3, 4)).astype(np.float32), "F32"),
    "f16": (rng.standard_normal((5,)).astype(np.float16), "F16"),
    "i32": (rng.integers(-2**31, 2**31 - 1, (2, 3), dtype=np.int32), "I32"),
    "i64": (rng.integers(-2**62, 2**62, (4,), dtype=np.int64), "I64"),
    "u8": (rng.integers(0, 256, (2, 2, 2), dtype=np.uint8), "U8"),
    "scalar": (np.array(3.5, dtype=np.float32), "F32"),
    "empty": (np.zeros((0, 3), dtype=np.float16), "F16"),
    "f64": (rng.standard_normal((2,)), "F64"),
    "i8": (rng.integers(-128, 128, (3,), dtype=np.int8), "I8"),
}
save_file({k: a for k, (a, _) in arrays.items()}, npfile, metadata={"format": "np", "note": "é\\n"})
raw = {
    "bf16": ("bfloat16", rng.integers(0, 2**16, (3, 2), dtype=np.uint16), [3, 2], "BF16", [3, 2]),
    "e8m0": ("float8_e8m0fnu", rng.integers(0, 256, (4,), dtype=np.uint8), [4], "F8_E8M0", [4]),
    "f4": ("float4_e2m1fn_x2", rng.integers(0, 256, (2, 3), dtype=np.uint8), [2, 3], "F4", [2, 6]),
    "f32": ("float32", rng.standard_normal((2,)).astype(np.float32), [2], "F32", [2]),
}
specs = {k: TensorSpec(dtype=d, shape=s, data_ptr=a.ctypes.data, data_len=a.nbytes) for k, (d, a, s, _, _) in raw.items()}
with open(rawfile, "wb") as f:
    f.write(serialize(specs, metadata={"format": "raw"}))
out = {npfile: {k: {"dtype": st, "shape": list(a.shape), "hex": a.tobytes().hex()} for k, (a, st) in arrays.items()},
       rawfile: {k: {"dtype": st, "shape": shape, "hex": a.tobytes().hex()} for k, (_, a, _, st, shape) in raw.items()}}
print(json.dumps(out))
"""

private let pythonReader = """
import sys, json
import numpy as np
from safetensors import safe_open, deserialize, serialize, TensorSpec
path = sys.argv[1]
data = open(path, "rb").read()
out = {"tensors": {}, "numpy": {}}
for k, v in deserialize(data):
    out["tensors"][k] = {"dtype": v["dtype"], "shape": list(v["shape"]), "hex": bytes(v["data"]).hex()}
with safe_open(path, framework="numpy") as f:
    out["metadata"] = f.metadata()
    for k in f.keys():
        if out["tensors"][k]["dtype"] in ("F32", "F16", "I32", "I64", "U8"):
            out["numpy"][k] = f.get_tensor(k).tobytes().hex()
names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I32": "int32", "I64": "int64", "U8": "uint8",
         "F8_E8M0": "float8_e8m0fnu", "F4": "float4_e2m1fn_x2"}
keep, specs = [], {}
for k, v in deserialize(data):
    buf = np.frombuffer(bytes(v["data"]) + b"\\0", dtype=np.uint8).copy()
    keep.append(buf)
    shape = list(v["shape"])
    if v["dtype"] == "F4":
        shape[-1] //= 2
    specs[k] = TensorSpec(dtype=names[v["dtype"]], shape=shape, data_ptr=buf.ctypes.data, data_len=len(v["data"]))
out["identical"] = bytes(serialize(specs, metadata=out["metadata"])) == data
print(json.dumps(out))
"""

private let pythonShardReader = """
import sys, os, json
from safetensors import deserialize
folder = sys.argv[1]
text = open(os.path.join(folder, "model.safetensors.index.json")).read()
index = json.loads(text)
out = {"same_text": text == json.dumps(index, indent=2, sort_keys=True) + "\\n",
       "total_size": index["metadata"]["total_size"], "tensors": {}}
for shard in sorted(set(index["weight_map"].values())):
    for k, v in deserialize(open(os.path.join(folder, shard), "rb").read()):
        assert index["weight_map"][k] == shard
        out["tensors"][k] = {"dtype": v["dtype"], "shape": list(v["shape"]), "hex": bytes(v["data"]).hex()}
print(json.dumps(out))
"""

/// Checks Python's report of one tensor against a Swift tensor.
private func expectMatches(_ report: Any?, _ t: Tensor, _ name: String) {
    guard let r = report as? [String: Any] else { Issue.record("python did not report \(name)"); return }
    #expect(r["dtype"] as? String == SafetensorsDType(t.dtype).rawValue, "\(name) dtype")
    #expect(r["shape"] as? [Int] == t.shape.dims, "\(name) shape")
    #expect(r["hex"] as? String == hex(bytes(of: t)), "\(name) bytes")
}

@Suite struct SafetensorsPythonTests {
    @Test func pythonWritesSwiftReads() throws {
        let dir = try scratchDirectory()
        let npFile = dir.appendingPathComponent("np.safetensors").path
        let rawFile = dir.appendingPathComponent("raw.safetensors").path
        let expected = try jsonObject(try runPython(pythonWriter, [npFile, rawFile]))
        #expect(expected.count == 2)
        for (path, value) in expected {
            let file = try SafetensorsFile(url: URL(fileURLWithPath: path))
            #expect(file.metadata == (path == npFile ? ["format": "np", "note": "é\n"] : ["format": "raw"]))
            let tensors = try #require(value as? [String: [String: Any]])
            #expect(Set(file.tensorNames) == Set(tensors.keys))
            for (name, want) in tensors {
                let info = try #require(file.info(name), "\(name) missing")
                #expect(info.dtype.rawValue == want["dtype"] as? String, "\(name) dtype")
                #expect(info.shape == want["shape"] as? [Int], "\(name) shape")
                if info.dtype.coreDType != nil {
                    let t = try file.tensor(name)
                    #expect(t.shape.dims == info.shape && SafetensorsDType(t.dtype) == info.dtype)
                    #expect(hex(bytes(of: t)) == want["hex"] as? String, "\(name) bytes")
                } else {
                    #expect(throws: SafetensorsError.self) { try file.tensor(name) }
                    #expect(try file.withRawBytes(of: name) { hex(Array($0)) } == want["hex"] as? String, "\(name) bytes")
                }
            }
        }
    }

    @Test func swiftWritesPythonReads() throws {
        let url = try scratchDirectory().appendingPathComponent("swift.safetensors")
        let tensors = sampleTensors(seed: 7)
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: url)
        let report = try jsonObject(try runPython(pythonReader, [url.path]))
        #expect(report["metadata"] as? [String: String] == ["format": "pt"])
        let seen = try #require(report["tensors"] as? [String: Any])
        #expect(Set(seen.keys) == Set(tensors.map(\.name)))
        for (name, t) in tensors { expectMatches(seen[name], t, name) }
        let viaNumpy = try #require(report["numpy"] as? [String: String])
        #expect(viaNumpy.count == 7)
        for (name, h) in viaNumpy { #expect(h == hex(bytes(of: tensors.first { $0.name == name }!.tensor)), "\(name) via numpy") }
        #expect(report["identical"] as? Bool == true, "Python's writer produced different bytes for the same tensors")
    }

    @Test func swiftWritesShardsPythonReads() throws {
        let dir = try scratchDirectory()
        let tensors = sampleTensors(seed: 9)
        try SafetensorsWriter.writeSharded(tensors, metadata: ["format": "pt"], directory: dir, maxShardBytes: 40)
        let report = try jsonObject(try runPython(pythonShardReader, [dir.path]))
        #expect(report["same_text"] as? Bool == true, "index differs from json.dumps(indent=2, sort_keys=True)")
        #expect(report["total_size"] as? Int == tensors.reduce(0) { $0 + $1.tensor.byteCount })
        let seen = try #require(report["tensors"] as? [String: Any])
        #expect(seen.count == tensors.count)
        for (name, t) in tensors { expectMatches(seen[name], t, name) }
    }

    @Test func unusualNamesMatchPythonByteForByte() throws {
        let dir = try scratchDirectory()
        let names = ["quote\"d", "back\\slash", "tab\tnew\nline", "ctl\u{01}\u{1F}\u{7F}", "ünïcödé", "emoji😀", "/a/b", ""]
        let tensors = names.enumerated().map { ($1, Tensor([Float($0)], shape: [1])) }
        let url = dir.appendingPathComponent("names.safetensors")
        try SafetensorsWriter.write(tensors, metadata: ["k\"\u{01}é": "v\\😀"], to: url)
        let report = try jsonObject(try runPython(pythonReader, [url.path]))
        #expect(report["identical"] as? Bool == true, "Python's writer produced different bytes for the same tensors")
        #expect(report["metadata"] as? [String: String] == ["k\"\u{01}é": "v\\😀"])
        let sharded = dir.appendingPathComponent("sharded")
        try SafetensorsWriter.writeSharded(tensors, metadata: nil, directory: sharded, maxShardBytes: 8)
        let shards = try jsonObject(try runPython(pythonShardReader, [sharded.path]))
        #expect(shards["same_text"] as? Bool == true, "index differs from json.dumps(indent=2, sort_keys=True)")
        let seen = try #require(shards["tensors"] as? [String: Any])
        for (name, t) in tensors { expectMatches(seen[name], t, name) }
        let ckpt = try SafetensorsCheckpoint(directory: sharded)
        #expect(Set(ckpt.tensorNames) == Set(names))
    }

    @Test func missingPythonPackageIsAFailureNotASkip() throws {
        #expect(throws: PythonError.self) { try runPython("import osprey_no_such_module_xyz") }
        #expect(throws: Never.self) { try runPython("print(safetensors.__version__)") }
    }
}
