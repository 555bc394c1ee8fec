// Helpers shared by the model tests: temporary folders, random checkpoints, logits comparison,
// and the location of the committed fixtures.
import Foundation
import OspreyCore
import OspreyCPU
import OspreyModels

enum TestPaths {
    /// Tests/OspreyModelsTests/Fixtures in this checkout.
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
}

/// A fresh temporary folder, removed by the caller with `cleanup`.
func temporaryFolder(_ name: String = "osprey") -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func cleanup(_ url: URL) { try? FileManager.default.removeItem(at: url) }

/// Loads a model folder on the CPU.
func loadCPU(_ url: URL) throws -> any LanguageModel {
    try ModelRegistry.load(ModelFolder(directory: url), backend: CPUBackend())
}

/// max |a - b| over max |b|.
func relativeMaxError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var d: Float = 0, m: Float = 0
    for i in 0..<a.count { d = max(d, abs(a[i] - b[i])); m = max(m, abs(b[i])) }
    return d / max(m, 1e-30)
}
