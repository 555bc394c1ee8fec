// The paged ops of continuous batching on the CPU: rotary embeddings at per-row positions, writing
// a step's keys and values into cache slots, attention over a batch of sequences whose keys sit in
// fixed-size blocks of a shared cache (found through each sequence's block table), and gathering
// rows. The attention math is CPUAttention.swift's, key by key in the same order; only where a key
// is read from differs. The cache may hold f32 or bf16: bf16 keys and values are rounded to
// nearest even as they are written (`bf16Bits`) and widened to f32, a row at a time, as they are
// read, so attention over a bf16 cache equals attention over an f32 cache holding the same rounded
// values bit for bit. Every i32 input is checked here (the oracle throws on a bad table where a
// GPU kernel can only skip), so a model runner's mistakes surface in the CPU tests.
import Foundation
import OspreyCore

extension CPUBackend {
    public func rope(_ x: Tensor, positions: Tensor, invFreq frequencies: Tensor, scaling: Float) throws -> Tensor {
        let invFreq = frequencies.floats()
        guard x.shape.rank == 3, x.shape[2] == 2 * invFreq.count, positions.dtype == .i32, positions.shape == [x.shape[0]] else {
            throw OspreyError.invalidTensor("rope of \(x.shape) with \(invFreq.count) frequencies at \(positions.dtype) positions \(positions.shape)")
        }
        let pos = positions.i32Pointer
        return Self.rotate(x, invFreq: invFreq, scaling: scaling) { Int(pos[$0]) }
    }

    public func writeKV(k: Tensor, v: Tensor, kCache: Tensor, vCache: Tensor, slots: Tensor) throws {
        guard k.shape.rank == 3, k.shape == v.shape, kCache.shape.rank == 3, kCache.shape == vCache.shape,
              k.shape.dims.dropFirst() == kCache.shape.dims.dropFirst(), k.dtype == .f32, v.dtype == .f32,
              kCache.dtype == vCache.dtype, kCache.dtype == .f32 || kCache.dtype == .bf16,
              slots.dtype == .i32, slots.shape == [k.shape[0]] else {
            throw OspreyError.invalidTensor("writeKV of k \(k.dtype) \(k.shape), v \(v.dtype) \(v.shape) into \(kCache.dtype) \(kCache.shape) / \(vCache.dtype) \(vCache.shape) at \(slots.dtype) slots \(slots.shape)")
        }
        let (T, rows, W) = (k.shape[0], kCache.shape[0], k.count / max(k.shape[0], 1))
        let slot = slots.i32Pointer
        if let bad = (0..<T).first(where: { Int(slot[$0]) >= rows }) {
            throw OspreyError.invalidArgument("writeKV: slot \(slot[bad]) of row \(bad) outside a cache of \(rows) rows")
        }
        for t in 0..<T where slot[t] >= 0 {
            let r = Int(slot[t])
            if kCache.dtype == .bf16 {
                let (kc, vc) = (kCache.bf16Pointer + r * W, vCache.bf16Pointer + r * W)
                for i in 0..<W { kc[i] = bf16Bits(k.f32Pointer[t * W + i]); vc[i] = bf16Bits(v.f32Pointer[t * W + i]) }
            } else {
                (kCache.f32Pointer + r * W).update(from: k.f32Pointer + t * W, count: W)
                (vCache.f32Pointer + r * W).update(from: v.f32Pointer + t * W, count: W)
            }
        }
    }

    public func gatherRows(_ x: Tensor, rows: Tensor) throws -> Tensor {
        guard x.shape.rank == 2, x.dtype == .f32, rows.dtype == .i32, rows.shape.rank == 1 else {
            throw OspreyError.invalidTensor("gatherRows of \(x.dtype) \(x.shape) at \(rows.dtype) rows \(rows.shape)")
        }
        let (T, H, R) = (x.shape[0], x.shape[1], rows.count)
        let index = rows.i32Pointer
        let out = Tensor(zeros: [R, H], dtype: .f32)
        for i in 0..<R {
            guard index[i] >= 0 && Int(index[i]) < T else { throw OspreyError.invalidArgument("gatherRows: row \(index[i]) of a \(T)-row tensor") }
            (out.f32Pointer + i * H).update(from: x.f32Pointer + Int(index[i]) * H, count: H)
        }
        return out
    }

    public func pagedAttention(q: Tensor, kCache: Tensor, vCache: Tensor, sinks: Tensor?, layout: PagedLayout, window: Int?, scale: Float) throws -> Tensor {
        guard q.shape.rank == 3, kCache.shape.rank == 3, kCache.shape == vCache.shape, q.shape[2] == kCache.shape[2],
              kCache.shape[1] > 0, q.shape[1] % kCache.shape[1] == 0, q.dtype == .f32, kCache.dtype == vCache.dtype,
              kCache.dtype == .f32 || kCache.dtype == .bf16 else {
            throw OspreyError.invalidTensor("pagedAttention of q \(q.dtype) \(q.shape) over caches \(kCache.dtype) \(kCache.shape) / \(vCache.shape)")
        }
        let (T, Hq, D) = (q.shape[0], q.shape[1], q.shape[2])
        let (rows, Hkv) = (kCache.shape[0], kCache.shape[1])
        let group = Hq / Hkv
        if let sinks, sinks.count != Hq { throw OspreyError.invalidTensor("sinks \(sinks.shape) for \(Hq) heads") }
        let pages = try HostPages(layout, queries: T, cacheRows: rows, window: window)
        let sink = sinks?.toF32().floats()
        let out = Tensor(zeros: [T, Hq * D], dtype: .f32)
        let (qp, op, kp, vp) = (q.f32Pointer, out.f32Pointer, kCache.mutableRaw, vCache.mutableRaw)
        let widen = kCache.dtype == .bf16
        parallelFor(T * Hq) { pairs in
            var logits = [Float](repeating: 0, count: layout.maxContextLength)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: D)  // a bf16 row widened
            defer { scratch.deallocate() }
            // The D values from element r of a cache, as f32: in place, or widened into scratch.
            func row(_ cache: UnsafeMutableRawPointer, _ r: Int) -> UnsafePointer<Float> {
                guard widen else { return UnsafePointer(cache.assumingMemoryBound(to: Float.self) + r) }
                let b = cache.assumingMemoryBound(to: UInt16.self) + r
                for d in 0..<D { scratch[d] = floatFromBF16(b[d]) }
                return UnsafePointer(scratch)
            }
            for pair in pairs {
                let (t, h) = (pair / Hq, pair % Hq)
                let kvh = h / group
                let (s, keys) = pages.query[t]
                let qrow = qp + (t * Hq + h) * D
                var m = sink?[h] ?? -Float.infinity
                for j in keys {
                    logits[j - keys.lowerBound] = dot(qrow, row(kp, (pages.row(s, j) * Hkv + kvh) * D), D) * scale
                    m = max(m, logits[j - keys.lowerBound])
                }
                var denom: Float = sink.map { Foundation.exp($0[h] - m) } ?? 0
                let orow = op + (t * Hq + h) * D
                for j in keys {
                    let p = Foundation.exp(logits[j - keys.lowerBound] - m)
                    denom += p
                    let vrow = row(vp, (pages.row(s, j) * Hkv + kvh) * D)
                    for d in 0..<D { orow[d] += p * vrow[d] }
                }
                for d in 0..<D { orow[d] /= denom }
            }
        }
        return out
    }
}

/// A paged layout read on the host and checked: for each query row its sequence and visible key
/// positions, and the cache row of each (sequence, position) a query can see.
struct HostPages {
    /// Per query row t: its sequence and the positions of the keys it sees (never empty: its own).
    var query: [(sequence: Int, keys: ClosedRange<Int>)] = []
    private let table: [Int]
    private let blockSize: Int, maxBlocks: Int

    init(_ layout: PagedLayout, queries T: Int, cacheRows: Int, window: Int?) throws {
        try layout.validate()
        if let window, window < 1 { throw OspreyError.invalidArgument("pagedAttention: window \(window)") }
        let (S, bs, maxBlocks) = (layout.sequenceCount, layout.blockSize, layout.maxBlocks)
        let starts = (0...S).map { Int(layout.queryStarts.i32Pointer[$0]) }
        let lengths = (0..<S).map { Int(layout.contextLengths.i32Pointer[$0]) }
        table = (0..<(S * maxBlocks)).map { Int(layout.blockTables.i32Pointer[$0]) }
        (blockSize, self.maxBlocks) = (bs, maxBlocks)
        guard starts[0] == 0, starts[S] == T else {
            throw OspreyError.invalidArgument("pagedAttention: queryStarts run \(starts[0]) ..< \(starts[S]) for \(T) query rows")
        }
        for s in 0..<S {
            let (n, context) = (starts[s + 1] - starts[s], lengths[s])
            guard n >= 0, n <= layout.maxQueryLength, n <= context, context <= layout.maxContextLength else {
                throw OspreyError.invalidArgument("pagedAttention: sequence \(s) has \(n) queries and \(context) keys (maxQueryLength \(layout.maxQueryLength), maxContextLength \(layout.maxContextLength))")
            }
            guard n > 0 else { continue }
            for i in 0..<n {
                let p = context - n + i
                query.append((s, (window.map { max(0, p - $0 + 1) } ?? 0)...p))
            }
            // Every block some query of s sees must be in the cache.
            for b in (query[starts[s]].keys.lowerBound / bs)...((context - 1) / bs) {
                let id = table[s * maxBlocks + b]
                guard id >= 0, (id + 1) * bs <= cacheRows else {
                    throw OspreyError.invalidArgument("pagedAttention: sequence \(s), block \(b) (positions \(b * bs)..<\((b + 1) * bs)) maps to block \(id) of a cache of \(cacheRows) rows")
                }
            }
        }
    }

    /// The cache row of position `p` of sequence `s`.
    func row(_ s: Int, _ p: Int) -> Int { table[s * maxBlocks + p / blockSize] * blockSize + p % blockSize }
}

extension Tensor {
    var i32Pointer: UnsafeMutablePointer<Int32> { mutableRaw.assumingMemoryBound(to: Int32.self) }
    var bf16Pointer: UnsafeMutablePointer<UInt16> { mutableRaw.assumingMemoryBound(to: UInt16.self) }
}
