// Prefill-sized batches on tensor cores: dense linear layers and the routed experts as cuBLASLt
// GEMMs (bf16 inputs, f32 accumulation and output, biases added by the GEMM's epilogue).
// Activations are converted to bf16 on the way in (once for layers sharing an input), as
// transformers computes in bf16. MXFP4 experts take the grouped GEMM of
// CUDABackend+Grouped.swift as `context.mxfp4Experts` says (by default up to 256 pairs per
// expert on average). Otherwise, the
// experts: the host reads the routing once (a synchronisation), orders the (token, pick) pairs by
// expert in segments padded to 32 rows (so GEMM shapes, and their cached plans, repeat), and runs
// per expert: its MXFP4 weights expanded to bf16 in a scratch buffer (exact), one GEMM for
// gate_up, bias + SwiGLU, one GEMM for down, bias + scatter back to pick order, then the combine.
// Kernels: Kernels/linear.cu (to_bf16, add_bias) and Kernels/moe.cu (prefill helpers).
import OspreyCore

extension CUDABackend {
    /// Token counts from which linear layers and experts use cuBLASLt (below: Osprey's matvec kernels).
    static let gemmMinTokens = 16
    /// Rows of each expert's segment are padded to a multiple of this.
    static let expertSegmentPadding = 32

    /// Whether `linear` of T tokens takes the GEMM path.
    func linearUsesGEMM(tokens T: Int, weight: Tensor, x: Tensor) -> Bool {
        // The router (a few dozen outputs) stays in f32: its top-k must not flip on bf16 rounding.
        T >= Self.gemmMinTokens && weight.dtype == .bf16 && weight.shape[0] >= 128 && weight.shape[0] % 8 == 0
            && weight.shape[1] % 8 == 0 && ptr(weight) % 16 == 0 && ptr(x) % 16 == 0 && context.hasGEMM
    }

    /// outs[i] [T, O_i] = x [T, I] · W_iᵀ + b_i through cuBLASLt, x converted to bf16 once for all
    /// of them (q, k and v share it); an f32 bias is added by the GEMM's epilogue, any other by add_bias.
    func linearsGEMM(_ x: Tensor, _ layers: [(weight: Tensor, bias: Tensor?)], T: Int, I: Int) throws -> [Tensor] {
        let xb = try workspace([T, I], .bf16)
        try context.launch("Linear", "to_bf16", grid: (min((T * I + 255) / 256, 65535), 1, 1), block: 256,
                           [.pointer(ptr(x)), .pointer(ptr(xb)), .int64(Int64(T * I))])
        return try layers.map { layer in
            let O = layer.weight.shape[0], out = try workspace([T, O])
            let epilogue = layer.bias.flatMap { $0.dtype == .f32 && ptr($0) % 16 == 0 ? ptr($0) : nil } ?? 0
            try context.gemm(a: ptr(layer.weight), b: ptr(xb), d: ptr(out), m: O, n: T, k: I, bias: epilogue)
            if let bias = layer.bias, epilogue == 0 {
                try context.launch("Linear", "add_bias", grid: (min((T * O + 255) / 256, 65535), 1, 1), block: 256,
                                   [.pointer(ptr(out)), .pointer(ptr(bias)), try code(bias, "linear"), .int64(Int64(T * O)), .int(Int32(O))])
            }
            return out
        }
    }

    /// Whether `experts` of T tokens takes the GEMM path (MXFP4 or bf16 experts; MXFP4 grouped or expanded).
    func expertsUseGEMM(tokens T: Int, bank: ExpertBank) -> Bool {
        guard T >= Self.gemmMinTokens, bank.gateUpBias.shape[-1] % 16 == 0, bank.downBias.shape[-1] % 8 == 0 else { return false }
        switch bank.weights {
        case .mxfp4: return expertsUseGrouped(bank: bank) || context.hasGEMM
        case .dense(let gu, let dn): return gu.dtype == .bf16 && dn.dtype == .bf16 && context.hasGEMM
        }
    }

    /// The routed experts of T tokens as per-expert GEMMs; returns out [T, H], or with `norm`
    /// (residual + out, its RMSNorm) as `combine` does.
    func expertsGEMM(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor, T: Int, k: Int, H: Int, I: Int,
                     then norm: (residual: Tensor, weight: Tensor, eps: Float)?) throws -> (out: Tensor, normed: Tensor?) {
        if expertsUseGrouped(bank: bank) && groupedPreferred(pairs: T * k, experts: bank.weights.count) {
            return try expertsGrouped(x, bank: bank, ids: ids, weights: weights, T: T, k: k, H: H, I: I, then: norm)
        }
        let E = bank.weights.count, P = T * k
        // Routing on the host: counting sort of the pairs by expert, segments padded.
        let routed = try download(ids)
        let picks = (0..<P).map { routed.raw.load(fromByteOffset: 4 * $0, as: Int32.self) }
        var counts = [Int](repeating: 0, count: E)
        for e in picks {
            guard e >= 0 && Int(e) < E else { throw OspreyError.invalidTensor("experts: routed id \(e) outside 0..<\(E)") }
            counts[Int(e)] += 1
        }
        var starts = [Int](repeating: 0, count: E), padded = [Int](repeating: 0, count: E)
        var sortedStart = [Int](repeating: 0, count: E)
        var rows = 0, sorted = 0
        for e in 0..<E {
            starts[e] = rows
            sortedStart[e] = sorted
            let pad = Self.expertSegmentPadding
            padded[e] = (counts[e] + pad - 1) / pad * pad
            rows += padded[e]
            sorted += counts[e]
        }
        var order = [Int32](repeating: 0, count: P), slot = [Int32](repeating: 0, count: P)
        var cursor = sortedStart
        for (p, e) in picks.enumerated() {
            let i = cursor[Int(e)]
            order[i] = Int32(p)
            slot[i] = Int32(starts[Int(e)] + i - sortedStart[Int(e)])
            cursor[Int(e)] += 1
        }
        let orderT = try stage(order, shape: [P], dtype: .i32), slotT = try stage(slot, shape: [P], dtype: .i32)

        let xs = try workspace([rows, H], .bf16)
        try context.launch("MoEPrefill", "moe_gather_bf16", grid: (P, 1, 1), block: 256,
                           [.pointer(ptr(x)), .pointer(ptr(orderT)), .pointer(ptr(slotT)), .int(Int32(k)), .pointer(ptr(xs)), .int(Int32(H))])
        let gu = try workspace([rows, 2 * I])
        try expertGEMMs(bank: bank, half: .gateUp, input: xs, output: gu, counts: counts, starts: starts, padded: padded,
                        m: 2 * I, k: H)
        let h = try workspace([rows, I], .bf16)
        try context.launch("MoEPrefill", "moe_bias_swiglu_bf16", grid: (P, 1, 1), block: 256, [
            .pointer(ptr(gu)), .pointer(ptr(orderT)), .pointer(ptr(slotT)), .pointer(ptr(ids)), .pointer(ptr(bank.gateUpBias)),
            try code(bank.gateUpBias, "experts"), .pointer(ptr(h)), .int(Int32(I)), .float(bank.swigluLimit), .float(bank.alpha),
        ])
        let ys = try workspace([rows, H])
        try expertGEMMs(bank: bank, half: .down, input: h, output: ys, counts: counts, starts: starts, padded: padded, m: H, k: I)
        let y = try workspace([P, H])
        try context.launch("MoEPrefill", "moe_bias_scatter", grid: (P, 1, 1), block: 256, [
            .pointer(ptr(ys)), .pointer(ptr(orderT)), .pointer(ptr(slotT)), .pointer(ptr(ids)), .pointer(ptr(bank.downBias)),
            try code(bank.downBias, "experts"), .pointer(ptr(y)), .int(Int32(H)),
        ])
        return try combine(y, weights: weights, T: T, k: k, H: H, then: norm)
    }

    enum ExpertHalf { case gateUp, down }

    /// For each expert with routed rows: output[segment] = input[segment] · W_eᵀ (m outputs, k inputs).
    /// MXFP4 weights are expanded to bf16 first: all experts of the layer in one launch when that
    /// fits in `expandAllLimit` bytes of scratch, else one expert at a time.
    private func expertGEMMs(bank: ExpertBank, half: ExpertHalf, input: Tensor, output: Tensor, counts: [Int], starts: [Int],
                             padded: [Int], m: Int, k: Int) throws {
        let E = counts.count
        var expanded: (tensor: Tensor, all: Bool)?
        for e in counts.indices where counts[e] > 0 {
            let w: CUdeviceptr
            switch bank.weights {
            case .mxfp4(let gub, let gus, let db, let ds):
                let (blocks, scales) = half == .gateUp ? (gub, gus) : (db, ds)
                if expanded == nil {
                    let all = E * m * k * 2 <= Self.expandAllLimit
                    expanded = (try workspace([all ? E * m : m, k], .bf16), all)
                    if all { try expand(blocks, scales, tiled: bank.tiledBlocks, experts: 0..<E, into: expanded!.tensor) }
                }
                if expanded!.all {
                    w = ptr(expanded!.tensor) + CUdeviceptr(e * m * k * 2)
                } else {
                    try expand(blocks, scales, tiled: bank.tiledBlocks, experts: e..<(e + 1), into: expanded!.tensor)
                    w = ptr(expanded!.tensor)
                }
            case .dense(let gu, let dn):
                w = ptr(half == .gateUp ? gu : dn) + CUdeviceptr(e * m * k * 2)
            }
            try context.gemm(a: w, b: ptr(input) + CUdeviceptr(starts[e] * k * 2), d: ptr(output) + CUdeviceptr(starts[e] * m * 4),
                             m: m, n: padded[e], k: k)
        }
    }

    /// Scratch bytes up to which a layer's experts are all expanded at once.
    static let expandAllLimit = 2 << 30

    /// bf16 expansion of the MXFP4 blocks [E, R, nb, 16] of `experts` into `out` [experts, R, nb * 32]; `blocks` as stored or tiled.
    private func expand(_ blocks: Tensor, _ scales: Tensor, tiled: Bool, experts: Range<Int>, into out: Tensor) throws {
        let (R, nb) = (blocks.shape[1], blocks.shape[2])
        let perExpert = tiled ? MXFP4Tiling(experts: 1, rows: R, blocksPerRow: nb).byteCount / MXFP4.bytesPerBlock : R * nb
        let words = experts.count * perExpert * 4  // packed 4-byte words read
        try context.launch("MoEPrefill", "mxfp4_to_bf16", grid: (min((words + 255) / 256, 65535), 1, 1), block: 256, [
            .pointer(ptr(blocks)), .int(tiled ? 1 : 0), .pointer(ptr(scales)), .pointer(ptr(out)),
            .int(Int32(experts.lowerBound)), .int(Int32(experts.count)), .int(Int32(R)), .int(Int32(nb)),
        ])
    }
}
