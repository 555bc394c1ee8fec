// Parsing and strict validation of a safetensors header, the rules of the reference Rust crate
// (safetensors 0.8 `read_metadata` + `Metadata::validate`) plus duplicate-name rejection:
//   - at least 8 bytes; a u64 LE header length N ≤ 100_000_000 with 8 + N inside the file;
//   - the N header bytes are UTF-8 JSON holding one object (trailing whitespace allowed);
//   - `__metadata__` is null or an object of string values; every other key is a tensor with a
//     known dtype, a shape of non-negative integers and `data_offsets` [begin, end], begin ≤ end;
//   - end - begin == product(shape) × dtype bits / 8, with no overflow and whole bytes only;
//   - sorted by offsets, the tensors tile the data section exactly: the first starts at 0, each
//     starts where the previous ended (no overlap, no gap), and the last ends at end of file.
// Unknown fields inside a tensor entry are ignored, as the reference does.

/// A validated header: tensors in header order, their entries, and the metadata.
struct SafetensorsHeader {
    static let maxHeaderBytes: UInt64 = 100_000_000

    /// Tensors in header order.
    private(set) var entries: [(name: String, info: SafetensorsTensorInfo)] = []
    /// Tensor name → position in `entries`.
    private(set) var index: [String: Int] = [:]
    private(set) var metadata: [String: String] = [:]

    /// Parses and validates the header of `file`, whose whole content is `bytes`.
    init(file: String, bytes: UnsafeRawBufferPointer) throws(SafetensorsError) {
        guard bytes.count >= 8 else { throw .fileTooSmall(file: file, size: bytes.count) }
        var n: UInt64 = 0
        for k in (0..<8).reversed() { n = n << 8 | UInt64(bytes[k]) }
        guard n <= Self.maxHeaderBytes else { throw .headerTooLarge(file: file, length: n) }
        let dataStart = 8 + Int(n)
        guard dataStart <= bytes.count else { throw .headerPastEnd(file: file, length: n, fileSize: bytes.count) }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart])
        guard String(validating: headerBytes, as: UTF8.self) != nil else { throw .headerNotUTF8(file: file) }

        let root: JSONValue
        do { root = try JSONParser.parse(headerBytes) } catch {
            throw .invalidJSON(file: file, offset: error.offset, reason: error.reason)
        }
        guard case .object(let members) = root else {
            throw .invalidJSON(file: file, offset: 0, reason: "the header is \(root.typeName), not an object")
        }

        let dataBytes = bytes.count - dataStart
        var sawMetadata = false
        for (key, value) in members {
            if key == "__metadata__" {
                if sawMetadata { throw .invalidMetadata(file: file, key: nil, reason: "appears twice") }
                sawMetadata = true
                metadata = try Self.parseMetadata(value, file: file)
                continue
            }
            if index[key] != nil { throw .duplicateTensor(file: file, tensor: key) }
            let info = try Self.parseEntry(value, tensor: key, file: file, dataStart: dataStart, dataBytes: dataBytes)
            index[key] = entries.count
            entries.append((key, info))
        }
        try checkTiling(file: file, dataBytes: dataBytes)
    }

    private static func parseMetadata(_ value: JSONValue, file: String) throws(SafetensorsError) -> [String: String] {
        var out: [String: String] = [:]
        switch value {
        case .null: return out
        case .object(let pairs):
            for (k, v) in pairs {
                guard case .string(let s) = v else {
                    throw .invalidMetadata(file: file, key: k, reason: "value is \(v.typeName), not a string")
                }
                if out[k] != nil { throw .invalidMetadata(file: file, key: k, reason: "key appears twice") }
                out[k] = s
            }
            return out
        default:
            throw .invalidMetadata(file: file, key: nil, reason: "is \(value.typeName), not an object of strings")
        }
    }

    private static func parseEntry(_ value: JSONValue, tensor: String, file: String,
                                   dataStart: Int, dataBytes: Int) throws(SafetensorsError) -> SafetensorsTensorInfo {
        func bad(_ reason: String) -> SafetensorsError { .invalidEntry(file: file, tensor: tensor, reason: reason) }
        guard case .object(let pairs) = value else { throw bad("entry is \(value.typeName), not an object") }
        var fields: [String: JSONValue] = [:]
        for (k, v) in pairs {
            if fields[k] != nil { throw bad("field '\(k)' appears twice") }
            fields[k] = v
        }
        guard let dtypeValue = fields["dtype"] else { throw bad("missing field 'dtype'") }
        guard case .string(let dtypeName) = dtypeValue else { throw bad("dtype is \(dtypeValue.typeName), not a string") }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw .unknownDType(file: file, tensor: tensor, dtype: dtypeName)
        }
        guard let shapeValue = fields["shape"] else { throw bad("missing field 'shape'") }
        guard case .array(let dims) = shapeValue else { throw bad("shape is \(shapeValue.typeName), not an array") }
        var shape: [Int] = []
        for d in dims {
            guard let n = d.nonNegativeInt else { throw bad("shape dimension \(d.typeName) is not a non-negative integer") }
            shape.append(n)
        }
        guard let offsetsValue = fields["data_offsets"] else { throw bad("missing field 'data_offsets'") }
        guard case .array(let offsets) = offsetsValue, offsets.count == 2 else {
            throw bad("data_offsets must be an array of two integers")
        }
        guard let begin = offsets[0].nonNegativeInt, let end = offsets[1].nonNegativeInt else {
            throw bad("data_offsets \(offsets.map(\.typeName)) are not non-negative integers that fit in memory")
        }
        guard begin <= end, end <= dataBytes else {
            throw .offsetsOutOfRange(file: file, tensor: tensor, begin: begin, end: end, dataBytes: dataBytes)
        }
        if dtype.bitSize % 8 != 0, let bits = Self.bitCount(shape, dtype), bits % 8 != 0 {
            throw bad("\(bits / dtype.bitSize) \(dtype.rawValue) elements do not fill whole bytes")
        }
        let expected = dtype.byteCount(shape: shape)
        guard expected == end - begin else {
            throw .sizeMismatch(file: file, tensor: tensor, shape: shape, dtype: dtype.rawValue,
                                expected: expected, actual: end - begin)
        }
        return SafetensorsTensorInfo(dtype: dtype, shape: shape, dataOffsets: begin..<end,
                                     fileRange: (dataStart + begin)..<(dataStart + end))
    }

    /// Total bits of `shape` elements of `dtype`, or nil on overflow.
    private static func bitCount(_ shape: [Int], _ dtype: SafetensorsDType) -> Int? {
        var n = dtype.bitSize
        for d in shape {
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = p
        }
        return n
    }

    /// Sorted by (begin, end), the tensors must cover [0, dataBytes) with no gap and no overlap.
    private func checkTiling(file: String, dataBytes: Int) throws(SafetensorsError) {
        let sorted = entries.sorted {
            let a = $0.info.dataOffsets, b = $1.info.dataOffsets
            return (a.lowerBound, a.upperBound) < (b.lowerBound, b.upperBound)
        }
        var covered = 0
        var last: String? = nil
        for (name, info) in sorted {
            let r = info.dataOffsets
            if r.lowerBound < covered {
                throw .overlappingTensors(file: file, tensor: name, other: last ?? "")
            }
            if r.lowerBound > covered {
                throw .gapBeforeTensor(file: file, tensor: name, gapStart: covered, gapEnd: r.lowerBound)
            }
            if !r.isEmpty { last = name }
            covered = r.upperBound
        }
        if covered != dataBytes { throw .trailingBytes(file: file, covered: covered, dataBytes: dataBytes) }
    }
}
