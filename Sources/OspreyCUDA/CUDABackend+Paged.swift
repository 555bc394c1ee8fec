// Launchers for the paged ops of continuous batching: Kernels/paged_attention.cu (write_kv,
// paged_rows, paged_prefill, paged_merge) and paged_attention_mma.cu (their tensor-core twins
// paged_mma and paged_prefill_mma), rope_positions and rope_write_kv (RoPE fused with the cache
// store) in rope.cu, and gatherRows on the embedding gather of elementwise.cu. The i32 metadata never
// leaves the device: grids are sized from the layout's host values (upper bounds), and blocks
// with nothing to do return at once, so no launch here synchronises with the host or allocates
// beyond the step workspace. The cache is f32 or bf16; each cache kernel is picked by its dtype
// (the _bf16 variants for bf16).
import OspreyCore

extension CUDABackend {
    /// Sequences with at most this many queries (decode, short runs) take paged_rows, one block per
    /// query row and kv head; longer ones take paged_prefill, one thread per query.
    static let pagedRowsLimit = 8
    /// paged_rows splits the keys of a pure decode step until about this many blocks run (two per
    /// SM of an H100/H200), each split at least 128 keys long.
    static let pagedTargetBlocks = 264

    // MARK: - rope.cu

    public func rope(_ x: Tensor, positions: Tensor, invFreq: Tensor, scaling: Float) throws -> Tensor {
        for t in [x, positions, invFreq] { try requireDevice(t, "rope") }
        guard x.shape.rank == 3, x.dtype == .f32, x.shape[2] == 2 * invFreq.count, invFreq.dtype == .f32,
              positions.dtype == .i32, positions.shape == [x.shape[0]] else {
            throw OspreyError.invalidTensor("rope of \(x.shape) with \(invFreq.count) frequencies at \(positions.dtype) positions \(positions.shape)")
        }
        let out = try workspace(x.shape)
        guard x.count > 0 else { return out }
        try context.launch("RoPE", "rope_positions", grid: (x.shape[0], 1, 1), block: 256, sharedBytes: 4 * x.shape[2], [
            .pointer(ptr(x)), .pointer(ptr(out)), .pointer(ptr(invFreq)), .int(Int32(x.shape[1])), .int(Int32(x.shape[2])),
            .pointer(ptr(positions)), .float(scaling),
        ])
        return out
    }

    public func rope(_ q: Tensor, _ k: Tensor, positions: Tensor, invFreq: Tensor, scaling: Float) throws -> (q: Tensor, k: Tensor) {
        try checkRopePair(q, k, positions: positions, invFreq: invFreq)
        let qo = try workspace(q.shape), ko = try workspace(k.shape)
        let (T, hq, hk) = (q.shape[0], q.shape[1], k.shape[1])
        guard T * (hq + hk) > 0 else { return (qo, ko) }
        try context.launch("RoPE", "rope_positions_qk", grid: (T, 1, 1), block: 256, sharedBytes: 4 * q.shape[2], [
            .pointer(ptr(q)), .pointer(ptr(k)), .pointer(ptr(qo)), .pointer(ptr(ko)), .pointer(ptr(invFreq)),
            .int(Int32(T)), .int(Int32(hq)), .int(Int32(hk)), .int(Int32(q.shape[2])), .pointer(ptr(positions)), .float(scaling),
        ])
        return (qo, ko)
    }

    public func ropeWriteKV(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, invFreq: Tensor, scaling: Float,
                            kCache: Tensor, vCache: Tensor, slots: Tensor) throws -> Tensor {
        try checkRopePair(q, k, positions: positions, invFreq: invFreq)
        let kv = try checkKVStore(k: k, v: v, kCache: kCache, vCache: vCache, slots: slots)
        let qo = try workspace(q.shape)
        let (T, hq, hk, D) = (q.shape[0], q.shape[1], k.shape[1], q.shape[2])
        guard T > 0, D > 0, hq + hk > 0 else { return qo }
        // Decode-sized steps: 8 heads per block (a 72-head token on 9 SMs, not one); longer ones a
        // block per token (each block computes its token's sines).
        let heads = hq + hk, perBlock = T <= 16 ? min(8, heads) : heads
        try context.launch("RoPE", "rope_write_kv\(kv)", grid: (T, (heads + perBlock - 1) / perBlock, 1), block: 256, sharedBytes: 4 * D, [
            .pointer(ptr(q)), .pointer(ptr(k)), .pointer(ptr(v)), .pointer(ptr(qo)), .pointer(ptr(kCache)), .pointer(ptr(vCache)),
            .pointer(ptr(invFreq)), .int(Int32(hq)), .int(Int32(hk)), .int(Int32(D)), .int(Int32(perBlock)), .pointer(ptr(positions)), .pointer(ptr(slots)),
            .int(Int32(kCache.shape[0])), .float(scaling),
        ])
        return qo
    }

    // MARK: - elementwise.cu

    public func gatherRows(_ x: Tensor, rows: Tensor) throws -> Tensor {
        try requireDevice(x, "gatherRows"); try requireDevice(rows, "gatherRows")
        guard x.shape.rank == 2, x.dtype == .f32, rows.dtype == .i32, rows.shape.rank == 1 else {
            throw OspreyError.invalidTensor("gatherRows of \(x.dtype) \(x.shape) at \(rows.dtype) rows \(rows.shape)")
        }
        let (T, H, R) = (x.shape[0], x.shape[1], rows.count)
        let out = try workspace([R, H])
        guard R > 0, H > 0 else { return out }
        // The embedding gather with x as an f32 table: a row index outside 0..<T gives a zero row.
        try context.launch("Embedding", "embedding", grid: (R, 1, 1), block: 256, [
            .pointer(ptr(x)), .int(0), .pointer(ptr(rows)), .pointer(ptr(out)), .int(Int32(H)), .int(Int32(T)),
        ])
        return out
    }

    // MARK: - paged_attention.cu

    public func writeKV(k: Tensor, v: Tensor, kCache: Tensor, vCache: Tensor, slots: Tensor) throws {
        let kv = try checkKVStore(k: k, v: v, kCache: kCache, vCache: vCache, slots: slots)
        let (T, W, rows) = (k.shape[0], k.shape[1] * k.shape[2], kCache.shape[0])
        guard T > 0, W > 0 else { return }
        let vec = W % 4 == 0 && [k, v, kCache, vCache].allSatisfy { ptr($0) % 16 == 0 }
        let threads = T * (vec ? W / 4 : W)
        try context.launch("PagedAttention", (vec ? "write_kv4" : "write_kv") + kv, grid: (min((threads + 255) / 256, 1 << 20), 1, 1), block: 256, [
            .pointer(ptr(k)), .pointer(ptr(v)), .pointer(ptr(kCache)), .pointer(ptr(vCache)), .pointer(ptr(slots)),
            .int(Int32(T)), .int(Int32(vec ? W / 4 : W)), .int(Int32(rows)),
        ])
    }

    /// The checks of `rope(q, k, positions:)` (and `ropeWriteKV`): q [T, Hq, D], k [T, Hk, D] f32,
    /// D / 2 f32 frequencies, i32 positions [T], all on this GPU.
    private func checkRopePair(_ q: Tensor, _ k: Tensor, positions: Tensor, invFreq: Tensor) throws {
        for t in [q, k, positions, invFreq] { try requireDevice(t, "rope") }
        guard q.shape.rank == 3, k.shape.rank == 3, q.shape[0] == k.shape[0], q.shape[2] == k.shape[2], q.dtype == .f32, k.dtype == .f32,
              q.shape[2] == 2 * invFreq.count, invFreq.dtype == .f32, positions.dtype == .i32, positions.shape == [q.shape[0]] else {
            throw OspreyError.invalidTensor("rope of q \(q.shape) and k \(k.shape) with \(invFreq.count) frequencies at \(positions.dtype) positions \(positions.shape)")
        }
    }

    /// The checks of `writeKV` (and `ropeWriteKV`): k, v f32 [T, Hkv, D] into caches [rows, Hkv, D] of
    /// one dtype a cache kernel takes, i32 slots [T], all on this GPU; returns that dtype's kernel suffix.
    private func checkKVStore(k: Tensor, v: Tensor, kCache: Tensor, vCache: Tensor, slots: Tensor) throws -> String {
        for t in [k, v, kCache, vCache, slots] { try requireDevice(t, "writeKV") }
        guard k.shape.rank == 3, k.shape == v.shape, kCache.shape.rank == 3, kCache.shape == vCache.shape,
              k.shape.dims.dropFirst() == kCache.shape.dims.dropFirst(), k.dtype == .f32, v.dtype == .f32,
              kCache.dtype == vCache.dtype, let kv = Self.cacheSuffix(kCache.dtype), kCache.shape[0] <= Int(Int32.max),
              slots.dtype == .i32, slots.shape == [k.shape[0]] else {
            throw OspreyError.invalidTensor("writeKV of k \(k.dtype) \(k.shape), v \(v.dtype) \(v.shape) into \(kCache.dtype) \(kCache.shape) / \(vCache.dtype) \(vCache.shape) at \(slots.dtype) slots \(slots.shape)")
        }
        return kv
    }

    public func pagedAttention(q: Tensor, kCache: Tensor, vCache: Tensor, sinks: Tensor?, layout: PagedLayout, window: Int?, scale: Float) throws -> Tensor {
        for t in [q, kCache, vCache, layout.queryStarts, layout.contextLengths, layout.blockTables] { try requireDevice(t, "pagedAttention") }
        try layout.validate()
        guard q.shape.rank == 3, kCache.shape.rank == 3, kCache.shape == vCache.shape, q.shape[2] == kCache.shape[2],
              kCache.shape[1] > 0, q.shape[1] % kCache.shape[1] == 0, (1...256).contains(q.shape[2]),
              q.dtype == .f32, kCache.dtype == vCache.dtype, let kv = Self.cacheSuffix(kCache.dtype) else {
            throw OspreyError.invalidTensor("pagedAttention of q \(q.dtype) \(q.shape) over caches \(kCache.dtype) \(kCache.shape) / \(vCache.shape) (head size 1...256)")
        }
        let (T, Hq, D) = (q.shape[0], q.shape[1], q.shape[2])
        let (rows, Hkv, S) = (kCache.shape[0], kCache.shape[1], layout.sequenceCount)
        if let sinks { try requireDevice(sinks, "pagedAttention"); guard sinks.count == Hq else { throw OspreyError.invalidTensor("sinks \(sinks.shape) for \(Hq) heads") } }
        if let window, window < 1 { throw OspreyError.invalidArgument("pagedAttention: window \(window)") }
        guard S <= 65535, Hq <= 65535, rows <= Int(Int32.max) else {
            throw OspreyError.invalidArgument("pagedAttention: \(S) sequences, \(Hq) heads, \(rows) cache rows (at most 65,535, 65,535, 2^31 - 1)")
        }
        let out = try workspace([T, Hq * D])
        guard T > 0, layout.maxQueryLength > 0 else { return out }

        let aligned = ptr(kCache) % 16 == 0 && ptr(vCache) % 16 == 0
        let dc = aligned && [16, 32, 64, 128].contains(D) ? D : 0  // 0: the any-size kernel
        let prefill = aligned && [16, 32, 64].contains(D) && layout.maxQueryLength > Self.pagedRowsLimit
        let limit = prefill ? Self.pagedRowsLimit : layout.maxQueryLength
        let G = Hq / Hkv
        // Tensor cores (paged_attention_mma.cu) for bf16 caches with D 64: the decode kernel takes one
        // block per kv head for all of its (at most 16) query heads; the prefill one any grouping.
        let tensorCores = context.pagedTensorCores && kCache.dtype == .bf16 && dc == 64
        let mma = tensorCores && G <= 16
        let hb = mma ? G : [1, 2, 4, 8].first { $0 >= G } ?? 8
        let groups = Hkv * ((G + hb - 1) / hb)
        // A decode step with few (sequence, kv head) blocks splits its keys.
        let keys = min(layout.maxContextLength, window ?? .max)
        let splits = layout.maxQueryLength == 1 && S * groups < Self.pagedTargetBlocks
            ? max(1, min(Self.pagedTargetBlocks / (S * groups), (keys + 127) / 128, 32)) : 1
        // Split partials: max and sum [T, Hq, splits], unnormalised values [T, Hq, splits, D].
        var (pm, pl, pacc) = (out, out, out)
        if splits > 1 { (pm, pl, pacc) = (try workspace([T * Hq * splits]), try workspace([T * Hq * splits]), try workspace([T * Hq * splits * D])) }
        let common: [KernelArgument] = [
            .pointer(ptr(q)), .pointer(ptr(kCache)), .pointer(ptr(vCache)), .pointer(sinks.map(ptr) ?? 0),
            try sinks.map { try code($0, "pagedAttention") } ?? .int(0), .pointer(ptr(out)),
            .pointer(ptr(layout.queryStarts)), .pointer(ptr(layout.contextLengths)), .pointer(ptr(layout.blockTables)),
            .int(Int32(layout.maxBlocks)), .int(Int32(layout.blockSize)), .int(Int32(rows)),
            .int(Int32(Hq)), .int(Int32(Hkv)), .int(Int32(window ?? 0)), .float(scale), .int(Int32(limit)),
        ]
        try context.launch(mma ? "PagedAttentionMMA" : "PagedAttention", mma ? "paged_mma_d64_bf16" : "paged_rows_d\(dc)_h\(hb)\(kv)",
                           grid: (min(layout.maxQueryLength, limit), groups * splits, S), block: 128,
                           common + [.int(Int32(D)), .int(Int32(splits)), .pointer(ptr(pm)), .pointer(ptr(pl)), .pointer(ptr(pacc))])
        if splits > 1 {
            try context.launch("PagedAttention", "paged_merge", grid: (T * Hq, 1, 1), block: max(32, min(256, (D + 31) / 32 * 32)), [
                .pointer(ptr(pm)), .pointer(ptr(pl)), .pointer(ptr(pacc)), .pointer(sinks.map(ptr) ?? 0),
                try sinks.map { try code($0, "pagedAttention") } ?? .int(0), .pointer(ptr(out)), .int(Int32(Hq)), .int(Int32(D)), .int(Int32(splits)),
            ])
        }
        if prefill && tensorCores {
            // Tensor cores: a warp per 16 queries of one head, 64 queries per block.
            try context.launch("PagedAttentionMMA", "paged_prefill_mma_d64_bf16", grid: ((layout.maxQueryLength + 63) / 64, Hq, S), block: 128, common)
        } else if prefill {
            try context.launch("PagedAttention", "paged_prefill_d\(D)\(kv)", grid: ((layout.maxQueryLength + 127) / 128, Hq, S), block: 128, common)
        }
        return out
    }

    /// The kernel-name suffix of a cache dtype (paged_attention.cu), or nil for one it cannot hold.
    static func cacheSuffix(_ dtype: DType) -> String? {
        switch dtype {
        case .f32: ""
        case .bf16: "_bf16"
        default: nil
        }
    }
}
