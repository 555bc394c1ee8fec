// The paged ops against their contiguous counterparts. Paged attention must equal `attention` run
// per sequence on that sequence's keys laid out in order: the cache's blocks are handed out in a
// random permutation, blocks a sliding window has released are -1 in the table and hold NaN in the
// cache (as do the spare blocks and the unused tail of each last block), so reading a key through
// a wrong row, or one no query may see, shows up as NaN or a mismatch. The Backend protocol's
// composed defaults (for backends without their own kernels) are checked against the same results.
// A bf16 cache: writeKV must store exactly `bf16Bits` of each value (ties to even, NaN, Inf,
// subnormals), and attention over it must equal, bit for bit, attention over an f32 cache holding
// the same rounded values (the widening is exact and the math is the f32 path's).
import Foundation
import Testing
import OspreyCore
@testable import OspreyCPU

/// A batch of sequences (context length, query count) in a randomly permuted paged cache.
struct PagedBatch {
    let layout: PagedLayout
    let q: Tensor, kCache: Tensor, vCache: Tensor
    /// Each sequence's keys and values in position order (NaN where the cache has released them).
    let keys: [Tensor], values: [Tensor]
    let queryStarts: [Int]

    init(sequences: [(context: Int, queries: Int)], blockSize bs: Int, Hq: Int, Hkv: Int, D: Int, window: Int?, seed: inout UInt64) {
        let spare = 3
        let blocks = sequences.map { ($0.context + bs - 1) / bs }
        let maxBlocks = blocks.max()! + 1  // one -1 entry past every sequence's end
        let total = blocks.reduce(spare, +)
        var order = Array(0..<total)
        for i in stride(from: total - 1, to: 0, by: -1) {  // Fisher-Yates on the test's LCG
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            order.swapAt(i, Int(seed >> 33) % (i + 1))
        }
        let row = Hkv * D
        let kCache = Tensor([Float](repeating: .nan, count: total * bs * row), shape: [total * bs, Hkv, D])
        let vCache = Tensor([Float](repeating: .nan, count: total * bs * row), shape: [total * bs, Hkv, D])
        var table = [Int32](repeating: -1, count: sequences.count * maxBlocks)
        var (keys, values, starts, next) = ([Tensor](), [Tensor](), [0], 0)
        for (s, (context, n)) in sequences.enumerated() {
            let k = randomTensor([context, Hkv, D], scale: 2, seed: &seed), v = randomTensor([context, Hkv, D], seed: &seed)
            let firstVisible = window.map { max(0, context - n - $0 + 1) } ?? 0
            for b in 0..<blocks[s] {
                let id = order[next]
                next += 1
                let positions = (b * bs)..<min(context, (b + 1) * bs)
                if positions.upperBound <= firstVisible {  // released: the table forgets it, the reference poisons it
                    for p in positions { for i in 0..<row { k.f32Pointer[p * row + i] = .nan; v.f32Pointer[p * row + i] = .nan } }
                    continue
                }
                table[s * maxBlocks + b] = Int32(id)
                for p in positions {
                    (kCache.f32Pointer + (id * bs + p - b * bs) * row).update(from: k.f32Pointer + p * row, count: row)
                    (vCache.f32Pointer + (id * bs + p - b * bs) * row).update(from: v.f32Pointer + p * row, count: row)
                }
            }
            keys.append(k); values.append(v); starts.append(starts.last! + n)
        }
        func i32(_ values: [Int32], _ shape: Shape) -> Tensor {
            let t = Tensor(zeros: shape, dtype: .i32)
            for (i, x) in values.enumerated() { t.i32Pointer[i] = x }
            return t
        }
        layout = PagedLayout(queryStarts: i32(starts.map { Int32($0) }, [sequences.count + 1]),
                             contextLengths: i32(sequences.map { Int32($0.context) }, [sequences.count]),
                             blockTables: i32(table, [sequences.count, maxBlocks]), blockSize: bs, sequenceCount: sequences.count,
                             maxQueryLength: sequences.map(\.queries).max()!, maxContextLength: sequences.map(\.context).max()!)
        q = randomTensor([starts.last!, Hq, D], scale: 2, seed: &seed)
        (self.kCache, self.vCache, self.keys, self.values, queryStarts) = (kCache, vCache, keys, values, starts)
    }

    /// `attention` per sequence on its contiguous keys, rows stacked like q's.
    func reference(_ cpu: CPUBackend, sinks: Tensor?, window: Int?, scale: Float) throws -> [Float] {
        var out: [Float] = []
        for s in 0..<keys.count {
            let n = queryStarts[s + 1] - queryStarts[s]
            let span = AttentionSpan(queryStart: keys[s].shape[0] - n, keyStart: 0, window: window)
            out += try cpu.attention(q: q.rows(queryStarts[s]..<queryStarts[s + 1]), k: keys[s], v: values[s], sinks: sinks, span: span, scale: scale).floats()
        }
        return out
    }
}

/// A backend with only the required ops (forwarded to the CPU), so the protocol's paged defaults run.
struct ComposedBackend: Backend {
    let cpu = CPUBackend()
    var device: Device { cpu.device }
    func upload(_ t: Tensor) throws -> Tensor { try cpu.upload(t) }
    func download(_ t: Tensor) throws -> Tensor { try cpu.download(t) }
    func makeBuffer(_ shape: Shape, dtype: DType) throws -> Tensor { try cpu.makeBuffer(shape, dtype: dtype) }
    func copyRows(_ s: Tensor, into d: Tensor, at row: Int) throws { try cpu.copyRows(s, into: d, at: row) }
    func embedding(_ table: Tensor, ids: [Int32]) throws -> Tensor { try cpu.embedding(table, ids: ids) }
    func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) throws -> Tensor { try cpu.rmsNorm(x, weight: weight, eps: eps) }
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor { try cpu.linear(x, weight: weight, bias: bias) }
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try cpu.add(a, b) }
    func rope(_ x: Tensor, start: Int, invFreq: Tensor, scaling: Float) throws -> Tensor { try cpu.rope(x, start: start, invFreq: invFreq, scaling: scaling) }
    func attention(q: Tensor, k: Tensor, v: Tensor, sinks: Tensor?, span: AttentionSpan, scale: Float) throws -> Tensor {
        try cpu.attention(q: q, k: k, v: v, sinks: sinks, span: span, scale: scale)
    }
    func topKSoftmax(_ logits: Tensor, k: Int) throws -> (ids: Tensor, weights: Tensor) { try cpu.topKSoftmax(logits, k: k) }
    func experts(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor) throws -> Tensor { try cpu.experts(x, bank: bank, ids: ids, weights: weights) }
    func argmax(_ logits: Tensor, into out: Tensor) throws { try cpu.argmax(logits, into: out) }
}

extension Tensor {
    /// The bit patterns of a bf16 tensor.
    var bits16: [UInt16] { (0..<count).map { bf16Pointer[$0] } }
}

func i32Tensor(_ values: [Int32]) -> Tensor {
    let t = Tensor(zeros: [values.count], dtype: .i32)
    for (i, x) in values.enumerated() { t.i32Pointer[i] = x }
    return t
}

func maxRelativeError(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count, !a.contains(where: \.isNaN), !b.contains(where: \.isNaN) else { return .nan }
    let d = zip(a, b).map { abs($0 - $1) }.max() ?? 0, m = b.map(abs).max() ?? 0
    return d / max(m, 1e-30)
}

@Suite struct PagedAttentionTests {
    let cpu = CPUBackend()
    /// Decode (one query) and chunked prefill (several, starting mid-sequence or at 0), of varied lengths.
    static let sequences: [(context: Int, queries: Int)] = [(37, 1), (50, 1), (23, 7), (64, 16), (5, 5), (90, 3), (17, 1)]

    struct Case: Sendable, CustomTestStringConvertible {
        let blockSize: Int, Hq: Int, Hkv: Int, D: Int, window: Int?, sinks: Bool
        var testDescription: String { "block \(blockSize), Hq \(Hq)/Hkv \(Hkv), D \(D), window \(window.map(String.init) ?? "-")\(sinks ? ", sinks" : "")" }
    }

    static let cases = [
        Case(blockSize: 16, Hq: 4, Hkv: 2, D: 16, window: nil, sinks: true),
        Case(blockSize: 4, Hq: 8, Hkv: 2, D: 8, window: 8, sinks: true),
        Case(blockSize: 16, Hq: 6, Hkv: 3, D: 12, window: 20, sinks: false),
        Case(blockSize: 4, Hq: 3, Hkv: 3, D: 5, window: nil, sinks: false),
        Case(blockSize: 4, Hq: 4, Hkv: 1, D: 8, window: 1, sinks: true),
    ]

    @Test(arguments: cases)
    func pagedEqualsContiguousAttentionPerSequence(c: Case) throws {
        var seed: UInt64 = 21
        let batch = PagedBatch(sequences: Self.sequences, blockSize: c.blockSize, Hq: c.Hq, Hkv: c.Hkv, D: c.D, window: c.window, seed: &seed)
        let sinks = c.sinks ? randomTensor([c.Hq], scale: 3, seed: &seed) : nil
        let scale = 1 / Float(c.D).squareRoot()
        if let window = c.window, window < 20 {  // the window really releases blocks
            #expect((0..<batch.layout.blockTables.count).contains { batch.layout.blockTables.i32Pointer[$0] == -1 && $0 % batch.layout.maxBlocks == 0 })
        }
        let reference = try batch.reference(cpu, sinks: sinks, window: c.window, scale: scale)
        let paged = try cpu.pagedAttention(q: batch.q, kCache: batch.kCache, vCache: batch.vCache, sinks: sinks,
                                           layout: batch.layout, window: c.window, scale: scale)
        #expect(paged.shape == [batch.q.shape[0], c.Hq * c.D])
        #expect(maxRelativeError(paged.floats(), reference) < 1e-5)
        let composed = try ComposedBackend().pagedAttention(q: batch.q, kCache: batch.kCache, vCache: batch.vCache, sinks: sinks,
                                                            layout: batch.layout, window: c.window, scale: scale)
        #expect(maxRelativeError(composed.floats(), reference) < 1e-5)
    }

    @Test(arguments: cases)
    func bf16CacheEqualsF32CacheOfTheRoundedValues(c: Case) throws {
        var seed: UInt64 = 31
        let batch = PagedBatch(sequences: Self.sequences, blockSize: c.blockSize, Hq: c.Hq, Hkv: c.Hkv, D: c.D, window: c.window, seed: &seed)
        let sinks = c.sinks ? randomTensor([c.Hq], scale: 3, seed: &seed) : nil
        let scale = 1 / Float(c.D).squareRoot()
        let (k16, v16) = (bf16Tensor(batch.kCache), bf16Tensor(batch.vCache))
        let (k32, v32) = (k16.toF32(), v16.toF32())
        // The poison is kept and the values are rounded.
        #expect(k32.floats().contains { $0.isNaN } && zip(k32.floats(), batch.kCache.floats()).contains { !$0.isNaN && $0 != $1 })
        func attend(_ b: any Backend, _ k: Tensor, _ v: Tensor) throws -> [Float] {
            try b.pagedAttention(q: batch.q, kCache: k, vCache: v, sinks: sinks, layout: batch.layout, window: c.window, scale: scale).floats()
        }
        let wide = try attend(cpu, k32, v32)
        #expect(!wide.contains { $0.isNaN })
        #expect(try attend(cpu, k16, v16) == wide)
        #expect(try attend(ComposedBackend(), k16, v16) == (try attend(ComposedBackend(), k32, v32)))
        #expect(maxRelativeError(try attend(ComposedBackend(), k16, v16), wide) < 1e-5)
        // Rounding moves the result, but not by much: the f32 cache's answer is near.
        #expect(maxRelativeError(wide, try attend(cpu, batch.kCache, batch.vCache)) < 2e-2)
        #expect(throws: OspreyError.self) { try attend(cpu, k16, v32) }
        #expect(throws: OspreyError.self) { try attend(ComposedBackend(), k16, v32) }
    }

    @Test func badLayoutsThrow() throws {
        var seed: UInt64 = 22
        let batch = PagedBatch(sequences: [(20, 1), (9, 3)], blockSize: 4, Hq: 2, Hkv: 1, D: 4, window: 6, seed: &seed)
        func attend(_ layout: PagedLayout, q: Tensor? = nil) throws {
            _ = try cpu.pagedAttention(q: q ?? batch.q, kCache: batch.kCache, vCache: batch.vCache, sinks: nil, layout: layout, window: 6, scale: 1)
        }
        try attend(batch.layout)
        #expect(throws: OspreyError.self) {
            try cpu.pagedAttention(q: batch.q, kCache: batch.kCache, vCache: batch.vCache, sinks: nil, layout: batch.layout, window: 0, scale: 1)
        }
        // Sequence 0 (position 19, window 6) sees positions 14...19: blocks 3 and 4, not block 2.
        var layout = batch.layout
        layout.blockTables = Tensor(storage: Storage(zeroedBytes: batch.layout.blockTables.byteCount), shape: batch.layout.blockTables.shape, dtype: .i32)
        layout.blockTables.mutableRaw.copyMemory(from: batch.layout.blockTables.raw, byteCount: batch.layout.blockTables.byteCount)
        #expect(layout.blockTables.i32Pointer[2] == -1)
        layout.blockTables.i32Pointer[3] = -1
        #expect(throws: OspreyError.self) { try attend(layout) }
        layout.blockTables.i32Pointer[3] = Int32(batch.kCache.shape[0] / 4)  // one block past the cache
        #expect(throws: OspreyError.self) { try attend(layout) }
        layout = batch.layout
        layout.maxQueryLength = 2  // sequence 1 has 3 queries
        #expect(throws: OspreyError.self) { try attend(layout) }
        layout = batch.layout
        layout.sequenceCount = 1
        #expect(throws: OspreyError.self) { try attend(layout) }
        #expect(throws: OspreyError.self) { try attend(batch.layout, q: batch.q.rows(0..<3)) }
    }

    @Test func writeKVFollowsSlotsAndSkipsNegativeOnes() throws {
        var seed: UInt64 = 23
        let k = randomTensor([6, 2, 4], seed: &seed), v = randomTensor([6, 2, 4], seed: &seed)
        let kCache = randomTensor([10, 2, 4], seed: &seed), vCache = randomTensor([10, 2, 4], seed: &seed)
        let (k0, v0) = (kCache.floats(), vCache.floats())
        let slots: [Int32] = [3, -1, 0, 9, -5, 7]
        let composed = (k: Tensor(k0, shape: [10, 2, 4]), v: Tensor(v0, shape: [10, 2, 4]))
        try cpu.writeKV(k: k, v: v, kCache: kCache, vCache: vCache, slots: i32Tensor(slots))
        try ComposedBackend().writeKV(k: k, v: v, kCache: composed.k, vCache: composed.v, slots: i32Tensor(slots))
        var (kWant, vWant) = (k0, v0)
        for (t, s) in slots.enumerated() where s >= 0 {
            kWant.replaceSubrange(Int(s) * 8..<Int(s) * 8 + 8, with: k.floats()[t * 8..<t * 8 + 8])
            vWant.replaceSubrange(Int(s) * 8..<Int(s) * 8 + 8, with: v.floats()[t * 8..<t * 8 + 8])
        }
        #expect(kCache.floats() == kWant && vCache.floats() == vWant)
        #expect(composed.k.floats() == kWant && composed.v.floats() == vWant)
        #expect(throws: OspreyError.self) { try cpu.writeKV(k: k, v: v, kCache: kCache, vCache: vCache, slots: i32Tensor([0, 1, 2, 3, 4, 10])) }
        #expect(throws: OspreyError.self) { try cpu.writeKV(k: k, v: v, kCache: kCache, vCache: vCache, slots: i32Tensor([0, 1])) }
    }

    @Test func writeKVIntoBF16RoundsToNearestEven() throws {
        var seed: UInt64 = 26
        let k = randomTensor([6, 2, 4], scale: 3, seed: &seed), v = randomTensor([6, 2, 4], seed: &seed)
        // Ties of both parities (to even: down from an even bf16, up from an odd one), NaN, ±Inf,
        // overflow to Inf, a subnormal, -0, and the largest finite bf16.
        let special: [UInt32] = [0x3F80_8000, 0x3F81_8000, 0xBF80_8000, 0xBF81_8000, 0x7FC0_0001, 0x7F80_0000, 0xFF80_0000,
                                 0x7F7F_FFFF, 0x0000_8001, 0x8000_0000, 0x7F7F_0000, 0x3F80_7FFF, 0x3F80_8001]
        for (i, bits) in special.enumerated() { k.f32Pointer[i < 8 ? i : 8 + i] = Float(bitPattern: bits) }  // rows 0 and 2
        let slots: [Int32] = [3, -1, 0, 9, -5, 7]
        let kCache = bf16Tensor(randomTensor([10, 2, 4], seed: &seed)), vCache = bf16Tensor(randomTensor([10, 2, 4], seed: &seed))
        let (k0, v0) = (kCache.bits16, vCache.bits16)
        let composed = (k: Tensor(zeros: [10, 2, 4], dtype: .bf16), v: Tensor(zeros: [10, 2, 4], dtype: .bf16))
        composed.k.mutableRaw.copyMemory(from: kCache.raw, byteCount: kCache.byteCount)
        composed.v.mutableRaw.copyMemory(from: vCache.raw, byteCount: vCache.byteCount)
        try cpu.writeKV(k: k, v: v, kCache: kCache, vCache: vCache, slots: i32Tensor(slots))
        try ComposedBackend().writeKV(k: k, v: v, kCache: composed.k, vCache: composed.v, slots: i32Tensor(slots))
        var (kWant, vWant) = (k0, v0)
        for (t, s) in slots.enumerated() where s >= 0 {
            kWant.replaceSubrange(Int(s) * 8..<Int(s) * 8 + 8, with: k.floats()[t * 8..<t * 8 + 8].map { bf16Bits($0) })
            vWant.replaceSubrange(Int(s) * 8..<Int(s) * 8 + 8, with: v.floats()[t * 8..<t * 8 + 8].map { bf16Bits($0) })
        }
        #expect(kCache.bits16 == kWant && vCache.bits16 == vWant)
        #expect(composed.k.bits16 == kWant && composed.v.bits16 == vWant)
        // The specials, spelled out: row 0 of k went to slot 3, row 2 to slot 0.
        #expect(Array(kCache.bits16[24..<32]) == [0x3F80, 0x3F82, 0xBF80, 0xBF82, 0x7FC0, 0x7F80, 0xFF80, 0x7F80])
        #expect(Array(kCache.bits16[0..<5]) == [0x0001, 0x8000, 0x7F7F, 0x3F80, 0x3F81])
        #expect(throws: OspreyError.self) { try cpu.writeKV(k: k, v: v, kCache: kCache, vCache: vCache.toF32(), slots: i32Tensor(slots)) }
        #expect(throws: OspreyError.self) { try cpu.writeKV(k: bf16Tensor(k), v: bf16Tensor(v), kCache: kCache, vCache: vCache, slots: i32Tensor(slots)) }
        #expect(throws: OspreyError.self) { try ComposedBackend().writeKV(k: k, v: v, kCache: kCache, vCache: vCache.toF32(), slots: i32Tensor(slots)) }
    }

    @Test func ropeAtPositionsMatchesRopeAtStart() throws {
        var seed: UInt64 = 24
        let x = randomTensor([5, 3, 8], seed: &seed)
        let invFreq = Tensor([1, 0.1, 0.01, 0.001], shape: [4])
        let consecutive = try cpu.rope(x, positions: i32Tensor([40, 41, 42, 43, 44]), invFreq: invFreq, scaling: 1.5)
        #expect(consecutive.floats() == (try cpu.rope(x, start: 40, invFreq: invFreq, scaling: 1.5)).floats())
        let positions: [Int32] = [7, 0, 4095, 3, 100_000]
        let scattered = try cpu.rope(x, positions: i32Tensor(positions), invFreq: invFreq, scaling: 1.5).floats()
        let composed = try ComposedBackend().rope(x, positions: i32Tensor(positions), invFreq: invFreq, scaling: 1.5).floats()
        for (t, p) in positions.enumerated() {
            let row = try cpu.rope(x.rows(t..<(t + 1)), start: Int(p), invFreq: invFreq, scaling: 1.5).floats()
            #expect(Array(scattered[(t * 24)..<(t * 24 + 24)]) == row)
            #expect(Array(composed[(t * 24)..<(t * 24 + 24)]) == row)
        }
        #expect(throws: OspreyError.self) { try cpu.rope(x, positions: i32Tensor([1, 2]), invFreq: invFreq, scaling: 1) }
    }

    @Test func gatherRowsPicksRows() throws {
        var seed: UInt64 = 25
        let x = randomTensor([7, 5], seed: &seed)
        let rows: [Int32] = [6, 0, 6, 3]
        let want = rows.flatMap { Array(x.floats()[Int($0) * 5..<Int($0) * 5 + 5]) }
        let got = try cpu.gatherRows(x, rows: i32Tensor(rows))
        #expect(got.shape == [4, 5] && got.floats() == want)
        #expect(try ComposedBackend().gatherRows(x, rows: i32Tensor(rows)).floats() == want)
        #expect(throws: OspreyError.self) { try cpu.gatherRows(x, rows: i32Tensor([7])) }
        #expect(throws: OspreyError.self) { try cpu.gatherRows(x, rows: i32Tensor([-1])) }
    }
}
