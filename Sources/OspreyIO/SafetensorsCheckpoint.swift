// SafetensorsCheckpoint: the weights of one model folder, as Hugging Face lays them out — either a
// single `model.safetensors` (preferred when both exist, as transformers does) or
// `model.safetensors.index.json` whose `weight_map` sends each tensor name to a shard file in the
// same folder. Opening validates everything up front: the index JSON, that every shard named is a
// file inside the folder, that every shard is a valid safetensors file, and that every tensor the
// index lists is in its shard. Tensors a shard holds but the index does not list are not exposed.

import Foundation
import OspreyCore

/// The safetensors weights of a model folder (single file or sharded with an index).
public struct SafetensorsCheckpoint: Sendable {
    /// The model folder.
    public let directory: URL
    /// The opened files: one for a single-file checkpoint, else the shards in file-name order.
    public let files: [SafetensorsFile]
    /// Every tensor name, sorted.
    public let tensorNames: [String]
    private let fileOfTensor: [String: Int]

    static let singleFileName = "model.safetensors"
    static let indexFileName = "model.safetensors.index.json"
    static let maxIndexBytes = 100_000_000

    /// Opens the checkpoint in `directory` and validates it (see the file comment).
    public init(directory: URL) throws {
        self.directory = directory
        let fm = FileManager.default
        let single = directory.appendingPathComponent(Self.singleFileName)
        let index = directory.appendingPathComponent(Self.indexFileName)
        if fm.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(url: single)
            files = [file]
            fileOfTensor = Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, 0) })
        } else if fm.fileExists(atPath: index.path) {
            let weightMap = try Self.readWeightMap(index)
            let shardNames = Array(Set(weightMap.map(\.shard))).sorted()
            var opened: [SafetensorsFile] = []
            var position: [String: Int] = [:]
            for shard in shardNames {
                guard Self.isPlainRelativePath(shard), Self.isRegularFile(directory.appendingPathComponent(shard)) else {
                    let tensor = weightMap.first { $0.shard == shard }?.tensor ?? ""
                    throw SafetensorsError.missingShard(index: index.path, tensor: tensor, shard: shard)
                }
                position[shard] = opened.count
                opened.append(try SafetensorsFile(url: directory.appendingPathComponent(shard)))
            }
            var map: [String: Int] = [:]
            for (tensor, shard) in weightMap {
                guard let i = position[shard], opened[i].info(tensor) != nil else {
                    throw SafetensorsError.tensorMissingFromShard(index: index.path, tensor: tensor, shard: shard)
                }
                map[tensor] = i
            }
            files = opened
            fileOfTensor = map
        } else {
            throw SafetensorsError.noCheckpoint(directory: directory.path)
        }
        tensorNames = fileOfTensor.keys.sorted()
    }

    /// Whether the checkpoint has a tensor called `name`.
    public func contains(_ name: String) -> Bool { fileOfTensor[name] != nil }

    /// The header entry of tensor `name` (offsets are within its own file), or nil.
    public func info(_ name: String) -> SafetensorsTensorInfo? { file(containing: name)?.info(name) }

    /// The file holding tensor `name`, or nil.
    public func file(containing name: String) -> SafetensorsFile? { fileOfTensor[name].map { files[$0] } }

    /// Tensor `name` as a zero-copy host view (see `SafetensorsFile.tensor`).
    public func tensor(_ name: String) throws -> Tensor {
        guard let file = file(containing: name) else {
            throw SafetensorsError.tensorNotFound(tensor: name, location: directory.path)
        }
        return try file.tensor(name)
    }

    /// Bytes taken by all tensors of the checkpoint.
    public var totalBytes: Int {
        fileOfTensor.reduce(0) { $0 + (files[$1.value].info($1.key)?.byteCount ?? 0) }
    }

    // MARK: - The index file

    /// Reads `weight_map` from an index file: (tensor, shard file name) pairs in file order.
    private static func readWeightMap(_ url: URL) throws -> [(tensor: String, shard: String)] {
        let path = url.path
        func bad(_ reason: String) -> SafetensorsError { .invalidIndex(file: path, reason: reason) }
        let data: Data
        do {
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            data = try handle.read(upToCount: maxIndexBytes + 1) ?? Data()
        } catch {
            throw SafetensorsError.cannotOpen(file: path, reason: error.localizedDescription)
        }
        guard data.count <= maxIndexBytes else { throw bad("index is over the \(maxIndexBytes)-byte limit") }
        let root = try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) throws(SafetensorsError) in
            try parseIndexJSON(bytes, path: path)
        }
        guard case .object(let members) = root else { throw bad("the index is \(root.typeName), not an object") }
        var weightMap: JSONValue? = nil
        for (key, value) in members {
            switch key {
            case "weight_map":
                guard weightMap == nil else { throw bad("'weight_map' appears twice") }
                weightMap = value
            case "metadata":
                guard case .object = value else { throw bad("'metadata' is \(value.typeName), not an object") }
            default: break
            }
        }
        guard let weightMap else { throw bad("missing 'weight_map'") }
        guard case .object(let pairs) = weightMap else { throw bad("'weight_map' is \(weightMap.typeName), not an object") }
        var seen = Set<String>()
        var out: [(tensor: String, shard: String)] = []
        for (tensor, value) in pairs {
            guard case .string(let shard) = value else {
                throw bad("weight_map['\(tensor)'] is \(value.typeName), not a file name")
            }
            guard seen.insert(tensor).inserted else { throw bad("tensor '\(tensor)' appears twice in weight_map") }
            out.append((tensor, shard))
        }
        return out
    }

    private static func parseIndexJSON(_ bytes: UnsafeRawBufferPointer, path: String) throws(SafetensorsError) -> JSONValue {
        guard String(validating: bytes, as: UTF8.self) != nil else { throw .invalidIndex(file: path, reason: "not valid UTF-8") }
        do { return try JSONParser.parse(bytes) } catch {
            throw .invalidIndex(file: path, reason: "not valid JSON at byte \(error.offset): \(error.reason)")
        }
    }

    /// A shard path must stay inside the folder: relative, no `..`, no empty or NUL components.
    private static func isPlainRelativePath(_ p: String) -> Bool {
        guard !p.isEmpty, !p.hasPrefix("/"), !p.contains("\0") else { return false }
        return p.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != ".." && $0 != "." }
    }

    private static func isRegularFile(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }
}
