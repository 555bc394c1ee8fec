// SafetensorsError: every way reading or writing a safetensors file or checkpoint folder can fail.
// Each case carries the file (and, where one is at fault, the tensor) so that the message alone
// tells a user which file to fix. Nothing in OspreyIO traps on file content: it throws one of these.

/// A safetensors file, checkpoint folder or write request that was rejected.
public enum SafetensorsError: Error, CustomStringConvertible, Sendable {
    /// The file could not be opened, stat'ed or mapped (`reason` is the system's message).
    case cannotOpen(file: String, reason: String)
    /// The file is shorter than the 8-byte header length.
    case fileTooSmall(file: String, size: Int)
    /// The header length is larger than the 100 MB that safetensors allows.
    case headerTooLarge(file: String, length: UInt64)
    /// The header length runs past the end of the file.
    case headerPastEnd(file: String, length: UInt64, fileSize: Int)
    /// The header bytes are not valid UTF-8.
    case headerNotUTF8(file: String)
    /// The header is not valid JSON, or not a JSON object; `offset` is the byte within the header.
    case invalidJSON(file: String, offset: Int, reason: String)
    /// The same tensor name appears twice in the header.
    case duplicateTensor(file: String, tensor: String)
    /// A tensor entry is malformed (missing field, wrong type, negative or non-integer dimension).
    case invalidEntry(file: String, tensor: String, reason: String)
    /// A tensor's dtype is not one safetensors defines.
    case unknownDType(file: String, tensor: String, dtype: String)
    /// A tensor's byte range does not match shape × dtype size (`expected` nil when it overflows).
    case sizeMismatch(file: String, tensor: String, shape: [Int], dtype: String, expected: Int?, actual: Int)
    /// A tensor's `data_offsets` are reversed or lie outside the data section.
    case offsetsOutOfRange(file: String, tensor: String, begin: Int, end: Int, dataBytes: Int)
    /// Two tensors' byte ranges overlap.
    case overlappingTensors(file: String, tensor: String, other: String)
    /// Bytes between two tensors (or before the first) belong to no tensor; safetensors requires
    /// the tensors to tile the data section without gaps.
    case gapBeforeTensor(file: String, tensor: String, gapStart: Int, gapEnd: Int)
    /// The data section has bytes after the last tensor.
    case trailingBytes(file: String, covered: Int, dataBytes: Int)
    /// `__metadata__` is not an object of string values.
    case invalidMetadata(file: String, key: String?, reason: String)
    /// The tensor exists but its dtype has no Osprey `DType`.
    case unsupportedDType(file: String, tensor: String, dtype: SafetensorsDType)
    /// No tensor of that name in the file or checkpoint folder.
    case tensorNotFound(tensor: String, location: String)
    /// The folder holds neither `model.safetensors` nor `model.safetensors.index.json`.
    case noCheckpoint(directory: String)
    /// `model.safetensors.index.json` is malformed.
    case invalidIndex(file: String, reason: String)
    /// The index maps a tensor to a shard file that is missing or outside the folder.
    case missingShard(index: String, tensor: String, shard: String)
    /// The index maps a tensor to a shard that does not contain it.
    case tensorMissingFromShard(index: String, tensor: String, shard: String)
    /// A tensor handed to the writer cannot be written (dtype, device, name).
    case cannotWriteTensor(file: String, tensor: String, reason: String)
    /// Writing the file failed (`reason` is the system's message).
    case writeFailed(file: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let f, let r): "\(f): cannot open: \(r)"
        case .fileTooSmall(let f, let n): "\(f): \(n) bytes is too small for a safetensors file (needs at least 8)"
        case .headerTooLarge(let f, let n): "\(f): header length \(n) exceeds the 100000000-byte limit"
        case .headerPastEnd(let f, let n, let size): "\(f): header length \(n) runs past the end of the \(size)-byte file"
        case .headerNotUTF8(let f): "\(f): header is not valid UTF-8"
        case .invalidJSON(let f, let at, let r): "\(f): header is not valid JSON at byte \(at): \(r)"
        case .duplicateTensor(let f, let t): "\(f): tensor '\(t)' appears twice in the header"
        case .invalidEntry(let f, let t, let r): "\(f): tensor '\(t)': \(r)"
        case .unknownDType(let f, let t, let d): "\(f): tensor '\(t)' has unknown dtype '\(d)'"
        case .sizeMismatch(let f, let t, let s, let d, let e, let a):
            "\(f): tensor '\(t)' (\(d) \(s)) needs \(e.map { "\($0) bytes" } ?? "more bytes than fit in memory") but its data_offsets span \(a)"
        case .offsetsOutOfRange(let f, let t, let b, let e, let n):
            "\(f): tensor '\(t)' has data_offsets [\(b), \(e)] outside the \(n)-byte data section"
        case .overlappingTensors(let f, let t, let o): "\(f): tensor '\(t)' overlaps tensor '\(o)'"
        case .gapBeforeTensor(let f, let t, let s, let e):
            "\(f): bytes [\(s), \(e)) before tensor '\(t)' belong to no tensor (safetensors requires contiguous tensors)"
        case .trailingBytes(let f, let c, let n): "\(f): tensors cover \(c) of the \(n) data bytes; the rest belongs to no tensor"
        case .invalidMetadata(let f, let k, let r): "\(f): __metadata__\(k.map { "['\($0)']" } ?? ""): \(r)"
        case .unsupportedDType(let f, let t, let d): "\(f): tensor '\(t)' has dtype \(d.rawValue), which Osprey does not support"
        case .tensorNotFound(let t, let l): "no tensor '\(t)' in \(l)"
        case .noCheckpoint(let d): "\(d): no model.safetensors or model.safetensors.index.json"
        case .invalidIndex(let f, let r): "\(f): \(r)"
        case .missingShard(let i, let t, let s): "\(i): tensor '\(t)' maps to shard '\(s)', which is missing or outside the folder"
        case .tensorMissingFromShard(let i, let t, let s): "\(i): tensor '\(t)' is not in its shard '\(s)'"
        case .cannotWriteTensor(let f, let t, let r): "\(f): cannot write tensor '\(t)': \(r)"
        case .writeFailed(let f, let r): "\(f): write failed: \(r)"
        }
    }
}
