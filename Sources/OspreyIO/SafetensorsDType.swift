// The safetensors dtype vocabulary (as of safetensors 0.8: the 22 names its Rust `Dtype` accepts),
// their bit sizes, the mapping to and from Osprey's `DType`, and the per-tensor header entry.
// The case order is safetensors' own declaration order, which is also the order its writer uses
// to lay tensors out (widest dtype first), so it must not be rearranged.

import OspreyCore

/// An element type as named in a safetensors header.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case bool = "BOOL"
    case f4 = "F4"
    case f6E2M3 = "F6_E2M3"
    case f6E3M2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case f8E8M0 = "F8_E8M0"
    case f8E4M3FNUZ = "F8_E4M3FNUZ"
    case f8E5M2FNUZ = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bits taken by one element.
    public var bitSize: Int {
        switch self {
        case .f4: 4
        case .f6E2M3, .f6E3M2: 6
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ: 8
        case .i16, .u16, .f16, .bf16: 16
        case .i32, .u32, .f32: 32
        case .c64, .f64, .i64, .u64: 64
        }
    }

    /// The Osprey element type holding the same bits, or nil when Osprey has none.
    /// F4 maps to `e2m1` (two values per byte, low nibble first) and F8_E8M0 to `e8m0`.
    public var coreDType: DType? {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .i32: .i32
        case .i64: .i64
        case .u8: .u8
        case .f8E8M0: .e8m0
        case .f4: .e2m1
        default: nil
        }
    }

    /// The safetensors name for an Osprey element type.
    public init(_ dtype: DType) {
        switch dtype {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .i32: self = .i32
        case .i64: self = .i64
        case .u8: self = .u8
        case .e8m0: self = .f8E8M0
        case .e2m1: self = .f4
        }
    }

    /// Position in safetensors' declaration order (the writer puts higher ranks first).
    var rank: Int { Self.allCases.firstIndex(of: self) ?? 0 }

    /// Bytes taken by `shape`, or nil when the count overflows or ends inside a byte
    /// (safetensors rejects sub-byte tensors that do not fill whole bytes).
    func byteCount(shape: [Int]) -> Int? {
        var elements = 1
        for d in shape {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            if overflow || d < 0 { return nil }
            elements = p
        }
        let (bits, overflow) = elements.multipliedReportingOverflow(by: bitSize)
        if overflow || bits % 8 != 0 { return nil }
        return bits / 8
    }
}

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    /// The element type as the file names it.
    public let dtype: SafetensorsDType
    /// The dimensions, row-major.
    public let shape: [Int]
    /// The byte range within the data section, as the header's `data_offsets` give it.
    public let dataOffsets: Range<Int>
    /// The byte range within the whole file (data section start + `dataOffsets`).
    public let fileRange: Range<Int>

    /// Bytes the tensor takes.
    public var byteCount: Int { dataOffsets.count }
}
