// SafetensorsWriter: writes host tensors as safetensors files that Python's `safetensors` writes
// byte for byte the same (for metadata of at most one key; Python's metadata key order is a Rust
// HashMap's, i.e. random, while ours is sorted). The layout follows the reference `prepare`:
// tensors sorted by dtype, widest first (safetensors' declaration order, reversed), then by name
// in byte order; header `{"__metadata__":{...},"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},...}`
// in that same order, compact, padded with spaces to a multiple of 8 bytes; then the data.
// Sharded checkpoints follow huggingface_hub/transformers: tensors are packed greedily in the
// order given (a tensor larger than the limit gets a shard of its own) into
// model-0000i-of-0000N.safetensors, with model.safetensors.index.json written as transformers
// writes it (json.dumps(indent=2, sort_keys=True) + newline); a variant takes names and sizes up
// front and asks for each shard's tensors only when that shard is written (and keeps groups, such
// as an MXFP4 blocks/scales pair, in one shard). Files are written to a temporary
// name and renamed into place, so a failed write never leaves a truncated file behind.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import OspreyCore

/// Writes safetensors files and sharded checkpoints.
public enum SafetensorsWriter {
    /// Writes `tensors` (host tensors, unique names) and optional `metadata` to `url`.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String]?, to url: URL) throws {
        let path = url.path
        let ordered = try layout(tensors, file: path)
        let header = headerBytes(ordered, metadata: metadata)
        try writeAtomically(to: path) { fd in
            var n = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &n) { try writeAll(fd, $0, path: path) }
            try header.withUnsafeBytes { try writeAll(fd, $0, path: path) }
            for (_, t) in ordered {
                try writeAll(fd, UnsafeRawBufferPointer(start: t.raw, count: t.byteCount), path: path)
            }
        }
    }

    /// Writes `tensors` into `directory` as a checkpoint whose shards hold at most
    /// `maxShardBytes` of tensor data each (one larger tensor gets its own shard). One shard is
    /// written as `model.safetensors`; several as `model-0000i-of-0000N.safetensors` plus
    /// `model.safetensors.index.json` (`metadata.total_size` and a sorted `weight_map`).
    /// `metadata` goes into every shard. Checkpoint files of an earlier save in the folder that
    /// this save does not overwrite (a stale index, single file or shard) are removed, as
    /// transformers' `save_pretrained` does, so the folder always opens as what was just written.
    public static func writeSharded(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String]?,
                                    directory: URL, maxShardBytes: Int) throws {
        let byName = Dictionary(tensors.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        try writeSharded(groups: tensors.map { [(name: $0.name, byteCount: $0.tensor.byteCount)] }, metadata: metadata,
                         directory: directory, maxShardBytes: maxShardBytes) { name in byName[name]! }
    }

    /// `writeSharded` for tensors made on demand: `groups` lists every tensor's name and byte
    /// count, each group kept whole in one shard (e.g. an MXFP4 `_blocks` / `_scales` pair) and
    /// packed as single tensors are; `tensor(name)` is called for the tensors of one shard at a
    /// time, just before that shard is written, so only one shard's tensors need be in memory.
    public static func writeSharded(groups: [[(name: String, byteCount: Int)]], metadata: [String: String]?,
                                    directory: URL, maxShardBytes: Int, tensor: (String) throws -> Tensor) throws {
        let dirPath = directory.path
        guard maxShardBytes > 0 else {
            throw SafetensorsError.writeFailed(file: dirPath, reason: "maxShardBytes must be positive, got \(maxShardBytes)")
        }
        var seen = Set<String>()
        for (name, _) in groups.joined() where !seen.insert(name).inserted {
            throw SafetensorsError.cannotWriteTensor(file: dirPath, tensor: name, reason: "the name appears twice")
        }
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw SafetensorsError.writeFailed(file: dirPath, reason: error.localizedDescription)
        }

        var shards: [[(name: String, byteCount: Int)]] = []
        var current: [(name: String, byteCount: Int)] = []
        var currentBytes = 0
        for group in groups {
            let n = group.reduce(0) { $0 + $1.byteCount }
            if n > maxShardBytes { shards.append(group); continue }
            if currentBytes + n > maxShardBytes, !current.isEmpty {
                shards.append(current)
                current = []
                currentBytes = 0
            }
            current += group
            currentBytes += n
        }
        if !current.isEmpty || shards.isEmpty { shards.append(current) }

        func materialize(_ shard: [(name: String, byteCount: Int)], file: String) throws -> [(name: String, tensor: Tensor)] {
            try shard.map { item in
                let t = try tensor(item.name)
                guard t.byteCount == item.byteCount else {
                    throw SafetensorsError.cannotWriteTensor(file: file, tensor: item.name,
                                                             reason: "\(t.byteCount) bytes, \(item.byteCount) announced")
                }
                return (item.name, t)
            }
        }
        let written: Set<String>
        if shards.count == 1 {
            let url = directory.appendingPathComponent(SafetensorsCheckpoint.singleFileName)
            try write(materialize(shards[0], file: url.path), metadata: metadata, to: url)
            written = [SafetensorsCheckpoint.singleFileName]
        } else {
            let names = shards.indices.map { shardFileName($0 + 1, of: shards.count) }
            var weightMap: [(tensor: String, shard: String)] = []
            for (shard, name) in zip(shards, names) {
                let url = directory.appendingPathComponent(name)
                try write(materialize(shard, file: url.path), metadata: metadata, to: url)
                weightMap += shard.map { ($0.name, name) }
            }
            let totalSize = groups.joined().reduce(0) { $0 + $1.byteCount }
            let index = indexJSON(totalSize: totalSize, weightMap: weightMap)
            let indexPath = directory.appendingPathComponent(SafetensorsCheckpoint.indexFileName).path
            try writeAtomically(to: indexPath) { fd in
                try Array(index.utf8).withUnsafeBytes { try writeAll(fd, $0, path: indexPath) }
            }
            written = Set(names + [SafetensorsCheckpoint.indexFileName])
        }
        removeStaleCheckpointFiles(in: directory, keeping: written)
    }

    // MARK: - Layout and header

    /// Checks the tensors can be written and orders them as safetensors' `prepare` does.
    static func layout(_ tensors: [(name: String, tensor: Tensor)], file: String) throws -> [(name: String, tensor: Tensor)] {
        var seen = Set<String>()
        for (name, t) in tensors {
            func bad(_ reason: String) -> SafetensorsError { .cannotWriteTensor(file: file, tensor: name, reason: reason) }
            guard seen.insert(name).inserted else { throw bad("the name appears twice") }
            guard name != "__metadata__" else { throw bad("the name is reserved for the metadata") }
            guard t.device == .cpu else { throw bad("it lives on \(t.device); copy it to the host first") }
            guard t.shape.dims.allSatisfy({ $0 >= 0 }) else { throw bad("negative dimension in shape \(t.shape)") }
            let st = SafetensorsDType(t.dtype)
            guard st.byteCount(shape: t.shape.dims) == t.byteCount else {
                throw bad("\(t.shape.count) \(st.rawValue) elements do not fill whole bytes")
            }
        }
        return tensors.sorted { a, b in
            let ra = SafetensorsDType(a.tensor.dtype).rank, rb = SafetensorsDType(b.tensor.dtype).rank
            return ra != rb ? ra > rb : a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
    }

    /// The header JSON for tensors already in file order, padded with spaces to a multiple of 8.
    static func headerBytes(_ ordered: [(name: String, tensor: Tensor)], metadata: [String: String]?) -> [UInt8] {
        var parts: [String] = []
        if let metadata {
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            let body = keys.map { jsonQuoted($0) + ":" + jsonQuoted(metadata[$0] ?? "") }.joined(separator: ",")
            parts.append("\"__metadata__\":{" + body + "}")
        }
        var offset = 0
        for (name, t) in ordered {
            let end = offset + t.byteCount
            let shape = t.shape.dims.map(String.init).joined(separator: ",")
            parts.append(jsonQuoted(name) + ":{\"dtype\":\"\(SafetensorsDType(t.dtype).rawValue)\",\"shape\":[\(shape)],"
                         + "\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var bytes = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        bytes += Array(repeating: UInt8(ascii: " "), count: (8 - bytes.count % 8) % 8)
        return bytes
    }

    static func shardFileName(_ i: Int, of n: Int) -> String {
        func five(_ v: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, 5 - s.count)) + s }
        return "model-\(five(i))-of-\(five(n)).safetensors"
    }

    /// The index as transformers writes it: `json.dumps(index, indent=2, sort_keys=True) + "\n"`.
    static func indexJSON(totalSize: Int, weightMap: [(tensor: String, shard: String)]) -> String {
        let sorted = weightMap.sorted { $0.tensor.unicodeScalars.lexicographicallyPrecedes($1.tensor.unicodeScalars) }
        let entries = sorted.map { "    " + jsonQuoted($0.tensor, asciiOnly: true) + ": " + jsonQuoted($0.shard, asciiOnly: true) }
        let map = entries.isEmpty ? "{}" : "{\n" + entries.joined(separator: ",\n") + "\n  }"
        return "{\n  \"metadata\": {\n    \"total_size\": \(totalSize)\n  },\n  \"weight_map\": \(map)\n}\n"
    }

    // MARK: - Files

    /// Runs `body` on a new temporary file beside `path`, then renames it to `path`.
    private static func writeAtomically(to path: String, _ body: (Int32) throws -> Void) throws {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SafetensorsError.writeFailed(file: path, reason: systemError()) }
        do {
            try body(fd)
            guard close(fd) == 0 else { throw SafetensorsError.writeFailed(file: path, reason: systemError()) }
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        guard rename(tmp, path) == 0 else {
            let reason = systemError()
            unlink(tmp)
            throw SafetensorsError.writeFailed(file: path, reason: reason)
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < bytes.count {
            guard let base = bytes.baseAddress else { return }
            let n = systemWrite(fd, base + done, min(bytes.count - done, 1 << 30))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SafetensorsError.writeFailed(file: path, reason: n < 0 ? systemError() : "wrote 0 bytes") }
            done += n
        }
    }

    private static func removeStaleCheckpointFiles(in directory: URL, keeping written: Set<String>) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where !written.contains(name) && isCheckpointFileName(name) {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }

    /// model.safetensors, its index, or a shard name `model-DDDDD-of-DDDDD.safetensors`.
    private static func isCheckpointFileName(_ name: String) -> Bool {
        if name == SafetensorsCheckpoint.singleFileName || name == SafetensorsCheckpoint.indexFileName { return true }
        let u = Array(name.utf8)
        guard u.count == 32, name.hasPrefix("model-"), name.hasSuffix(".safetensors") else { return false }
        let digits = Array(u[6..<11]) + Array(u[15..<20])
        return digits.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } && String(decoding: u[11..<15], as: UTF8.self) == "-of-"
    }
}

/// POSIX write(2), named apart from `SafetensorsWriter.write`.
private func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
