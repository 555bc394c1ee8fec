// Unicode character classes used by the pre-tokenizer scanners (\p{L}, \p{N}, \p{M}, the o200k
// upper/lower letter groups, \s as White_Space, \r\n), as one flag byte per scalar in a two-level
// table built once from the Swift runtime's Unicode data. A table lookup is a few loads; calling
// `Unicode.Scalar.Properties` per character would dominate encode time.

/// Flag bits of one Unicode scalar.
enum CharFlags {
    static let letter: UInt8 = 1      // \p{L}
    static let number: UInt8 = 2      // \p{N}
    static let upper: UInt8 = 4       // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
    static let lower: UInt8 = 8       // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
    static let mark: UInt8 = 16       // \p{M}
    static let space: UInt8 = 32      // \s (White_Space)
    static let newline: UInt8 = 64    // \r or \n
}

/// Two-level lookup table: scalar >> 8 selects a 256-entry block; identical blocks are shared.
/// Immutable after `init`, hence `@unchecked Sendable`.
final class ScalarClassTable: @unchecked Sendable {
    static let shared = ScalarClassTable()

    private let stage1: UnsafeMutablePointer<UInt16>
    private let stage2: UnsafeMutablePointer<UInt8>
    /// Flags of the 128 ASCII characters (skips the two-level lookup on the common path).
    let ascii: UnsafeMutablePointer<UInt8>

    private init() {
        let blockCount = 0x110000 >> 8
        var blocks: [[UInt8]] = [[UInt8](repeating: 0, count: 256)]
        var index: [[UInt8]: UInt16] = [blocks[0]: 0]
        stage1 = .allocate(capacity: blockCount)
        for block in 0..<blockCount {
            let plane = block >> 8
            // Planes 4-13 are unassigned and 15-16 are private use: no flags.
            guard plane <= 3 || plane == 14 else { stage1[block] = 0; continue }
            var flags = [UInt8](repeating: 0, count: 256)
            for low in 0..<256 {
                if let scalar = Unicode.Scalar(UInt32(block << 8 | low)) { flags[low] = Self.flags(of: scalar) }
            }
            if let existing = index[flags] {
                stage1[block] = existing
            } else {
                let id = UInt16(blocks.count)
                blocks.append(flags)
                index[flags] = id
                stage1[block] = id
            }
        }
        ascii = .allocate(capacity: 128)
        for i in 0..<128 { ascii[i] = blocks[Int(stage1[0])][i] }
        stage2 = .allocate(capacity: blocks.count * 256)
        for (i, block) in blocks.enumerated() {
            for j in 0..<256 { stage2[i * 256 + j] = block[j] }
        }
    }

    deinit {
        stage1.deallocate()
        stage2.deallocate()
        ascii.deallocate()
    }

    @inline(__always) func flags(_ scalar: UInt32) -> UInt8 {
        if scalar >= 0x110000 { return 0 }
        return stage2[Int(stage1[Int(scalar >> 8)]) << 8 | Int(scalar & 0xFF)]
    }

    static func flags(of scalar: Unicode.Scalar) -> UInt8 {
        let p = scalar.properties
        var f: UInt8
        switch p.generalCategory {
        case .uppercaseLetter, .titlecaseLetter: f = CharFlags.letter | CharFlags.upper
        case .lowercaseLetter: f = CharFlags.letter | CharFlags.lower
        case .modifierLetter, .otherLetter: f = CharFlags.letter | CharFlags.upper | CharFlags.lower
        case .nonspacingMark, .spacingMark, .enclosingMark: f = CharFlags.mark | CharFlags.upper | CharFlags.lower
        case .decimalNumber, .letterNumber, .otherNumber: f = CharFlags.number
        default: f = 0
        }
        if p.isWhitespace { f |= CharFlags.space }
        if scalar.value == 0x0A || scalar.value == 0x0D { f |= CharFlags.newline }
        return f
    }
}

/// Decodes the scalar starting at `i` of valid UTF-8 (Swift strings always are).
@inline(__always)
func decodeScalar(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> (value: UInt32, length: Int) {
    let b0 = UInt32(p[i])
    if b0 < 0x80 { return (b0, 1) }
    if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | (UInt32(p[i + 1]) & 0x3F), 2) }
    if b0 < 0xF0 {
        return ((b0 & 0x0F) << 12 | (UInt32(p[i + 1]) & 0x3F) << 6 | (UInt32(p[i + 2]) & 0x3F), 3)
    }
    return ((b0 & 0x07) << 18 | (UInt32(p[i + 1]) & 0x3F) << 12 | (UInt32(p[i + 2]) & 0x3F) << 6
            | (UInt32(p[i + 3]) & 0x3F), 4)
}
