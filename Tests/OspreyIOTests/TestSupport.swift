// Helpers for the OspreyIO tests: scratch folders, hand-built safetensors bytes (to make malformed
// files the writer would never produce), random tensors of every Osprey dtype, and a runner for
// Python's safetensors. The Python runner never skips: a missing python3, numpy or safetensors is
// a thrown error, so the test fails with a message saying what to install.

import Foundation
import OspreyCore
import OspreyIO
import Testing

/// A fresh, empty folder under the system temporary directory.
func scratchDirectory(_ label: String = #function) throws -> URL {
    let safe = label.filter { $0.isLetter || $0.isNumber }
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("osprey-io-tests-\(safe)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A safetensors file's bytes: the header length (or `declaredLength`), `header`, then `data`.
func safetensorsBytes(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    return safetensorsBytes(headerBytes: h, data: data, declaredLength: declaredLength)
}

func safetensorsBytes(headerBytes h: [UInt8], data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let n = declaredLength ?? UInt64(h.count)
    return (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * $0)) } + h + data
}

/// Writes `bytes` to `name` in a fresh scratch folder and returns its URL.
func writeScratchFile(_ bytes: [UInt8], name: String = "t.safetensors", label: String = #function) throws -> URL {
    let url = try scratchDirectory(label).appendingPathComponent(name)
    try Data(bytes).write(to: url)
    return url
}

/// Opens `bytes` as a safetensors file and returns the error it is rejected with (nil if accepted).
func openError(_ bytes: [UInt8], label: String = #function) throws -> SafetensorsError? {
    let url = try writeScratchFile(bytes, label: label)
    do {
        _ = try SafetensorsFile(url: url)
        return nil
    } catch let error as SafetensorsError {
        #expect(error.description.contains(url.path), "message should name the file: \(error)")
        return error
    }
}

/// A deterministic random generator (SplitMix64) so failures reproduce.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A host tensor of `dtype` and `shape` filled with random bytes.
func randomTensor(_ dtype: DType, _ shape: Shape, _ rng: inout SeededRandom) -> Tensor {
    let t = Tensor(zeros: shape, dtype: dtype)
    for i in 0..<t.byteCount { t.mutableRaw.storeBytes(of: UInt8.random(in: 0...255, using: &rng), toByteOffset: i, as: UInt8.self) }
    return t
}

/// The bytes of a host tensor.
func bytes(of t: Tensor) -> [UInt8] { Array(UnsafeRawBufferPointer(start: t.raw, count: t.byteCount)) }

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
    return String(decoding: out, as: UTF8.self)
}

/// One tensor of every Osprey dtype, plus a scalar and an empty tensor.
func sampleTensors(seed: UInt64 = 1) -> [(name: String, tensor: Tensor)] {
    var rng = SeededRandom(state: seed)
    return [
        ("model.embed.weight", randomTensor(.bf16, [3, 5], &rng)),
        ("layers.0.f32", randomTensor(.f32, [2, 3, 4], &rng)),
        ("layers.0.f16", randomTensor(.f16, [7], &rng)),
        ("layers.0.i32", randomTensor(.i32, [2, 2], &rng)),
        ("layers.0.i64", randomTensor(.i64, [3], &rng)),
        ("layers.0.u8", randomTensor(.u8, [5, 2], &rng)),
        ("experts.gate_up_proj_scales", randomTensor(.e8m0, [2, 3], &rng)),
        ("experts.gate_up_proj_blocks_f4", randomTensor(.e2m1, [2, 8], &rng)),
        ("scalar", randomTensor(.f32, [], &rng)),
        ("empty", randomTensor(.f16, [0, 4], &rng)),
    ]
}

// MARK: - Python

struct PythonError: Error, CustomStringConvertible {
    let description: String
}

/// Runs `python3 -c script args...` and returns its stdout. Throws (failing the test) when
/// python3, numpy or safetensors is missing, or when the script fails.
func runPython(_ script: String, _ args: [String] = []) throws -> String {
    let install = "the safetensors interop tests need python3 with numpy and safetensors: pip install numpy safetensors"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import numpy, safetensors\n" + script] + args
    let out = Pipe()
    // stderr goes to a file so that neither pipe can fill up while we read the other.
    let errURL = try scratchDirectory("python").appendingPathComponent("stderr.txt")
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let err = try FileHandle(forWritingTo: errURL)
    process.standardOutput = out
    process.standardError = err
    do { try process.run() } catch { throw PythonError(description: "cannot start python3 (\(error)); \(install)") }
    let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try err.close()
    let stderrData = (try? Data(contentsOf: errURL)) ?? Data()
    let stderr = String(decoding: stderrData, as: UTF8.self)
    if process.terminationStatus == 127 { throw PythonError(description: "python3 not found; \(install)") }
    if stderr.contains("No module named 'numpy'") || stderr.contains("No module named 'safetensors'") {
        throw PythonError(description: "\(install)\n\(stderr)")
    }
    guard process.terminationStatus == 0 else {
        throw PythonError(description: "python3 exited \(process.terminationStatus):\n\(stderr)")
    }
    return String(decoding: stdoutData, as: UTF8.self)
}

/// Parses a JSON object printed by a Python script.
func jsonObject(_ text: String) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw PythonError(description: "python printed no JSON object: \(text)")
    }
    return object
}
