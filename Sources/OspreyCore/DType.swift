// DType: the element types Osprey tensors hold, their sizes, and the scalar conversions between
// them (bf16 and f16 round to nearest even and keep NaN/Inf). MXFP4 is a pair of types: `e2m1`
// (two 4-bit values packed per byte, low nibble first) and `e8m0` (one power-of-two scale per 32
// values, bias 127); the reference decoder for the pair lives in MXFP4.swift.

/// An element type of a tensor.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16, i32, i64, u8
    /// MXFP4 values: two e2m1 nibbles per byte, element 2k in the low nibble of byte k.
    case e2m1
    /// MXFP4 block scales: one byte per 32 values, value = 2^(byte - 127).
    case e8m0

    /// Bytes taken by `count` elements (e2m1 packs two per byte).
    public func byteCount(elements count: Int) -> Int {
        switch self {
        case .f32, .i32: count * 4
        case .f16, .bf16: count * 2
        case .i64: count * 8
        case .u8, .e8m0: count
        case .e2m1: (count + 1) / 2
        }
    }

    /// Whether the type holds floating-point values that decode to a single `Float` per element.
    public var isFloatingPoint: Bool { self == .f32 || self == .f16 || self == .bf16 }
}

// MARK: - bf16 and f16 scalars

/// Converts a `Float` to bf16 bits, rounding to nearest even; NaN stays a (quiet) NaN, ±Inf stays ±Inf.
@inlinable
public func bf16Bits(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
    let rounding: UInt32 = 0x7FFF + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

/// Widens bf16 bits to a `Float` (exact).
@inlinable
public func floatFromBF16(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
}

/// Converts a `Float` to IEEE half bits, rounding to nearest even (Float16 conversion is RNE).
@inlinable
public func f16Bits(_ x: Float) -> UInt16 {
    Float16(x).bitPattern
}

/// Widens IEEE half bits to a `Float` (exact).
@inlinable
public func floatFromF16(_ b: UInt16) -> Float {
    Float(Float16(bitPattern: b))
}
