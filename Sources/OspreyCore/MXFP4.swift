// The MXFP4 reference decoder (OCP Microscaling, as gpt-oss checkpoints store it): a block of 32
// e2m1 values shares one e8m0 scale. value = E2M1[nibble] * 2^(scale - 127). Byte k of a block
// holds element 2k in its low nibble and 2k+1 in its high nibble. This is the naive oracle every
// MXFP4 kernel is tested against; the quantizer (OspreyQuant) is its inverse.

/// MXFP4 constants and the scalar reference decoder.
public enum MXFP4 {
    /// Values per block (one e8m0 scale each).
    public static let blockSize = 32
    /// Bytes of packed e2m1 values per block.
    public static let bytesPerBlock = 16
    /// The 16 e2m1 values by nibble: sign bit 3, exponent bits 2..1, mantissa bit 0.
    public static let e2m1Table: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]

    /// The value of one e2m1 nibble (0...15).
    @inlinable
    public static func e2m1Value(_ nibble: UInt8) -> Float {
        let magnitude: Float
        switch nibble & 7 {
        case 0: magnitude = 0
        case 1: magnitude = 0.5
        case 2: magnitude = 1
        case 3: magnitude = 1.5
        case 4: magnitude = 2
        case 5: magnitude = 3
        case 6: magnitude = 4
        default: magnitude = 6
        }
        return nibble & 8 == 0 ? magnitude : -magnitude
    }

    /// The multiplier an e8m0 scale byte stands for: 2^(scale - 127). (255 is NaN in OCP MX; the
    /// checkpoints never use it and transformers' ldexp gives 2^128 = inf, which we follow.)
    @inlinable
    public static func scaleValue(_ scale: UInt8) -> Float {
        Float(sign: .plus, exponent: Int(scale) - 127, significand: 1)
    }

    /// Decodes one block: 16 packed bytes and its scale into 32 floats written to `out`.
    @inlinable
    public static func decodeBlock(_ bytes: UnsafePointer<UInt8>, scale: UInt8, into out: UnsafeMutablePointer<Float>) {
        let s = scaleValue(scale)
        for k in 0..<bytesPerBlock {
            let b = bytes[k]
            out[2 * k] = e2m1Value(b & 0xF) * s
            out[2 * k + 1] = e2m1Value(b >> 4) * s
        }
    }
}
