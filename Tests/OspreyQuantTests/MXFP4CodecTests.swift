// MXFP4 quantize/dequantize: both scale rules (OCP; transformers/triton ROUND_UP), rounding, odd
// scales and every nibble. MXFP4RuleVectorTests checks both rules against numpy-made vectors.
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
        let q = try MXFP4Codec.quantize(Tensor(values, shape: [2, 32]), rule: .ocp)
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
        let q = try MXFP4Codec.quantize(Tensor(v, shape: [32]), rule: .ocp)
        #expect(q.scales.floats() == [127])
        #expect(try MXFP4Codec.dequantize(blocks: q.blocks, scales: q.scales).floats()[3] == 6)
        // Zero blocks get scale 0 and decode to zeros.
        let z = try MXFP4Codec.quantize(Tensor([Float](repeating: 0, count: 32), shape: [32]), rule: .ocp)
        #expect(z.scales.floats() == [0])
    }

    @Test func quantizeErrorIsBoundedByHalfAStep() throws {
        var rng = SystemRandomNumberGenerator()
        let values = (0..<(32 * 50)).map { _ in Float.random(in: -3...3, using: &rng) * Float.random(in: 0.01...10, using: &rng) }
        let q = try MXFP4Codec.quantize(Tensor(values, shape: [50, 32]), rule: .ocp)
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

    @Test func transformersRuleRoundsTheScaleUpAndTiesAway() throws {
        #expect(MXFP4Codec.nearestE2M1TiesAway(0.2) == 0)
        #expect(MXFP4Codec.nearestE2M1TiesAway(0.25) == 1)   // ties away from zero
        #expect(MXFP4Codec.nearestE2M1TiesAway(0.75) == 2)
        #expect(MXFP4Codec.nearestE2M1TiesAway(1.25) == 3)
        #expect(MXFP4Codec.nearestE2M1TiesAway(2.5) == 5)
        #expect(MXFP4Codec.nearestE2M1TiesAway(5) == 7)
        #expect(MXFP4Codec.nearestE2M1TiesAway(-3.5) == 14)
        #expect(MXFP4Codec.nearestE2M1TiesAway(-0.1) == 8)   // -0 keeps its sign
        // max 7: scale 2^ceil(log2(7/6)) = 2, so 7/2 = 3.5 -> 4 (not clipped, unlike OCP's 6).
        var v = [Float](repeating: 0, count: 32)
        v[3] = 7
        let q = try MXFP4Codec.quantize(Tensor(v, shape: [32]))
        #expect(q.scales.floats() == [128])
        #expect(try MXFP4Codec.dequantize(blocks: q.blocks, scales: q.scales).floats()[3] == 8)
        // max exactly 6 * 2^k keeps scale 2^k; an all-zero block gets byte 0.
        v[3] = 12
        #expect(try MXFP4Codec.quantize(Tensor(v, shape: [32])).scales.floats() == [128])
        #expect(try MXFP4Codec.quantize(Tensor([Float](repeating: 0, count: 32), shape: [32])).scales.floats() == [0])
        // f32 input is rounded to bf16 first, as transformers' quantize_to_mxfp4 does.
        v[3] = 6.01  // bf16(6.01) = 6.0 -> scale 1; the f32 value alone would give 2
        #expect(try MXFP4Codec.quantize(Tensor(v, shape: [32])).scales.floats() == [127])
    }

    @Test func transformersRuleErrorIsBoundedWithoutClipping() throws {
        var rng = SystemRandomNumberGenerator()
        let values = (0..<(32 * 50)).map { _ in Float(bf16: Float.random(in: -3...3, using: &rng) * Float.random(in: 0.01...10, using: &rng)) }
        let q = try MXFP4Codec.quantize(Tensor(values, shape: [50, 32]))
        let back = try MXFP4Codec.dequantize(blocks: q.blocks, scales: q.scales).floats()
        for b in 0..<50 {
            let s = MXFP4.scaleValue(UInt8(q.scales.float(at: b)))
            let amax = values[(b * 32)..<(b * 32 + 32)].map(abs).max()!
            #expect(amax / s <= 6 && amax / s > 3, "block \(b): the scale rounds amax/6 up to a power of two")
            for j in 0..<32 {
                let x = values[b * 32 + j] / s, y = back[b * 32 + j] / s
                #expect(abs(x - y) <= 1, "block \(b) element \(j)")  // half the widest grid step (4 -> 6)
            }
        }
    }

    @Test func quantizeRejectsNonFiniteValues() {
        var v = [Float](repeating: 1, count: 32)
        v[9] = .nan
        #expect(throws: OspreyError.self) { try MXFP4Codec.quantize(Tensor(v, shape: [32])) }
        v[9] = .infinity
        #expect(throws: OspreyError.self) { try MXFP4Codec.quantize(Tensor(v, shape: [32]), rule: .ocp) }
    }

    @Test func rejectsBadShapes() {
        #expect(throws: OspreyError.self) { try MXFP4Codec.quantize(Tensor([1, 2, 3], shape: [3])) }
        #expect(throws: OspreyError.self) {
            try MXFP4Codec.dequantize(blocks: Tensor(zeros: [2, 16], dtype: .u8), scales: Tensor(zeros: [3], dtype: .u8))
        }
    }
}

extension Float {
    /// The value rounded to bf16.
    init(bf16 x: Float) { self = floatFromBF16(bf16Bits(x)) }
}
