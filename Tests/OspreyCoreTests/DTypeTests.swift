// bf16/f16 conversions, MXFP4 decoding and tensor views.
import Testing
@testable import OspreyCore

@Suite struct DTypeTests {
    @Test func bf16RoundsToNearestEven() {
        // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1 + 2^-7: ties go to the even mantissa (1.0).
        #expect(bf16Bits(1 + 0x1p-8) == 0x3F80)
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
        #expect(bf16Bits(1 + 3 * 0x1p-8) == 0x3F82)
        // Just above the halfway point rounds up.
        #expect(bf16Bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(bf16Bits(-2.5) == 0xC020)
        #expect(floatFromBF16(bf16Bits(3.140625)) == 3.140625)
    }

    @Test func bf16KeepsSpecials() {
        #expect(bf16Bits(.infinity) == 0x7F80)
        #expect(bf16Bits(-.infinity) == 0xFF80)
        #expect(floatFromBF16(bf16Bits(.nan)).isNaN)
        // A NaN whose payload sits only in the low bits must not collapse to infinity.
        #expect(floatFromBF16(bf16Bits(Float(bitPattern: 0x7F80_0001))).isNaN)
        // The largest finite float rounds to infinity, as round-to-nearest-even requires.
        #expect(bf16Bits(.greatestFiniteMagnitude) == 0x7F80)
        #expect(bf16Bits(-0.0) == 0x8000)
    }

    @Test func f16RoundTripAndSpecials() {
        #expect(f16Bits(1) == 0x3C00)
        #expect(f16Bits(65504) == 0x7BFF)
        #expect(f16Bits(70000) == 0x7C00)
        #expect(floatFromF16(f16Bits(.nan)).isNaN)
        #expect(floatFromF16(0x0001) == 0x1p-24)
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even.
        #expect(f16Bits(1 + 0x1p-11) == 0x3C00)
    }

    @Test func mxfp4DecodesEveryNibble() {
        for nibble in UInt8(0)..<16 {
            #expect(MXFP4.e2m1Value(nibble).bitPattern == MXFP4.e2m1Table[Int(nibble)].bitPattern)
        }
        #expect(MXFP4.e2m1Value(8).sign == .minus)  // -0 stays negative zero
        #expect(MXFP4.scaleValue(127) == 1)
        #expect(MXFP4.scaleValue(0) == 0x1p-127)
        #expect(MXFP4.scaleValue(254) == 0x1p127)
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes[0] = 0x7F  // element 0: low nibble F = -6, element 1: high nibble 7 = +6
        bytes[15] = 0x21 // element 30: 1 = 0.5, element 31: 2 = 1
        var out = [Float](repeating: 0, count: 32)
        MXFP4.decodeBlock(bytes, scale: 128, into: &out)
        #expect(out[0] == -12 && out[1] == 12 && out[30] == 1 && out[31] == 2 && out[2] == 0)
    }

    @Test func tensorViews() {
        let t = Tensor((0..<12).map(Float.init), shape: [3, 4])
        #expect(t.rows(1..<3).floats() == (4..<12).map(Float.init))
        #expect(t.reshaped([2, 6]).shape == [2, 6])
        #expect(DType.e2m1.byteCount(elements: 33) == 17)
        let b = Tensor(zeros: [2], dtype: .bf16)
        b.mutableRaw.assumingMemoryBound(to: UInt16.self)[1] = bf16Bits(-1.5)
        #expect(b.toF32().floats() == [0, -1.5])
    }
}
