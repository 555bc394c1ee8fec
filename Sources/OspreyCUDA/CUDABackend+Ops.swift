// Launchers for the kernels in Kernels/*.cu: grid math, shape checks, argument lists. One
// section per kernel file, in the order of the gpt-oss forward pass.
import OspreyCore

extension CUDABackend {
    // MARK: - elementwise.cu

    public func embedding(_ table: Tensor, ids: [Int32]) throws -> Tensor {
        try requireDevice(table, "embedding")
        guard table.shape.rank == 2 else { throw OspreyError.invalidTensor("embedding table must be [V, H], got \(table.shape)") }
        let V = table.shape[0]
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= V }) {
            throw OspreyError.invalidArgument("token id \(bad) outside the vocabulary (0..<\(V))")
        }
        return try embedding(table, tokens: try stage(ids, shape: [ids.count], dtype: .i32))
    }

    public func embedding(_ table: Tensor, tokens: Tensor) throws -> Tensor {
        try requireDevice(table, "embedding"); try requireDevice(tokens, "embedding")
        guard table.shape.rank == 2, tokens.dtype == .i32 else {
            throw OspreyError.invalidTensor("embedding of \(tokens.dtype) ids in a \(table.shape) table")
        }
        let (V, H, T) = (table.shape[0], table.shape[1], tokens.count)
        let out = try workspace([T, H])
        try context.launch("Embedding", "embedding", grid: (T, 1, 1), block: 256, [
            .pointer(ptr(table)), try code(table, "embedding"), .pointer(ptr(tokens)), .pointer(ptr(out)), .int(Int32(H)), .int(Int32(V)),
        ])
        return out
    }

    // MARK: - sampling.cu

    public func argmax(_ logits: Tensor, into out: Tensor) throws {
        try requireDevice(logits, "argmax"); try requireDevice(out, "argmax")
        let V = logits.shape[-1], T = logits.count / max(V, 1)
        guard V > 0, logits.dtype == .f32, out.dtype == .i32, out.count == T else {
            throw OspreyError.invalidTensor("argmax of \(logits.shape) \(logits.dtype) into \(out.shape) \(out.dtype)")
        }
        try context.launch("Sampling", "argmax", grid: (T, 1, 1), block: 1024, [.pointer(ptr(logits)), .int(Int32(V)), .pointer(ptr(out))])
    }

    public func sample(_ logits: Tensor, parameters: Tensor, into out: Tensor) throws {
        for t in [logits, parameters, out] { try requireDevice(t, "sample") }
        let V = logits.shape[-1], T = logits.count / max(V, 1)
        guard V > 0, logits.dtype == .f32, parameters.dtype == .i32, parameters.count == 3 * T, out.dtype == .i32, out.count == T else {
            throw OspreyError.invalidTensor("sample of \(logits.shape) \(logits.dtype) with parameters \(parameters.shape) into \(out.shape) \(out.dtype)")
        }
        try context.launch("Sampling", "sample_gumbel", grid: (T, 1, 1), block: 1024,
                           [.pointer(ptr(logits)), .int(Int32(V)), .pointer(ptr(parameters)), .pointer(ptr(out))])
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try requireDevice(a, "add"); try requireDevice(b, "add")
        guard a.shape == b.shape, a.dtype == .f32, b.dtype == .f32 else { throw OspreyError.invalidTensor("add of \(a.shape) and \(b.shape)") }
        let out = try workspace(a.shape)
        try context.launch("Add", "add", grid: (min((a.count + 255) / 256, 65535), 1, 1), block: 256,
                           [.pointer(ptr(a)), .pointer(ptr(b)), .pointer(ptr(out)), .int64(Int64(a.count))])
        return out
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) throws -> Tensor {
        try requireDevice(x, "rmsNorm"); try requireDevice(weight, "rmsNorm")
        let H = x.shape[-1]
        guard weight.count == H, x.dtype == .f32 else { throw OspreyError.invalidTensor("rms norm weight \(weight.shape) for rows of \(H)") }
        let out = try workspace(x.shape)
        if H <= 4096 {
            try context.launch("RMSNorm", "rms_norm_rows", grid: (x.count / H, 1, 1), block: 1024,
                               [.pointer(ptr(x)), .pointer(ptr(weight)), try code(weight, "rmsNorm"), .pointer(ptr(out)), .int(Int32(H)), .float(eps)])
            return out
        }
        try context.launch("RMSNorm", "rms_norm", grid: (x.count / H, 1, 1), block: 256,
                           [.pointer(ptr(x)), .pointer(ptr(weight)), try code(weight, "rmsNorm"), .pointer(ptr(out)), .int(Int32(H)), .float(eps)])
        return out
    }

    public func addRMSNorm(_ a: Tensor, _ b: Tensor, weight: Tensor, eps: Float) throws -> (sum: Tensor, normed: Tensor) {
        try requireDevice(a, "addRMSNorm"); try requireDevice(b, "addRMSNorm"); try requireDevice(weight, "addRMSNorm")
        let H = a.shape[-1]
        guard a.shape == b.shape, a.dtype == .f32, b.dtype == .f32, weight.count == H else {
            throw OspreyError.invalidTensor("addRMSNorm of \(a.shape) and \(b.shape) with weight \(weight.shape)")
        }
        guard H <= 4096 else {
            let sum = try add(a, b)
            return (sum, try rmsNorm(sum, weight: weight, eps: eps))
        }
        let sum = try workspace(a.shape), out = try workspace(a.shape)
        try context.launch("RMSNorm", "add_rms_norm", grid: (a.count / H, 1, 1), block: 1024, [
            .pointer(ptr(a)), .pointer(ptr(b)), .pointer(ptr(weight)), try code(weight, "addRMSNorm"),
            .pointer(ptr(sum)), .pointer(ptr(out)), .int(Int32(H)), .float(eps),
        ])
        return (sum, out)
    }

    /// Rows up to which addRMSNormRoute is one launch. Each launch timed alone on the H200
    /// (2026-11-29, gpt-oss-20b shape, E 32): 64 rows ~17 µs fused against ~36 for add_rms_norm +
    /// linear_bf16x8 + topk_softmax; 2,048 rows 179 µs fused (a CTA per row, each reading the router)
    /// against 120 unfused.
    static let routeMaxRows = 512

    /// Up to routeMaxRows rows (every decode step), H ≤ 4096 and a multiple of 8, a bf16 router,
    /// k ≤ 32: add_rms_norm_route, one launch for the residual add, the norm, the router and its
    /// top-k, so a decoding row's routing is computed the same way whatever the batch.
    public func addRMSNormRoute(_ a: Tensor, _ b: Tensor, weight: Tensor, eps: Float, router: Tensor, routerBias: Tensor?, k: Int) throws
        -> (sum: Tensor, normed: Tensor, ids: Tensor, weights: Tensor) {
        let H = a.shape[-1], T = a.count / max(H, 1), E = router.shape[0]
        guard T >= 1, T <= Self.routeMaxRows, H <= 4096, H % 8 == 0, router.dtype == .bf16, router.shape == [E, H], a.shape == b.shape,
              a.dtype == .f32, b.dtype == .f32, weight.count == H, k >= 1, k <= 32, k <= E, E <= 32 * 128,
              routerBias.map({ $0.count == E }) ?? true else {
            return try composedAddRMSNormRoute(a, b, weight: weight, eps: eps, router: router, routerBias: routerBias, k: k)
        }
        for t in [a, b, weight, router] { try requireDevice(t, "addRMSNormRoute") }
        if let routerBias { try requireDevice(routerBias, "addRMSNormRoute") }
        let sum = try workspace(a.shape), out = try workspace(a.shape)
        let ids = try workspace([T, k], .i32), w = try workspace([T, k])
        // The int8 form of the normed rows that the decode experts would make next, made here instead.
        let int8 = context.int8DecodeActivations && Self.usesRowsPath(pairs: T * k, cols: H)
        let q8 = int8 ? try workspace([T, H], .u8) : nil, d8 = int8 ? try workspace([T, H / 32]) : nil
        try context.launch("MoE", "add_rms_norm_route", grid: (T, 1, 1), block: 1024, sharedBytes: 4 * (H + E), [
            .pointer(ptr(a)), .pointer(ptr(b)), .pointer(ptr(weight)), try code(weight, "addRMSNormRoute"),
            .pointer(ptr(sum)), .pointer(ptr(out)), .pointer(ptr(router)), .pointer(routerBias.map(ptr) ?? 0),
            try routerBias.map { try code($0, "addRMSNormRoute") } ?? .int(0), .pointer(ptr(ids)), .pointer(ptr(w)),
            .int(Int32(H)), .int(Int32(E)), .int(Int32(k)), .float(eps), .pointer(q8.map(ptr) ?? 0), .pointer(d8.map(ptr) ?? 0),
        ])
        if let q8, let d8 { context.routedInt8 = (normed: ptr(out), count: out.count, q: q8, d: d8) }
        return (sum, out, ids, w)
    }

    // MARK: - linear.cu

    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        let (T, O, I) = try checkLinear(x, weight: weight, bias: bias)
        if let fused = try decodeLinears(x, [(weight, bias)]) { return fused[0] }  // 1-4 rows, bf16
        if linearUsesGEMM(tokens: T, weight: weight, x: x) { return try linearsGEMM(x, [(weight, bias)], T: T, I: I)[0] }
        let out = try workspace([T, O])
        let warpsPerBlock = 8
        let grid = ((O + warpsPerBlock - 1) / warpsPerBlock, (T + 7) / 8, 1)
        let biasArgs: [KernelArgument] = [.pointer(bias.map(ptr) ?? 0), try bias.map { try code($0, "linear") } ?? .int(0)]
        let sizes: [KernelArgument] = [.pointer(ptr(out)), .int(Int32(T)), .int(Int32(O)), .int(Int32(I))]
        if weight.dtype == .bf16, I % 8 == 0, ptr(weight) % 16 == 0, ptr(x) % 16 == 0 {
            try context.launch("Linear", "linear_bf16x8", grid: grid, block: 32 * warpsPerBlock,
                               [.pointer(ptr(x)), .pointer(ptr(weight))] + biasArgs + sizes)
        } else {
            try context.launch("Linear", "linear", grid: grid, block: 32 * warpsPerBlock,
                               [.pointer(ptr(x)), .pointer(ptr(weight)), try code(weight, "linear")] + biasArgs + sizes)
        }
        return out
    }

    /// Layers sharing one input: fused for decode (decodeLinears), else, when all of them take
    /// cuBLASLt, one bf16 conversion of x for all their GEMMs; else one `linear` each.
    public func linears(_ x: Tensor, _ layers: [(weight: Tensor, bias: Tensor?)]) throws -> [Tensor] {
        if let fused = try decodeLinears(x, layers) { return fused }
        var tokens: (T: Int, I: Int)?
        for l in layers {
            let (T, _, I) = try checkLinear(x, weight: l.weight, bias: l.bias)
            tokens = linearUsesGEMM(tokens: T, weight: l.weight, x: x) ? (T, I) : nil
            if tokens == nil { break }
        }
        if let tokens { return try linearsGEMM(x, layers, T: tokens.T, I: tokens.I) }
        return try layers.map { try linear(x, weight: $0.weight, bias: $0.bias) }
    }

    /// (T, O, I) of a linear layer of x with `weight` [O, I], after checking shapes and devices.
    private func checkLinear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> (T: Int, O: Int, I: Int) {
        try requireDevice(x, "linear"); try requireDevice(weight, "linear")
        guard weight.shape.rank == 2, weight.shape[1] > 0, x.shape[-1] == weight.shape[1], x.dtype == .f32 else {
            throw OspreyError.invalidTensor("linear of x \(x.shape) with weight \(weight.shape)")
        }
        let (O, I) = (weight.shape[0], weight.shape[1])
        if let bias { try requireDevice(bias, "linear"); guard bias.count == O else { throw OspreyError.invalidTensor("linear bias \(bias.shape) for \(O) outputs") } }
        return (x.count / I, O, I)
    }

    /// Up to 3 bf16 linear layers over the same 1-4 rows in one launch (a warp per output row, 4
    /// or 8 per block, x staged in shared memory; one token: the matrix copied to shared memory
    /// where it fits); nil when the shapes do not fit those kernels.
    private func decodeLinears(_ x: Tensor, _ layers: [(weight: Tensor, bias: Tensor?)]) throws -> [Tensor]? {
        guard let first = layers.first, layers.count <= 3, x.dtype == .f32, x.device == device, first.weight.shape.rank == 2 else { return nil }
        let I = first.weight.shape[1], T = x.count / max(I, 1)
        guard x.shape[-1] == I, T >= 1, T <= 4, I % 8 == 0, T * I * 4 <= 48 << 10, ptr(x) % 16 == 0,
              let loads = [4, 8, 12, 16].first(where: { $0 * 256 >= I }) else { return nil }
        let biasType = layers.lazy.compactMap(\.bias).first?.dtype
        for l in layers {
            guard l.weight.dtype == .bf16, l.weight.device == device, l.weight.shape.rank == 2, l.weight.shape[1] == I,
                  ptr(l.weight) % 16 == 0,
                  l.bias.map({ $0.count == l.weight.shape[0] && $0.device == device && $0.dtype == biasType }) ?? true else { return nil }
        }
        let outs = try layers.map { try workspace([T, $0.weight.shape[0]]) }
        let bdt: KernelArgument = try layers.compactMap(\.bias).first.map { try code($0, "linear") } ?? .int(0)
        var w: [KernelArgument] = [], b: [KernelArgument] = [], o: [KernelArgument] = [], n: [KernelArgument] = []
        for i in 0..<3 {
            let l = i < layers.count ? layers[i] : nil
            w.append(.pointer(l.map { ptr($0.weight) } ?? 0))
            b.append(.pointer(l?.bias.map(ptr) ?? 0))
            o.append(.pointer(i < outs.count ? ptr(outs[i]) : 0))
            n.append(.int(Int32(l?.weight.shape[0] ?? 0)))
        }
        let rows = layers.reduce(0) { $0 + $1.weight.shape[0] }
        let args: [KernelArgument] = [.pointer(ptr(x))] + w + b + [bdt] + o + n + [.int(Int32(T)), .int(Int32(I))]
        // One token on sm_90 with the whole matrix fitting the SMs' shared memory: copied there
        // before the wait (linear.cu; resident_kernels.cu: o_proj 9.8 -> 5.1 µs, q/k/v 11.8 -> 5.0
        // after 8 µs of work ahead; engine batch 1 on the H200: +2.6%, 2 blocks per SM lost 1-2%).
        // At most 3 rows per warp, 32 warps; 64 bytes for the mbarrier.
        let perSM = context.residentLinearBlocksPerSM
        if T == 1, perSM > 0, context.computeCapability.major >= 9 {
            let R = (rows + perSM * context.multiprocessors - 1) / (perSM * context.multiprocessors)
            if R <= 96, R * I * 2 + 64 <= context.sharedMemoryPerBlock {
                try context.launch("Linear", "linear_bf16_resident_n\(loads)", grid: ((rows + R - 1) / R, 1, 1), block: 32 * ((R + 2) / 3),
                                   sharedBytes: R * I * 2, args + [.int(Int32(R))])
                return outs
            }
        }
        // benchmarks/kernels/decode_kernels.cu on the H200 (2026-11-29), µs at 1 / 4 tokens: one
        // token stages x, in blocks of 8 warps for q/k/v (5120 x 2880: 14.5 vs 15.4 with 4) but 4 for
        // lm_head (201088 x 2880: 280 vs 296) and o_proj (2880 x 4096: 11.6 vs 11.8); 4 tokens over
        // rows of up to 3,072 inputs read x from global memory (q/k/v 27.4 vs 32.8 staged, lm_head
        // 635 vs 888; engine batch 4: 880 -> 928 tok/s), but 2 tokens lost with it (engine batch 2:
        // 662 -> 631), so 2 and 3 stage x in 8-warp blocks; o_proj's 4,096 inputs stay staged.
        let direct = T == 4 && loads <= 12
        let warps = direct || loads > 12 || (T == 1 && rows > 16_384) ? 4 : 8
        try context.launch("Linear", "linear_bf16_decode_\(direct ? "direct_" : "")n\(loads)",
                           grid: ((rows + warps - 1) / warps, 1, 1), block: 32 * warps, sharedBytes: direct ? 0 : T * I * 4, args)
        return outs
    }

    // MARK: - rope.cu, attention.cu

    public func rope(_ x: Tensor, start: Int, invFreq: Tensor, scaling: Float) throws -> Tensor {
        try requireDevice(x, "rope"); try requireDevice(invFreq, "rope")
        guard x.shape.rank == 3, x.shape[2] == 2 * invFreq.count, invFreq.dtype == .f32 else {
            throw OspreyError.invalidTensor("rope of \(x.shape) with \(invFreq.count) frequencies")
        }
        let out = try workspace(x.shape)
        guard x.count > 0 else { return out }
        // One block per token: its cosines and sines once in shared memory, then every head (rope.cu).
        try context.launch("RoPE", "rope", grid: (x.shape[0], 1, 1), block: 256, sharedBytes: 4 * x.shape[2], [
            .pointer(ptr(x)), .pointer(ptr(out)), .pointer(ptr(invFreq)), .int(Int32(x.shape[1])), .int(Int32(x.shape[2])),
            .int(Int32(start)), .float(scaling),
        ])
        return out
    }

    public func attention(q: Tensor, k: Tensor, v: Tensor, sinks: Tensor?, span: AttentionSpan, scale: Float) throws -> Tensor {
        for t in [q, k, v] { try requireDevice(t, "attention") }
        guard q.shape.rank == 3, k.shape.rank == 3, k.shape == v.shape, q.shape[2] == k.shape[2], k.shape[1] > 0,
              q.shape[1] % k.shape[1] == 0, q.shape[2] <= 256 else {
            throw OspreyError.invalidTensor("attention of q \(q.shape), k \(k.shape), v \(v.shape)")
        }
        let (T, Hq, D) = (q.shape[0], q.shape[1], q.shape[2])
        if let sinks { try requireDevice(sinks, "attention"); guard sinks.count == Hq else { throw OspreyError.invalidTensor("sinks \(sinks.shape) for \(Hq) heads") } }
        let out = try workspace([T, Hq * D])
        if T >= 16, [16, 32, 64].contains(D) {
            try context.launch("Attention", "attention_prefill_d\(D)", grid: ((T + 127) / 128, Hq, 1), block: 128, [
                .pointer(ptr(q)), .pointer(ptr(k)), .pointer(ptr(v)), .pointer(sinks.map(ptr) ?? 0),
                try sinks.map { try code($0, "attention") } ?? .int(0), .pointer(ptr(out)),
                .int(Int32(T)), .int(Int32(Hq)), .int(Int32(k.shape[1])), .int(Int32(k.shape[0])),
                .int(Int32(span.queryStart)), .int(Int32(span.keyStart)), .int(Int32(span.window ?? 0)), .float(scale),
            ])
            return out
        }
        let kernel = [16, 32, 64, 128].contains(D) ? "attention_d\(D)" : "attention"
        // Few query rows: 16 warps per row split the keys (more of the GPU busy); many: 4.
        let block = kernel == "attention" ? 128 : (T * Hq < 1024 ? 512 : 128)
        try context.launch("Attention", kernel, grid: (T * Hq, 1, 1), block: block, [
            .pointer(ptr(q)), .pointer(ptr(k)), .pointer(ptr(v)), .pointer(sinks.map(ptr) ?? 0),
            try sinks.map { try code($0, "attention") } ?? .int(0), .pointer(ptr(out)),
            .int(Int32(Hq)), .int(Int32(k.shape[1])), .int(Int32(k.shape[0])), .int(Int32(D)),
            .int(Int32(span.queryStart)), .int(Int32(span.keyStart)), .int(Int32(span.window ?? 0)), .float(scale),
        ])
        return out
    }

    // MARK: - moe.cu

    public func topKSoftmax(_ logits: Tensor, k: Int) throws -> (ids: Tensor, weights: Tensor) {
        try requireDevice(logits, "topKSoftmax")
        let E = logits.shape[-1], T = logits.count / E
        guard k >= 1 && k <= E else { throw OspreyError.invalidArgument("top-\(k) of \(E) experts") }
        let ids = try workspace([T, k], .i32), w = try workspace([T, k])
        guard k <= 32, E <= 32 * 128 else { throw OspreyError.invalidArgument("top-\(k) of \(E) experts: the CUDA router takes k ≤ 32 and E ≤ 4096") }
        try context.launch("MoE", "topk_softmax", grid: ((T + 3) / 4, 1, 1), block: 128, [
            .pointer(ptr(logits)), .int(Int32(T)), .int(Int32(E)), .int(Int32(k)), .pointer(ptr(ids)), .pointer(ptr(w)),
        ])
        return (ids, w)
    }

    public func experts(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor) throws -> Tensor {
        try routedExperts(x, bank: bank, ids: ids, weights: weights, then: nil).out
    }

    /// The combine, the residual add and the norm in one launch (moe_combine_add_rms_norm) after the
    /// MXFP4 decode path, the grouped GEMMs or the expansion; otherwise `experts` then `addRMSNorm`.
    public func expertsAddRMSNorm(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor, residual: Tensor, weight: Tensor, eps: Float) throws
        -> (sum: Tensor, normed: Tensor) {
        let H = x.shape[-1]
        let fusable = residual.shape == x.shape && residual.dtype == .f32 && weight.count == H && H <= 4096
        if fusable { try requireDevice(residual, "expertsAddRMSNorm"); try requireDevice(weight, "expertsAddRMSNorm") }
        let r = try routedExperts(x, bank: bank, ids: ids, weights: weights, then: fusable ? (residual, weight, eps) : nil)
        if let normed = r.normed { return (r.out, normed) }
        return try addRMSNorm(residual, r.out, weight: weight, eps: eps)
    }

    /// The routed experts; with `then` (residual [T, H] f32, norm weight, eps) the MXFP4 paths return
    /// (residual + experts, its RMSNorm) instead of (experts, nil).
    private func routedExperts(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor,
                               then norm: (residual: Tensor, weight: Tensor, eps: Float)?) throws -> (out: Tensor, normed: Tensor?) {
        for t in [x, ids, weights, bank.gateUpBias, bank.downBias] { try requireDevice(t, "experts") }
        let H = x.shape[-1], T = x.count / H, k = ids.shape[-1]
        let E = bank.weights.count, twoI = bank.gateUpBias.shape[-1], I = twoI / 2
        guard ids.count == T * k, weights.count == T * k, ids.dtype == .i32, bank.downBias.shape == [E, H] else {
            throw OspreyError.invalidTensor("experts: x \(x.shape), ids \(ids.shape), down bias \(bank.downBias.shape)")
        }
        // (dense W, dtype, blocks, scales) for each half; blocks == 0 selects the dense path.
        let gateUp: (KernelArgument, KernelArgument, CUdeviceptr, CUdeviceptr)
        let down: (KernelArgument, KernelArgument, CUdeviceptr, CUdeviceptr)
        switch bank.weights {
        case .dense(let gu, let dn):
            guard gu.shape == [E, twoI, H], dn.shape == [E, H, I] else {
                throw OspreyError.invalidTensor("expert weights \(gu.shape) / \(dn.shape), expected [\(E), \(twoI), \(H)] / [\(E), \(H), \(I)]")
            }
            try requireDevice(gu, "experts"); try requireDevice(dn, "experts")
            gateUp = (.pointer(ptr(gu)), try code(gu, "experts"), 0, 0)
            down = (.pointer(ptr(dn)), try code(dn, "experts"), 0, 0)
        case .mxfp4(let gub, let gus, let db, let ds):
            guard H % 32 == 0, I % 32 == 0, gub.shape == [E, twoI, H / 32, 16], gus.shape == [E, twoI, H / 32],
                  db.shape == [E, H, I / 32, 16], ds.shape == [E, H, I / 32] else {
                throw OspreyError.invalidTensor("MXFP4 expert blocks \(gub.shape) / \(db.shape) do not fit H=\(H), I=\(I), E=\(E)")
            }
            for t in [gub, gus, db, ds] { try requireDevice(t, "experts") }
            gateUp = (.pointer(0), .int(0), ptr(gub), ptr(gus))
            down = (.pointer(0), .int(0), ptr(db), ptr(ds))
        }
        let P = T * k
        if expertsUseGEMM(tokens: T, bank: bank) {
            return try expertsGEMM(x, bank: bank, ids: ids, weights: weights, T: T, k: k, H: H, I: I, then: norm)
        }
        if case .mxfp4 = bank.weights, Self.usesRowsPath(pairs: P, cols: H), Self.usesRowsPath(pairs: P, cols: I), H <= 4096, I <= 4096 {
            return try expertsMXFP4Decode(x, bank: bank, ids: ids, weights: weights, T: T, k: k, H: H, I: I, gateUp: gateUp, down: down, then: norm)
        }
        // Only the tiled path reads pairs sorted by expert; decode-sized batches skip the sort.
        let order = try workspace([P], .i32)
        if !Self.usesRowsPath(pairs: P, cols: H) || !Self.usesRowsPath(pairs: P, cols: I) {
            try context.launch("MoE", "moe_sort", grid: (1, 1, 1), block: 256, sharedBytes: 8 * E,
                               [.pointer(ptr(ids)), .int(Int32(P)), .int(Int32(E)), .pointer(ptr(order))])
        }
        let gu = try workspace([P, twoI]), h = try workspace([P, I]), y = try workspace([P, H]), out = try workspace([T, H])
        try matvec(input: x, div: k, ids: ids, order: order, pairs: P, weights: gateUp, tiled: bank.tiledBlocks, bias: bank.gateUpBias, out: gu, rows: twoI, cols: H)
        try context.launch("MoE", "moe_swiglu", grid: (min((P * I + 255) / 256, 65535), 1, 1), block: 256, [
            .pointer(ptr(gu)), .pointer(ptr(h)), .int64(Int64(P * I)), .float(bank.swigluLimit), .float(bank.alpha),
        ])
        try matvec(input: h, div: 1, ids: ids, order: order, pairs: P, weights: down, tiled: bank.tiledBlocks, bias: bank.downBias, out: y, rows: H, cols: I)
        try context.launch("MoE", "moe_combine", grid: (min((T * H + 255) / 256, 65535), 1, 1), block: 256, [
            .pointer(ptr(y)), .pointer(ptr(weights)), .pointer(ptr(out)), .int(Int32(T)), .int(Int32(k)), .int(Int32(H)),
        ])
        return (out, nil)
    }

    /// Decode-sized batches with MXFP4 experts. With `int8DecodeActivations` (the default): quantize
    /// x, gate_up, quantize SwiGLU(gu), down, combine, on dp4a. Otherwise f32 throughout: gate_up,
    /// down with the SwiGLU applied while loading its input, combine.
    private func expertsMXFP4Decode(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor, T: Int, k: Int, H: Int, I: Int,
                                    gateUp: (KernelArgument, KernelArgument, CUdeviceptr, CUdeviceptr),
                                    down: (KernelArgument, KernelArgument, CUdeviceptr, CUdeviceptr),
                                    then norm: (residual: Tensor, weight: Tensor, eps: Float)?) throws -> (out: Tensor, normed: Tensor?) {
        let P = T * k, warps = 8, tiled = KernelArgument.int(bank.tiledBlocks ? 1 : 0)
        let gu = try workspace([P, 2 * I]), y = try workspace([P, H])
        if context.int8DecodeActivations {
            // Inputs quantized to int8 per 32 values (the SwiGLU applied on the way for down), dp4a kernels.
            // x's int8 form may have come with it from addRMSNormRoute (the same rounding as quantize_q8).
            let routed = context.routedInt8.flatMap { $0.normed == ptr(x) && $0.count == x.count ? ($0.q, $0.d) : nil }
            context.routedInt8 = nil
            for (input, n, div, swiglu, w, bias, o, rows, cols) in [(x, T, k, 0, gateUp, bank.gateUpBias, gu, 2 * I, H),
                                                                     (gu, P, 1, 1, down, bank.downBias, y, H, I)] {
                let (q, d) = try (swiglu == 0 ? routed : nil) ?? quantizeQ8(input, rows: n, cols: cols, swiglu: swiglu, bank: bank)
                let groups = (rows + 3) / 4, chunks = (cols / 32 + 31) / 32
                try context.launch("MoEDecode", "moe_mxfp4_q8_c\(chunks)", grid: ((groups + warps - 1) / warps, P, 1), block: 32 * warps, [
                    .pointer(ptr(q)), .pointer(ptr(d)), .int(Int32(div)), .pointer(ptr(ids)), .pointer(w.2), tiled, .pointer(w.3),
                    .pointer(ptr(bias)), try code(bias, "experts"), .pointer(ptr(o)), .int(Int32(rows)), .int(Int32(cols)),
                ])
            }
            return try combine(y, weights: weights, T: T, k: k, H: H, then: norm)
        }
        for (input, div, swiglu, w, bias, o, rows, cols) in [(x, k, 0, gateUp, bank.gateUpBias, gu, 2 * I, H),
                                                              (gu, 1, 1, down, bank.downBias, y, H, I)] {
            let groups = (rows + 3) / 4, chunks = (cols / 32 + 31) / 32
            guard chunks <= 4 else { throw OspreyError.invalidTensor("MXFP4 expert rows of \(cols) inputs: the decode kernel takes at most 4,096") }
            try context.launch("MoEDecode", "moe_mxfp4_rows_c\(chunks)", grid: ((groups + warps - 1) / warps, P, 1), block: 32 * warps, [
                .pointer(ptr(input)), .int(Int32(div)), .int(Int32(swiglu)), .float(bank.swigluLimit), .float(bank.alpha),
                .pointer(ptr(ids)), .pointer(w.2), tiled, .pointer(w.3), .pointer(ptr(bias)), try code(bias, "experts"),
                .pointer(ptr(o)), .int(Int32(rows)), .int(Int32(cols)),
            ])
        }
        return try combine(y, weights: weights, T: T, k: k, H: H, then: norm)
    }

    /// input [n, cols] (or, with swiglu 1, the clamped SwiGLU of input [n, 2 * cols]) as int8 per 32
    /// values with an f32 scale each: (q [n, cols], d [n, cols / 32]).
    private func quantizeQ8(_ input: Tensor, rows n: Int, cols: Int, swiglu: Int, bank: ExpertBank) throws -> (Tensor, Tensor) {
        let q = try workspace([n, cols], .u8), d = try workspace([n, cols / 32])
        try context.launch("MoEDecode", "quantize_q8", grid: ((n * cols + 255) / 256, 1, 1), block: 256, [
            .pointer(ptr(input)), .int(Int32(swiglu)), .float(bank.swigluLimit), .float(bank.alpha),
            .pointer(ptr(q)), .pointer(ptr(d)), .int64(Int64(n * cols / 32)), .int(Int32(cols)),
        ])
        return (q, d)
    }

    /// out[t] = sum_j weights[t, j] * y[t*k + j]; with `norm`, (residual + out, its RMSNorm) in one
    /// launch instead (norm.residual [T, H] f32, H <= 4096).
    func combine(_ y: Tensor, weights: Tensor, T: Int, k: Int, H: Int,
                         then norm: (residual: Tensor, weight: Tensor, eps: Float)?) throws -> (out: Tensor, normed: Tensor?) {
        let out = try workspace([T, H])
        guard let norm else {
            try context.launch("MoE", "moe_combine", grid: (min((T * H + 255) / 256, 65535), 1, 1), block: 256, [
                .pointer(ptr(y)), .pointer(ptr(weights)), .pointer(ptr(out)), .int(Int32(T)), .int(Int32(k)), .int(Int32(H)),
            ])
            return (out, nil)
        }
        let normed = try workspace([T, H])
        try context.launch("MoE", "moe_combine_add_rms_norm", grid: (T, 1, 1), block: 1024, [
            .pointer(ptr(y)), .pointer(ptr(weights)), .int(Int32(k)), .pointer(ptr(norm.residual)), .pointer(ptr(norm.weight)),
            try code(norm.weight, "expertsAddRMSNorm"), .pointer(ptr(out)), .pointer(ptr(normed)), .int(Int32(H)), .float(norm.eps),
        ])
        return (out, normed)
    }

    /// Whether a matvec over `pairs` pairs with rows of `cols` inputs takes the 4-rows-per-warp path.
    static func usesRowsPath(pairs: Int, cols: Int) -> Bool { pairs <= 64 && cols % 32 == 0 }

    /// out[p, r] = input[p / div] . W[ids[p], r] + bias[ids[p], r] for every pair p and row r.
    /// Decode-sized batches use one warp per 4 rows of one pair (input held in registers); larger
    /// ones one warp per row over tiles of 8 pairs sorted by expert (each weight row read once per tile).
    private func matvec(input: Tensor, div: Int, ids: Tensor, order: Tensor, pairs P: Int,
                        weights w: (KernelArgument, KernelArgument, CUdeviceptr, CUdeviceptr), tiled: Bool, bias: Tensor,
                        out: Tensor, rows: Int, cols: Int) throws {
        let warps = 8
        let biasArgs: [KernelArgument] = [.pointer(ptr(bias)), try code(bias, "experts"), .pointer(ptr(out)), .int(Int32(rows)), .int(Int32(cols))]
        if Self.usesRowsPath(pairs: P, cols: cols) {
            let groups = (rows + 3) / 4
            try context.launch("MoE", "moe_matvec_rows4", grid: ((groups + warps - 1) / warps, P, 1), block: 32 * warps,
                               [.pointer(ptr(input)), .int(Int32(div)), .pointer(ptr(ids)), w.0, w.1, .pointer(w.2), .int(tiled ? 1 : 0), .pointer(w.3)] + biasArgs)
        } else {
            let tile = 8
            try context.launch("MoE", "moe_matvec", grid: ((rows + warps - 1) / warps, (P + tile - 1) / tile, 1), block: 32 * warps,
                               [.pointer(ptr(input)), .int(Int32(div)), .pointer(ptr(ids)), .pointer(ptr(order)), .int(Int32(P)), .int(Int32(tile)),
                                w.0, w.1, .pointer(w.2), .int(tiled ? 1 : 0), .pointer(w.3)] + biasArgs)
        }
    }
}
