// Helpers shared by the generation tests: random checkpoints with a random harmony tokenizer,
// a model wrapper that counts forward passes, and the shared reference data folder.
import Foundation
import Synchronization
import OspreyCore
import OspreyModels
import OspreyGeneration

/// A random gpt-oss folder (with a byte-level harmony tokenizer when `tokenizer`), removed by `body`'s caller.
func withRandomFolder<T>(vocab: Int = 300, tokenizer: Bool = true, mxfp4: Bool = false, seed: UInt64 = 1,
                         _ body: (URL) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gen-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    var shape = GptOssShape()
    (shape.vocab, shape.tokenizer, shape.mxfp4) = (vocab, tokenizer, mxfp4)
    try RandomGptOss.write(shape, to: dir, seed: seed)
    return try body(dir)
}

/// A model that counts its forward passes.
final class CountingModel: LanguageModel {
    let inner: any LanguageModel
    let forwards = Atomic<Int>(0)
    init(_ inner: any LanguageModel) { self.inner = inner }

    var count: Int { forwards.load(ordering: .sequentiallyConsistent) }
    var vocabularySize: Int { inner.vocabularySize }
    var backend: any Backend { inner.backend }
    func makeCache() -> any KVCache { inner.makeCache() }
    func forward(_ ids: [Int32], cache: any KVCache, allPositions: Bool) throws -> Tensor {
        forwards.add(1, ordering: .sequentiallyConsistent)
        return try inner.forward(ids, cache: cache, allPositions: allPositions)
    }
    var attentionWindows: [Int?] { inner.attentionWindows }
    var kvRowShape: [Int] { inner.kvRowShape }
    func forward(tokens: Tensor, cache: any AttentionCache, logitRows: Tensor) throws -> Tensor {
        forwards.add(1, ordering: .sequentiallyConsistent)
        return try inner.forward(tokens: tokens, cache: cache, logitRows: logitRows)
    }
}

extension LoadedModel {
    /// This model with its forward passes counted.
    func counted() -> (LoadedModel, CountingModel) {
        let counting = CountingModel(model)
        return (LoadedModel(folder: folder, model: counting, tokenizer: tokenizer, generationConfig: generationConfig,
                            chatFormat: chatFormat), counting)
    }
}

enum SharedData {
    /// ../shared relative to the repository root (found from this file, symlinks resolved).
    static let directory = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared")
    static let data = directory.appendingPathComponent("data")
    static var available: Bool { FileManager.default.fileExists(atPath: data.appendingPathComponent("o200k_base.tiktoken").path) }

    /// The lines of a JSON Lines fixture as raw text, keyed by their "id".
    static func jsonLines(_ path: String) -> [String] {
        guard let text = try? String(contentsOf: directory.appendingPathComponent(path), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }
}
