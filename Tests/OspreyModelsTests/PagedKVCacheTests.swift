// PagedKVCache's element type: bf16 by default, f32 on request, nothing else; a block's bytes as
// the engine counts them match what the pool allocates; and a layer's attention through the cache
// stores the step's keys and values rounded to bf16 and attends over those rounded values; its
// fused rotation + store (ropeAttention, one launch on a GPU) equals rope, then attention.
import Foundation
import Testing
import OspreyCore
import OspreyCPU
@testable import OspreyModels

@Suite struct PagedKVCacheTests {
    let cpu = CPUBackend()
    /// Two groups of two layers each: layer l is (group l % 2, index l / 2).
    let slots = [(group: 0, index: 0), (group: 1, index: 0), (group: 0, index: 1), (group: 1, index: 1)]

    @Test func thePoolIsBF16UnlessAskedAndItsBytesAreCounted() throws {
        let defaulted = try PagedKVCache(layerSlots: slots, blockCount: 5, blockSize: 4, rowShape: [2, 8], backend: cpu)
        #expect(defaulted.dtype == .bf16)
        for dtype in PagedKVCache.dtypes {
            let cache = try PagedKVCache(layerSlots: slots, blockCount: 5, blockSize: 4, rowShape: [2, 8], dtype: dtype, backend: cpu)
            #expect(cache.keys.count == 2 && cache.values.count == 2)
            #expect((cache.keys + cache.values).allSatisfy { $0.dtype == dtype && $0.shape == [20, 2, 8] })
            let allocated = (cache.keys + cache.values).reduce(0) { $0 + $1.byteCount }
            #expect(PagedKVCache.bytesPerBlock(groupSize: 2, blockSize: 4, rowShape: [2, 8], dtype: dtype) * 5 == allocated)
        }
        #expect(PagedKVCache.bytesPerBlock(groupSize: 2, blockSize: 4, rowShape: [2, 8], dtype: .f32)
                == 2 * PagedKVCache.bytesPerBlock(groupSize: 2, blockSize: 4, rowShape: [2, 8], dtype: .bf16))
        for dtype in [DType.f16, .i32] {
            #expect(throws: CacheError.self) { try PagedKVCache(layerSlots: slots, blockCount: 5, blockSize: 4, rowShape: [2, 8], dtype: dtype, backend: cpu) }
        }
    }

    func i32(_ v: [Int32]) -> Tensor {
        let t = Tensor(zeros: [v.count], dtype: .i32)
        for (i, x) in v.enumerated() { t.mutableRaw.storeBytes(of: x, toByteOffset: 4 * i, as: Int32.self) }
        return t
    }

    /// One sequence of 3 tokens in block 1 (rows 4..<7) of group 1 (layer 3 is (group 1, index 1)), at `positions`.
    func threeTokens(at positions: [Int32]) -> PagedStep {
        let layout = PagedLayout(queryStarts: i32([0, 3]), contextLengths: i32([3]), blockTables: i32([1]).reshaped([1, 1]),
                                 blockSize: 4, sequenceCount: 1, maxQueryLength: 3, maxContextLength: 3)
        return PagedStep(positions: i32(positions), slots: [i32([-1, -1, -1]), i32([4, 5, 6])], layouts: [layout, layout])
    }

    func values(_ T: Int, _ heads: Int, _ D: Int, _ salt: Float) -> Tensor {
        Tensor((0..<(T * heads * D)).map { Float($0) * 0.0137 * salt + 1 / 3 }, shape: [T, heads, D])
    }

    @Test func ropeAttentionEqualsRopeThenAttention() throws {
        let (T, Hq, Hkv, D) = (3, 4, 2, 8)
        let (q, k, v) = (values(T, Hq, D, 1), values(T, Hkv, D, -1.7), values(T, Hkv, D, 2.3))
        let invFreq = Tensor((0..<(D / 2)).map { Float(1 / pow(10_000.0, Double(2 * $0) / Double(D))) }, shape: [D / 2])
        for dtype in PagedKVCache.dtypes {
            let fused = try PagedKVCache(layerSlots: slots, blockCount: 3, blockSize: 4, rowShape: [Hkv, D], dtype: dtype, backend: cpu)
            let plain = try PagedKVCache(layerSlots: slots, blockCount: 3, blockSize: 4, rowShape: [Hkv, D], dtype: dtype, backend: cpu)
            (fused.step, plain.step) = (threeTokens(at: [5, 6, 7]), threeTokens(at: [5, 6, 7]))
            let a = try fused.ropeAttention(layer: 3, q: q, k: k, v: v, invFreq: invFreq, scaling: 1.2, sinks: nil, window: nil, scale: 0.3, on: cpu)
            let (rq, rk) = try plain.rope(q, k, invFreq: invFreq, scaling: 1.2, on: cpu)
            #expect(rk.floats() != k.floats())
            let b = try plain.attention(layer: 3, q: rq, k: rk, v: v, sinks: nil, window: nil, scale: 0.3, on: cpu)
            #expect(a.floats() == b.floats())
            #expect(fused.keys[1].floats() == plain.keys[1].floats() && fused.values[1].floats() == plain.values[1].floats())
        }
    }

    @Test func attentionStoresRoundedKeysAndAttendsOverThem() throws {
        let (T, Hq, Hkv, D) = (3, 4, 2, 8)
        let step = threeTokens(at: [0, 1, 2])
        let (q, k, v) = (values(T, Hq, D, 1), values(T, Hkv, D, -1.7), values(T, Hkv, D, 2.3))
        let rounded = { (t: Tensor) in Tensor(t.floats().map { floatFromBF16(bf16Bits($0)) }, shape: t.shape) }
        #expect(rounded(k).floats() != k.floats())

        let half = try PagedKVCache(layerSlots: slots, blockCount: 3, blockSize: 4, rowShape: [Hkv, D], backend: cpu)
        let full = try PagedKVCache(layerSlots: slots, blockCount: 3, blockSize: 4, rowShape: [Hkv, D], dtype: .f32, backend: cpu)
        (half.step, full.step) = (step, step)
        let a = try half.attention(layer: 3, q: q, k: k, v: v, sinks: nil, window: nil, scale: 0.3, on: cpu)
        let b = try full.attention(layer: 3, q: q, k: rounded(k), v: rounded(v), sinks: nil, window: nil, scale: 0.3, on: cpu)
        #expect(a.floats() == b.floats())
        let stored = half.keys[1].rows(4..<7)
        #expect((0..<stored.count).allSatisfy { stored.raw.load(fromByteOffset: 2 * $0, as: UInt16.self) == bf16Bits(k.floats()[$0]) })
        #expect(half.keys[0].floats().allSatisfy { $0 == 0 } && half.keys[1].rows(0..<4).floats().allSatisfy { $0 == 0 })
    }
}
