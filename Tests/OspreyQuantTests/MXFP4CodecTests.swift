// MXFP4 quantize/dequantize: the OCP scale rule, rounding, odd scales and every nibble.
import Testing
import OspreyCore
@testable import OspreyQuant

@Suite struct MXFP4CodecTests {
    @Test func dequantizeMatchesScalarDecoder() throws {
        // Every nibble value in both positions, with unusual scales (0, 1, 127, 200, 254).
        let scales: [UInt8] = [0, 1, 127, 200, 254]
        let blocks = Tensor(zeros: [scales.count, 16], dtype: .u8)
        let s = Tensor(zeros: [scales.count], dtype: .u8)
        for (b, scale) in scales.enumerated() {
            s.mutableRaw.storeBytes(of: scale, toByteOffset: b, as: UInt8.self)
            for k in 0..<16 { blocks.mutableRaw.storeBytes(of: UInt8(k) | UInt8((15 - k) << 4), toByteOffset: b * 16 + k, as: UInt8.self) }
        }
        let out = try MXFP4Codec.dequantize(blocks: blocks, scales: s).floats()
        for (b, scale) in scales.enumerated() {
            for k in 0..<16 {
                let m = MXFP4.scaleValue(scale)
                #expect(out[b * 32 + 2 * k].bitPattern == (MXFP4.e2m1Table[k] * m).bitPattern)
                #expect(out[b * 32 + 2 * k + 1].bitPattern == (MXFP4.e2m1Table[15 - k] * m).bitPattern)
            }
        }
    }

    @Test func quantizeRepresentableValuesExactly() throws {
        // Values that are e2m1 x 2^e with max 6 x 2^e round-trip exactly, -0 included.
        var values = [Float](repeating: 0, count: 64)
        for j in 0..<32 { values[j] = MXFP4.e2m1Table[j % 16] * 4 }      // block 0: scale 2^2
        for j in 32..<64 { values[j] = MXFP4.e2m1Table[j % 16] / 1024 } // block 1: scale 2^-10
        let q = try MXFP4Codec.quantize(Tensor(values, shape: [2, 32]))
        #expect(q.scales.floats() == [129, 117])
        let back = try MXFP4Codec.dequantize(blocks: q.blocks, scales: q.scales).floats()
        for j in 0..<64 { #expect(back[j].bitPattern == values[j].bitPattern, "element \(j)") }
    }

    @Test func quantizeRoundsToNearestAndSaturates() throws {
        #expect(MXFP4Codec.nearestE2M1(0.2) == 0)
        #expect(MXFP4Codec.nearestE2M1(0.25) == 0)    // tie -> even code 0
        #expect(MXFP4Codec.nearestE2M1(0.75) == 2)    // tie between 0.5 (1) and 1 (2) -> 2
        #expect(MXFP4Codec.nearestE2M1(2.5) == 4)     // tie between 2 (4) and 3 (5) -> 4
        #expect(MXFP4Codec.nearestE2M1(5) == 6)       // tie between 4 (6) and 6 (7) -> 6
        #expect(MXFP4Codec.nearestE2M1(100) == 7)
        #expect(MXFP4Codec.nearestE2M1(-0.0) == 8)
        #expect(MXFP4Codec.nearestE2M1(-1.4) == 11)
        // A block whose max is 7 gets e = floor(log2 7) - 2 = 0: 7 saturates at 6.
        var v = [Float](repeating: 0, count: 32)
        v[3] = 7
        let q = try MXFP4Codec.quantize(Tensor(v, shape: [32]))
        #expect(q.scales.floats() == [127])
        #expect(try MXFP4Codec.dequantize(blocks: q.blocks, scales: q.scales).floats()[3] == 6)
        // Zero blocks get scale 0 and decode to zeros.
        let z = try MXFP4Codec.quantize(Tensor([Float](repeating: 0, count: 32), shape: [32]))
        #expect(z.scales.floats() == [0])
    }

    @Test func quantizeErrorIsBoundedByHalfAStep() throws {
        var rng = SystemRandomNumberGenerator()
        let values = (0..<(32 * 50)).map { _ in Float.random(in: -3...3, using: &rng) * Float.random(in: 0.01...10, using: &rng) }
        let q = try MXFP4Codec.quantize(Tensor(values, shape: [50, 32]))
        let back = try MXFP4Codec.dequantize(blocks: q.blocks, scales: q.scales).floats()
        for b in 0..<50 {
            let s = MXFP4.scaleValue(UInt8(q.scales.float(at: b)))
            for j in 0..<32 {
                let x = values[b * 32 + j] / s, y = back[b * 32 + j] / s
                // Scaled values lie in [-8, 8). Up to 6 the error is at most half a grid step (the
                // largest step is 2, between 4 and 6); beyond 6 they saturate at ±6.
                if abs(x) <= 6 {
                    #expect(abs(x - y) <= 1.0001, "block \(b) element \(j)")
                } else {
                    #expect(abs(y) == 6 && (x > 0) == (y > 0), "block \(b) element \(j)")
                }
            }
        }
    }

    @Test func rejectsBadShapes() {
        #expect(throws: OspreyError.self) { try MXFP4Codec.quantize(Tensor([1, 2, 3], shape: [3])) }
        #expect(throws: OspreyError.self) {
            try MXFP4Codec.dequantize(blocks: Tensor(zeros: [2, 16], dtype: .u8), scales: Tensor(zeros: [3], dtype: .u8))
        }
    }
}
