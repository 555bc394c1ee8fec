// What every model family offers, the weights it loads from, and the family registry.
// The registry is a literal table keyed by config.json's `model_type`, one line per family
// (STYLE habit 2); adding a family is adding a file and a line here.
import Foundation
import OspreyCore

/// Named tensors a model loads its weights from (a safetensors checkpoint, or an in-memory map).
public protocol WeightSource: Sendable {
    func contains(_ name: String) -> Bool
    func tensor(_ name: String) throws -> Tensor
    var tensorNames: [String] { get }
    /// Bytes of all tensors (what a device must reserve for the weights).
    var totalBytes: Int { get }
}

/// A causal language model on one backend.
public protocol LanguageModel: Sendable {
    /// Size of the output distribution (logits per position).
    var vocabularySize: Int { get }
    /// The backend the weights live on.
    var backend: any Backend { get }
    /// A fresh cache shaped for this model (sliding layers keep their window, full layers grow).
    func makeCache() -> any KVCache
    /// A cache for at most `maxLength` tokens whose memory is all allocated here, so decoding never
    /// allocates (what CUDA graphs want). Default: `makeCache()`, for families without one.
    func makeCache(maxLength: Int) throws -> any KVCache
    /// Runs `ids` at positions `cache.offset ..< cache.offset + ids.count`, appending their keys
    /// and values to `cache`. Returns f32 logits [T, V] for every position, or [1, V] for the last
    /// one when `allPositions` is false.
    func forward(_ ids: [Int32], cache: any KVCache, allPositions: Bool) throws -> Tensor
    /// `forward` with the ids already on the backend's device (i32 [T]), e.g. the previous step's
    /// argmax: a decode step then sends nothing from the host.
    func forward(tokens: Tensor, cache: any KVCache, allPositions: Bool) throws -> Tensor

    /// Per layer: the sliding window, or nil for full attention (how a paged cache groups layers).
    var attentionWindows: [Int?] { get }
    /// Shape of one cached key (or value) row, [Hkv, D].
    var kvRowShape: [Int] { get }
    /// A batched step: runs `tokens` (i32 [T] on the device) at the positions and with the keys
    /// `cache` holds for this step (a paged cache the runner has set up, its inputs in buffers
    /// that outlive the step), returning logits [R, V] for the rows `logitRows` (i32 [R]) only.
    func forward(tokens: Tensor, cache: any AttentionCache, logitRows: Tensor) throws -> Tensor
}

extension LanguageModel {
    public func forward(tokens: Tensor, cache: any KVCache, allPositions: Bool) throws -> Tensor {
        let host = try backend.download(tokens)
        return try forward((0..<host.count).map { host.raw.load(fromByteOffset: 4 * $0, as: Int32.self) }, cache: cache, allPositions: allPositions)
    }
}

extension LanguageModel {
    public func makeCache(maxLength: Int) throws -> any KVCache { makeCache() }
}

/// The families Osprey can load, keyed by `model_type`.
public enum ModelRegistry {
    public typealias Loader = @Sendable (ModelFolder, any Backend) throws -> any LanguageModel

    public static let families: [String: Loader] = [
        "gpt_oss": { try GptOssModel(folder: $0, backend: $1) },
    ]

    /// The supported `model_type` values, sorted.
    public static var supported: [String] { families.keys.sorted() }

    /// Loads the model in `folder` onto `backend`, picking the family from `model_type`.
    public static func load(_ folder: ModelFolder, backend: any Backend) throws -> any LanguageModel {
        guard let loader = families[folder.modelType] else {
            throw ModelError.unknownModelType(folder.modelType, supported: supported)
        }
        return try loader(folder, backend)
    }
}
