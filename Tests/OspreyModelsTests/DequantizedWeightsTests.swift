// The `dequantize` load option against its definition: `DequantizedWeights` shows each MXFP4 pair
// `NAME_blocks`/`NAME_scales` as `NAME` = bf16(transpose(MXFP4Codec.dequantize(blocks, scales))),
// bit for bit, on random blocks holding every nibble in every position and the scale bytes at the
// edges (0 is subnormal, 255 gives inf and NaN), for several shapes, square or not, with and
// without an expert dimension. Also the parallel `transposeLastTwo` against a naive transpose.
import Foundation
import Testing
import OspreyCore
import OspreyQuant
@testable import OspreyModels

@Suite struct DequantizedWeightsTests {
    /// Tensors held in memory.
    struct Tensors: WeightSource {
        let map: [String: Tensor]
        var tensorNames: [String] { map.keys.sorted() }
        var totalBytes: Int { map.values.reduce(0) { $0 + $1.byteCount } }
        func contains(_ name: String) -> Bool { map[name] != nil }
        func tensor(_ name: String) throws -> Tensor {
            guard let t = map[name] else { throw ModelError.missingWeight(name) }
            return t
        }
    }

    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
    }

    static let edgeScales: [UInt8] = [0, 1, 126, 127, 128, 254, 255]

    /// Blocks [..., rows, nb, 16] and scales [..., rows, nb] for `lead` leading dimensions: the
    /// nibble at position j of even row r's blocks is (r / 2 + j) & 15 (so 32 rows hold every
    /// nibble at every position), random on odd rows; every other scale is an edge byte.
    func packed(_ lead: [Int], rows: Int, nb: Int, seed: UInt64) -> (blocks: Tensor, scales: Tensor) {
        var rng = Random(state: seed)
        let scales = Tensor(zeros: Shape(lead + [rows, nb]), dtype: .u8)
        let blocks = Tensor(zeros: Shape(lead + [rows, nb, MXFP4.bytesPerBlock]), dtype: .u8)
        let (s, b) = (scales.mutableRaw.assumingMemoryBound(to: UInt8.self), blocks.mutableRaw.assumingMemoryBound(to: UInt8.self))
        for i in 0..<scales.count {
            let r = i / nb
            s[i] = i % 2 == 0 ? Self.edgeScales[(i / 2) % Self.edgeScales.count] : UInt8(truncatingIfNeeded: rng.next())
            for k in 0..<MXFP4.bytesPerBlock {
                b[i * MXFP4.bytesPerBlock + k] = r % 2 == 0
                    ? UInt8((r / 2 + 2 * k) & 15) | UInt8((r / 2 + 2 * k + 1) & 15) << 4
                    : UInt8(truncatingIfNeeded: rng.next())
            }
        }
        return (blocks, scales)
    }

    @Test(arguments: [([Int](), 1, 1), ([], 33, 2), ([2], 3, 1), ([3], 40, 2), ([2], 33, 5), ([1], 64, 4), ([4], 70, 3), ([2, 3], 17, 2)])
    func expandedTensorIsTheCodecsTransposedAndRoundedBitForBit(lead: [Int], rows: Int, nb: Int) throws {
        let (blocks, scales) = packed(lead, rows: rows, nb: nb, seed: UInt64(rows * 131 + nb))
        let other = Tensor([1, 2, 3], shape: [3])
        let source = Tensors(map: ["mlp.w_blocks": blocks, "mlp.w_scales": scales, "norm": other])
        let weights = try DequantizedWeights(source)
        #expect(weights.tensorNames == ["norm", "mlp.w"])
        #expect(weights.contains("mlp.w") && !weights.contains("mlp.w_blocks") && !weights.contains("mlp.w_scales"))
        #expect(try weights.tensor("norm").floats() == [1, 2, 3])
        let cols = nb * MXFP4.blockSize
        #expect(weights.totalBytes == other.byteCount + 2 * scales.count * MXFP4.blockSize)  // 2 bytes per value

        let got = try weights.tensor("mlp.w")
        #expect(got.dtype == .bf16 && got.shape == Shape(lead + [cols, rows]))
        let reference = try MXFP4Codec.dequantize(blocks: blocks, scales: scales)  // f32 [..., rows, cols]
        let (g, f) = (got.raw.assumingMemoryBound(to: UInt16.self), reference.raw.assumingMemoryBound(to: Float.self))
        var mismatches = 0
        for n in 0..<(scales.count / (rows * nb)) {
            for o in 0..<rows {
                for i in 0..<cols {
                    let want = bf16Bits(f[(n * rows + o) * cols + i])
                    if g[(n * cols + i) * rows + o] != want { mismatches += 1 }
                }
            }
        }
        #expect(mismatches == 0)
    }

    @Test func everyNibbleAtEveryPositionUnderEveryEdgeScale() throws {
        // One matrix per edge scale, each of 32 rows x 1 block (its even rows hold the pattern).
        let E = Self.edgeScales.count
        let (blocks, scales) = packed([E], rows: 32, nb: 1, seed: 3)
        for e in 0..<E {
            for r in 0..<32 { scales.mutableRaw.storeBytes(of: Self.edgeScales[e], toByteOffset: e * 32 + r, as: UInt8.self) }
        }
        let got = try DequantizedWeights(Tensors(map: ["x_blocks": blocks, "x_scales": scales])).tensor("x")
        let reference = try MXFP4Codec.dequantize(blocks: blocks, scales: scales)
        var nanCount = 0, infCount = 0, subnormalCount = 0
        for e in 0..<E {
            for o in 0..<32 {
                for i in 0..<32 {
                    let v = reference.float(at: (e * 32 + o) * 32 + i)
                    let bits = got.raw.load(fromByteOffset: 2 * ((e * 32 + i) * 32 + o), as: UInt16.self)
                    #expect(bits == bf16Bits(v), "scale \(Self.edgeScales[e]) row \(o) value \(i)")
                    if v.isNaN { nanCount += 1 } else if v.isInfinite { infCount += 1 } else if v.isSubnormal { subnormalCount += 1 }
                }
            }
        }
        #expect(nanCount > 0 && infCount > 0 && subnormalCount > 0)
    }

    @Test func mismatchedBlocksAndScalesAreATypedError() throws {
        let (blocks, _) = packed([2], rows: 4, nb: 2, seed: 1)
        let (_, scales) = packed([2], rows: 4, nb: 3, seed: 1)
        let weights = try DequantizedWeights(Tensors(map: ["w_blocks": blocks, "w_scales": scales]))
        #expect(throws: ModelError.self) { try weights.tensor("w") }
    }

    @Test(arguments: [DType.bf16, .f32, .u8, .i64])
    func parallelTransposeEqualsTheNaiveOne(dtype: DType) {
        var rng = Random(state: 9)
        for dims in [[1, 1], [33, 70], [3, 33, 70], [2, 64, 32], [5, 1, 40], [2, 2, 31, 65]] {
            let t = Tensor(zeros: Shape(dims), dtype: dtype)
            let size = dtype.byteCount(elements: 1)
            for i in 0..<(t.count * size) { t.mutableRaw.storeBytes(of: UInt8(truncatingIfNeeded: rng.next()), toByteOffset: i, as: UInt8.self) }
            let out = transposeLastTwo(t)
            let (a, b) = (dims[dims.count - 2], dims[dims.count - 1])
            var expected = dims
            (expected[dims.count - 2], expected[dims.count - 1]) = (b, a)
            #expect(out.shape == Shape(expected))
            var same = true
            for n in 0..<(t.count / (a * b)) {
                for i in 0..<a {
                    for j in 0..<b where memcmp(out.raw + ((n * b + j) * a + i) * size, t.raw + ((n * a + i) * b + j) * size, size) != 0 {
                        same = false
                    }
                }
            }
            #expect(same, "\(dtype) \(dims)")
        }
    }
}
