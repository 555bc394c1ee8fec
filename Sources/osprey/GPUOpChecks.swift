// The op-by-op half of `osprey gpu-check`: each Backend op on the GPU against the CPU oracle, on
// fresh random inputs of several shapes (odd sizes, GQA, windows, sinks, every weight dtype,
// dense and MXFP4 experts). Inputs are made on the host, run through both backends, compared as
// max |gpu - cpu| / max |cpu|; any NaN fails.
import Foundation
import OspreyCore
import OspreyCPU
import OspreyCUDA

struct OpChecks {
    struct Result { let op: String, shape: String, error: Float, passed: Bool }

    let gpu: CUDABackend
    let cpu = CPUBackend()
    var seed: UInt64 = 0x1234_5678

    init(gpu: CUDABackend) { self.gpu = gpu }

    mutating func random(_ shape: Shape, _ dtype: DType = .f32, scale: Float = 1) -> Tensor {
        let t = Tensor(zeros: shape, dtype: dtype)
        for i in 0..<shape.count {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let v = (Float(seed >> 40) / Float(1 << 24) * 2 - 1) * scale
            switch dtype {
            case .bf16: t.mutableRaw.storeBytes(of: bf16Bits(v), toByteOffset: 2 * i, as: UInt16.self)
            case .f16: t.mutableRaw.storeBytes(of: f16Bits(v), toByteOffset: 2 * i, as: UInt16.self)
            case .u8: t.mutableRaw.storeBytes(of: UInt8(truncatingIfNeeded: seed >> 33), toByteOffset: i, as: UInt8.self)
            default: t.mutableRaw.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
            }
        }
        return t
    }

    func compare(_ op: String, _ shape: String, gpu g: Tensor, cpu c: Tensor, bound: Float = 1e-4) throws -> Result {
        let a = try gpu.download(g).floats(), b = c.floats()
        guard a.count == b.count else { return Result(op: op, shape: shape, error: .infinity, passed: false) }
        var d: Float = 0, m: Float = 0
        for i in 0..<a.count {
            if a[i].isNaN || b[i].isNaN { return Result(op: op, shape: shape, error: .nan, passed: false) }
            d = max(d, abs(a[i] - b[i])); m = max(m, abs(b[i]))
        }
        let e = d / max(m, 1e-30)
        return Result(op: op, shape: shape, error: e, passed: e <= bound)
    }

    func up(_ t: Tensor) throws -> Tensor { try gpu.upload(t) }

    mutating func runAll() throws -> [Result] {
        var out: [Result] = []
        for (V, H, T, dt) in [(300, 96, 5, DType.bf16), (1000, 64, 1, .f32), (77, 2880, 3, .f16)] {
            let table = random([V, H], dt)
            let ids = (0..<T).map { Int32(($0 * 37 + 5) % V) }
            try gpu.beginStep()
            out.append(try compare("embedding", "V\(V) H\(H) T\(T) \(dt)", gpu: gpu.embedding(up(table), ids: ids), cpu: cpu.embedding(table, ids: ids)))
        }
        for (T, H, dt) in [(1, 2880, DType.bf16), (7, 64, .f32), (33, 48, .bf16)] {
            let x = random([T, H], scale: 3), w = random([H], dt), y = random([T, H])
            try gpu.beginStep()
            out.append(try compare("rmsNorm", "T\(T) H\(H) \(dt)", gpu: gpu.rmsNorm(up(x), weight: up(w), eps: 1e-5), cpu: cpu.rmsNorm(x, weight: w, eps: 1e-5)))
            try gpu.beginStep()
            out.append(try compare("add", "T\(T) H\(H)", gpu: gpu.add(up(x), up(y)), cpu: cpu.add(x, y)))
            try gpu.beginStep()
            let fused = try gpu.addRMSNorm(up(x), up(y), weight: up(w), eps: 1e-5)
            let sum = try cpu.add(x, y)
            out.append(try compare("addRMSNorm sum", "T\(T) H\(H) \(dt)", gpu: fused.sum, cpu: sum))
            out.append(try compare("addRMSNorm normed", "T\(T) H\(H) \(dt)", gpu: fused.normed, cpu: cpu.rmsNorm(sum, weight: w, eps: 1e-5)))
        }
        // T >= 16 with bf16 weights runs on cuBLASLt with bf16 activations: bf16 bound.
        // 1-4 bf16 rows: one token on sm_90 copies a matrix that fits the SMs' shared memory there (257 x 96;
        // resident cases below), else stages x (blocks of 8 warps up to 16,384 rows, of 4 past them: 20,000 rows);
        // 4 tokens over up to 3,072 inputs read x from global memory (4 x 2880, 4 x 1000), 2-3 tokens and 4,096 inputs stage it.
        for (T, O, I, dt, bias) in [(1, 257, 96, DType.bf16, true), (9, 512, 2880, .bf16, true), (19, 200, 160, .f32, false), (3, 64, 64, .f16, true),
                                    (2, 2880, 4096, .bf16, true), (40, 640, 2880, .bf16, true), (300, 96, 64, .bf16, false),
                                    (1, 20_000, 2880, .bf16, false), (4, 1000, 2880, .bf16, true), (4, 999, 1000, .bf16, false), (2, 999, 1000, .bf16, false)] {
            let x = random([T, I]), w = random([O, I], dt, scale: 0.2), b = bias ? random([O], dt) : nil
            let gemm = T >= 16 && dt == .bf16
            try gpu.beginStep()
            out.append(try compare("linear", "T\(T) O\(O) I\(I) \(dt)\(bias ? " +bias" : "")\(gemm ? " (cuBLASLt, bf16 in)" : "")",
                                   gpu: gpu.linear(up(x), weight: up(w), bias: b.map(up)), cpu: cpu.linear(x, weight: w, bias: b),
                                   bound: gemm ? 1e-2 : 1e-4))
        }
        // One token on sm_90 copies the matrix to shared memory where it fits (resident: 1 or 2
        // blocks per SM; 0 = the staged kernel): o_proj's shape and gpt-oss's q/k/v each way.
        let residentSetting = gpu.context.residentLinearBlocksPerSM
        defer { gpu.context.residentLinearBlocksPerSM = residentSetting }
        for perSM in [0, 1, 2] {
            gpu.context.residentLinearBlocksPerSM = perSM
            let (O, I) = (2880, 4096)
            let x = random([1, I]), w = random([O, I], .bf16, scale: 0.2), b = random([O], .bf16)
            try gpu.beginStep()
            out.append(try compare("linear", "T1 O\(O) I\(I) bf16 +bias, resident \(perSM)/SM", gpu: gpu.linear(up(x), weight: up(w), bias: up(b)),
                                   cpu: cpu.linear(x, weight: w, bias: b)))
        }
        for (T, I, O, perSM) in [(1, 2880, [96, 32, 32], residentSetting), (1, 2880, [4096, 512, 512], 1), (1, 2880, [4096, 512, 512], 0),
                                 (3, 64, [96, 32, 32], residentSetting)] {  // q, k and v in one launch
            gpu.context.residentLinearBlocksPerSM = perSM
            let x = random([T, I])
            let ws = O.map { random([$0, I], .bf16, scale: 0.2) }
            let bs = O.map { random([$0], .bf16) }
            try gpu.beginStep()
            let g = try gpu.linears(up(x), try zip(ws, bs).map { (try up($0), try up($1)) })
            for i in 0..<3 {
                out.append(try compare("linears[\(i)]", "T\(T) O\(ws[i].shape[0]) I\(I) bf16 +bias (one launch, resident \(perSM)/SM)", gpu: g[i],
                                       cpu: cpu.linear(x, weight: ws[i], bias: bs[i])))
            }
        }
        gpu.context.residentLinearBlocksPerSM = residentSetting
        // From 16 rows: one bf16 conversion of x for the three GEMMs, f32 biases added by cuBLASLt's epilogue.
        for (T, I) in [(16, 2880), (64, 2880), (300, 64)] {
            let x = random([T, I])
            let ws = [random([640, I], .bf16, scale: 0.2), random([128, I], .bf16, scale: 0.2), random([128, I], .bf16, scale: 0.2)]
            let bs = [random([640]), random([128]), random([128])]
            try gpu.beginStep()
            let g = try gpu.linears(up(x), try zip(ws, bs).map { (try up($0), try up($1)) })
            for i in 0..<3 {
                out.append(try compare("linears[\(i)]", "T\(T) O\(ws[i].shape[0]) I\(I) bf16 +f32 bias (cuBLASLt, bias epilogue, bf16 in)",
                                       gpu: g[i], cpu: cpu.linear(x, weight: ws[i], bias: bs[i]), bound: 1e-2))
            }
        }
        for (T, Hn, D, start) in [(5, 4, 16, 0), (1, 8, 64, 4095), (12, 3, 24, 100_000)] {
            let x = random([T, Hn, D])
            let f = inverseFrequencies(D)
            try gpu.beginStep()
            out.append(try compare("rope", "T\(T) heads\(Hn) D\(D) start\(start)", gpu: gpu.rope(up(x), start: start, invFreq: up(f), scaling: 1.3466),
                                   cpu: cpu.rope(x, start: start, invFreq: f, scaling: 1.3466)))
        }
        let attentionCases: [(Int, Int, Int, Int, Int, Int?, Bool, Int)] = [
            (1, 300, 64, 8, 64, nil, true, 299), (1, 127, 64, 8, 64, 128, true, 500), (7, 20, 6, 2, 16, 5, true, 13),
            (24, 24, 3, 1, 24, nil, false, 0), (5, 9, 4, 4, 32, 3, true, 4),
            (1, 1000, 64, 8, 64, nil, true, 999), (70, 70, 16, 2, 64, 32, true, 0), (33, 100, 8, 8, 128, nil, true, 67),
        ]
        for (T, S, Hq, Hkv, D, window, sinks, qstart) in attentionCases {
            let q = random([T, Hq, D], scale: 2), k = random([S, Hkv, D], scale: 2), v = random([S, Hkv, D])
            let s = sinks ? random([Hq], .bf16, scale: 3) : nil
            let span = AttentionSpan(queryStart: qstart, keyStart: qstart + T - S, window: window)
            try gpu.beginStep()
            out.append(try compare("attention", "T\(T) S\(S) Hq\(Hq) Hkv\(Hkv) D\(D) window \(window.map(String.init) ?? "-")\(sinks ? " sinks" : "")",
                                   gpu: gpu.attention(q: up(q), k: up(k), v: up(v), sinks: s.map(up), span: span, scale: 1 / Float(D).squareRoot()),
                                   cpu: cpu.attention(q: q, k: k, v: v, sinks: s, span: span, scale: 1 / Float(D).squareRoot())))
        }
        for (T, E, k) in [(1, 32, 4), (17, 128, 4), (5, 6, 3)] {
            let logits = random([T, E], scale: 4)
            try gpu.beginStep()
            let g = try gpu.topKSoftmax(up(logits), k: k), c = try cpu.topKSoftmax(logits, k: k)
            out.append(try compare("topKSoftmax ids", "T\(T) E\(E) k\(k)", gpu: g.ids, cpu: c.ids, bound: 0))
            out.append(try compare("topKSoftmax weights", "T\(T) E\(E) k\(k)", gpu: g.weights, cpu: c.weights))
        }
        // The fused residual add + norm + router + top-k (one kernel up to 512 rows; 600 rows and H 4104 take the unfused ops).
        for (T, H, E, k) in [(1, 2880, 32, 4), (3, 2880, 128, 4), (5, 64, 6, 3), (12, 128, 32, 4), (64, 2880, 32, 4), (600, 64, 8, 2),
                             (3, 4104, 8, 2)] {
            let a = random([T, H], scale: 2), b = random([T, H]), w = random([H], .bf16, scale: 1)
            let router = random([E, H], .bf16, scale: 0.2), bias = random([E], .bf16, scale: 0.5)
            try gpu.beginStep()
            let g = try gpu.addRMSNormRoute(up(a), up(b), weight: up(w), eps: 1e-5, router: up(router), routerBias: up(bias), k: k)
            let c = try cpu.addRMSNormRoute(a, b, weight: w, eps: 1e-5, router: router, routerBias: bias, k: k)
            let shape = "T\(T) H\(H) E\(E) k\(k)"
            out.append(try compare("addRMSNormRoute sum", shape, gpu: g.sum, cpu: c.sum))
            out.append(try compare("addRMSNormRoute normed", shape, gpu: g.normed, cpu: c.normed))
            out.append(try compare("addRMSNormRoute ids", shape, gpu: g.ids, cpu: c.ids, bound: 0))
            out.append(try compare("addRMSNormRoute weights", shape, gpu: g.weights, cpu: c.weights))
        }
        // addRMSNormRoute also makes the int8 form of its normed rows for the decode experts (quantize_q8's
        // job, same rounding): experts fed from it must give exactly what they give on a copy of the rows.
        for (T, H, I, E, k) in [(1, 2880, 2880, 32, 4), (3, 64, 96, 6, 3)] {
            let a = random([T, H], scale: 2), b = random([T, H]), w = random([H], .bf16, scale: 1)
            let router = random([E, H], .bf16, scale: 0.2), bias = random([E], .bf16, scale: 0.5)
            let bank = try mxfp4Bank(E: E, H: H, I: I, gateUpBias: random([E, 2 * I], .bf16, scale: 0.5), downBias: random([E, H], .bf16, scale: 0.5)).device
            try gpu.beginStep()
            let r = try gpu.addRMSNormRoute(up(a), up(b), weight: up(w), eps: 1e-5, router: up(router), routerBias: up(bias), k: k)
            let fed = try gpu.experts(r.normed, bank: bank, ids: r.ids, weights: r.weights)
            let own = try gpu.experts(up(gpu.download(r.normed)), bank: bank, ids: r.ids, weights: r.weights)
            out.append(try compare("experts on addRMSNormRoute's int8 rows", "T\(T) H\(H) I\(I) E\(E) k\(k) mxfp4, vs quantize_q8",
                                   gpu: fed, cpu: gpu.download(own), bound: 0))
        }
        // T >= 16 runs on cuBLASLt (bf16 activations): bf16 bound.
        for (T, E, k, H, I, mx) in [(1, 32, 4, 2880, 2880, true), (6, 5, 2, 64, 96, true), (4, 3, 2, 48, 32, false), (9, 8, 4, 256, 128, false),
                                    (2, 32, 4, 2880, 2880, true), (64, 32, 4, 2880, 2880, true), (40, 8, 2, 256, 128, false), (100, 6, 3, 64, 96, true)] {
            let x = random([T, H], scale: 2)
            let logits = random([T, E], scale: 4)
            let routing = try cpu.topKSoftmax(logits, k: k)
            let bGU = random([E, 2 * I], .bf16, scale: 0.5), bD = random([E, H], .bf16, scale: 0.5)
            let hostBank: ExpertBank, devBank: ExpertBank
            if mx {
                (hostBank, devBank) = try mxfp4Bank(E: E, H: H, I: I, gateUpBias: bGU, downBias: bD)
            } else {
                let gu = random([E, 2 * I, H], .bf16, scale: 0.3), dn = random([E, H, I], .bf16, scale: 0.3)
                hostBank = ExpertBank(weights: .dense(gateUp: gu, down: dn), gateUpBias: bGU, downBias: bD, swigluLimit: 7)
                devBank = ExpertBank(weights: .dense(gateUp: try up(gu), down: try up(dn)), gateUpBias: try up(bGU), downBias: try up(bD), swigluLimit: 7)
            }
            let gemm = T >= 16
            let reference = try cpu.experts(x, bank: hostBank, ids: routing.ids, weights: routing.weights)
            // MXFP4 decode runs with int8 inputs by default and exactly in f32 when asked (bound 1e-4:
            // that checks the kernels' decoding). int8: two quantizations in a row (x, then SwiGLU(gu)),
            // each value off by up to 1/254 of its 32-value block's largest; bound 3e-2 (the 64-wide
            // case measured 1.1e-2 and 2.1e-2 on two draws of random data, H200, 2026-11-29).
            for int8 in mx && !gemm ? [true, false] : [gpu.context.int8DecodeActivations] {
                gpu.context.int8DecodeActivations = int8
                defer { gpu.context.int8DecodeActivations = true }
                try gpu.beginStep()
                let g = try gpu.experts(up(x), bank: devBank, ids: up(routing.ids), weights: up(routing.weights))
                let mode = gemm ? (mx ? " (GEMM path: grouped MXFP4 or cuBLASLt; bf16 in)" : " (cuBLASLt, bf16 in)") : (mx && int8 ? " (int8 inputs, dp4a)" : "")
                out.append(try compare("experts", "T\(T) E\(E) k\(k) H\(H) I\(I) \(mx ? "mxfp4" : "bf16")\(mode)", gpu: g,
                                       cpu: reference, bound: gemm ? 1e-2 : (mx && int8 ? 3e-2 : 1e-4)))
                // The combine folded into the residual add and the next norm (moe_combine_add_rms_norm).
                let residual = random([T, H]), nw = random([H], .bf16, scale: 1)
                let f = try gpu.expertsAddRMSNorm(up(x), bank: devBank, ids: up(routing.ids), weights: up(routing.weights),
                                                  residual: up(residual), weight: up(nw), eps: 1e-5)
                let c = try cpu.addRMSNorm(residual, reference, weight: nw, eps: 1e-5)
                let fusedCase = "T\(T) E\(E) k\(k) H\(H) I\(I) \(mx ? "mxfp4" : "bf16")\(mode)"
                out.append(try compare("expertsAddRMSNorm sum", fusedCase, gpu: f.sum, cpu: c.sum, bound: gemm ? 1e-2 : (mx && int8 ? 3e-2 : 1e-4)))
                out.append(try compare("expertsAddRMSNorm normed", fusedCase, gpu: f.normed, cpu: c.normed, bound: gemm ? 1e-2 : (mx && int8 ? 3e-2 : 1e-4)))
            }
        }
        out += try pagedChecks()
        return out
    }

    /// Random MXFP4 experts (host and device copies) with the given biases.
    mutating func mxfp4Bank(E: Int, H: Int, I: Int, gateUpBias bGU: Tensor, downBias bD: Tensor) throws -> (host: ExpertBank, device: ExpertBank) {
        var gus = random([E, 2 * I, H / 32], .u8), ds = random([E, H, I / 32], .u8)
        // Scales near 2^0 keep the activations in a useful range; a few extreme ones too.
        gus = clampScales(gus, sqrtLen: H); ds = clampScales(ds, sqrtLen: I)
        let gub = random([E, 2 * I, H / 32, 16], .u8), db = random([E, H, I / 32, 16], .u8)
        let host = ExpertBank(weights: .mxfp4(gateUpBlocks: gub, gateUpScales: gus, downBlocks: db, downScales: ds), gateUpBias: bGU, downBias: bD, swigluLimit: 7)
        let device = ExpertBank(weights: .mxfp4(gateUpBlocks: try up(gub), gateUpScales: try up(gus), downBlocks: try up(db), downScales: try up(ds)),
                                gateUpBias: try up(bGU), downBias: try up(bD), swigluLimit: 7)
        return (host, device)
    }

    /// Maps random scale bytes to 2^-(log2(len)/2 + 0..3) around unit-variance outputs, with one 0 and one 254 planted.
    func clampScales(_ t: Tensor, sqrtLen: Int) -> Tensor {
        let p = t.mutableRaw.assumingMemoryBound(to: UInt8.self)
        let base = 127 - Int((log2(Double(sqrtLen)) / 2).rounded())
        for i in 0..<t.count { p[i] = UInt8(base - Int(p[i] % 4)) }
        p[0] = 0
        if t.count > 1 { p[t.count - 1] = 120 }
        return t
    }
}

// MARK: - Paged ops (continuous batching)

extension OpChecks {
    /// paged attention (decode with few and many sequences, chunked prefill with mixed query counts),
    /// writeKV, rope at positions and gatherRows against the CPU; the attention and writeKV cases
    /// with a bf16 cache (the engine's default) and an f32 one.
    mutating func pagedChecks() throws -> [Result] {
        var out: [Result] = []
        // Decode: (sequences, Hq, Hkv, D, window, sinks, block size). Few sequences split their keys;
        // D 24 takes the any-size kernel, 12/1 heads two head chunks of 8 and 4.
        let decode: [(Int, Int, Int, Int, Int?, Bool, Int)] = [
            (1, 64, 8, 64, nil, true, 16), (5, 64, 8, 64, 128, true, 16), (64, 64, 8, 64, nil, false, 16), (64, 64, 8, 64, 128, true, 16),
            (5, 64, 8, 64, 8, false, 16), (5, 4, 2, 32, 8, true, 16), (64, 4, 2, 32, nil, false, 16), (1, 4, 2, 32, 128, true, 16),
            (5, 6, 2, 24, nil, true, 16), (3, 8, 1, 128, 128, true, 16), (4, 12, 1, 16, nil, false, 4),
        ]
        for kv in [DType.bf16, .f32] {
            for (S, Hq, Hkv, D, window, sinks, bs) in decode {
                let seqs = (0..<S).map { s in (context: S == 1 ? 600 : 1 + (s * 137 + 53) % 600, queries: 1) }
                out.append(try pagedCase("decode", seqs, Hq: Hq, Hkv: Hkv, D: D, window: window, sinks: sinks, blockSize: bs, kv: kv))
            }
        }
        // The tensor-core kernel (bf16 cache, D 64, up to 16 query heads per kv head): Q and the
        // probabilities rounded to bf16, so a bound of 1e-2; 12 and 16 heads per kv head pad fewer rows.
        let mmaDecode: [(Int, Int, Int, Int?, Bool, Int)] = [
            (1, 64, 8, nil, true, 16), (5, 64, 8, 128, true, 16), (64, 64, 8, nil, false, 16), (64, 64, 8, 128, true, 32),
            (5, 64, 8, 8, false, 16), (3, 12, 1, nil, true, 16), (3, 16, 1, 128, true, 16), (200, 64, 8, nil, true, 32),
        ]
        for (S, Hq, Hkv, window, sinks, bs) in mmaDecode {
            let seqs = (0..<S).map { s in (context: S == 1 ? 2000 : 1 + (s * 137 + 53) % 1500, queries: 1) }
            out.append(try pagedCase("decode", seqs, Hq: Hq, Hkv: Hkv, D: 64, window: window, sinks: sinks, blockSize: bs, kv: .bf16, tensorCores: true))
        }
        // Chunked prefill: query runs of 1 to 200 at the end of longer contexts (runs of at most 8 take
        // the per-row kernel, longer ones the per-query one); D 24 and 128 take the per-row kernel
        // throughout, and so does a batch whose runs are all short.
        let mixed: [(context: Int, queries: Int)] = [(300, 200), (64, 64), (513, 1), (450, 130), (20, 3), (600, 9)]
        let short: [(context: Int, queries: Int)] = [(100, 8), (50, 3), (600, 1), (9, 2)]
        let prefill: [([(context: Int, queries: Int)], Int, Int, Int, Int?, Bool)] = [
            (mixed, 64, 8, 64, nil, true), (mixed, 64, 8, 64, 128, false), (mixed, 64, 8, 64, 8, true), (mixed, 4, 2, 32, 128, true),
            (mixed, 4, 2, 32, nil, false), (mixed, 6, 2, 24, 128, true), (mixed, 8, 2, 128, nil, true), (short, 64, 8, 64, 128, true),
        ]
        for kv in [DType.bf16, .f32] {
            for (seqs, Hq, Hkv, D, window, sinks) in prefill {
                out.append(try pagedCase("prefill", seqs, Hq: Hq, Hkv: Hkv, D: D, window: window, sinks: sinks, blockSize: 16, kv: kv))
            }
        }
        // The prefill runs on tensor cores too (paged_prefill_mma: 16 queries of one head per warp, any
        // number of heads per kv head): runs across 64-query tiles, windows, no sinks, long contexts.
        let long: [(context: Int, queries: Int)] = [(2000, 700), (1500, 1500), (90, 17)]
        let mmaPrefill: [([(context: Int, queries: Int)], Int, Int, Int?, Bool, Int)] = [
            (mixed, 64, 8, 128, true, 16), (short, 64, 8, nil, true, 16), (mixed, 64, 8, nil, false, 32), (mixed, 64, 8, 8, true, 16),
            (mixed, 12, 1, 128, true, 16), (long, 64, 8, nil, true, 32), (long, 64, 8, 128, true, 32),
        ]
        for (seqs, Hq, Hkv, window, sinks, bs) in mmaPrefill {
            out.append(try pagedCase("prefill", seqs, Hq: Hq, Hkv: Hkv, D: 64, window: window, sinks: sinks, blockSize: bs, kv: .bf16, tensorCores: true))
        }

        // writeKV must store exactly what the CPU stores: for bf16, the same round-to-nearest-even
        // bits, including ties (some values are set halfway between two bf16 values, both parities).
        let ties: [UInt32] = [0x3F80_8000, 0x3F81_8000, 0xBF80_8000, 0xC2C7_8000, 0x0000_8000, 0x7F7E_8000]
        for kv in [DType.bf16, .f32] {
            for (T, Hkv, D) in [(37, 8, 64), (5, 3, 5)] {
                let k = random([T, Hkv, D]), v = random([T, Hkv, D])
                for (i, bits) in ties.enumerated() { k.mutableRaw.storeBytes(of: Float(bitPattern: bits), toByteOffset: 4 * (i * 7 % k.count), as: Float.self) }
                let kCache = random([50, Hkv, D], kv), vCache = random([50, Hkv, D], kv)
                let slots = i32((0..<T).map { $0 % 4 == 1 ? -1 : Int32((T - $0) * 7 % 50) })
                let (gk, gv) = (try up(kCache), try up(vCache))
                try gpu.beginStep()
                try gpu.writeKV(k: up(k), v: up(v), kCache: gk, vCache: gv, slots: up(slots))
                try cpu.writeKV(k: k, v: v, kCache: kCache, vCache: vCache, slots: slots)
                out.append(try compare("writeKV k", "T\(T) Hkv\(Hkv) D\(D) rows 50 kv \(kv)", gpu: gk, cpu: kCache, bound: 0))
                out.append(try compare("writeKV v", "T\(T) Hkv\(Hkv) D\(D) rows 50 kv \(kv)", gpu: gv, cpu: vCache, bound: 0))
            }
        }
        // The rotation of k fused with its store: what rope(q, k) then writeKV store and return.
        // 6 tokens: 8 heads per block (q's 8 in one, k's 2 in another); 20: a block per token.
        for (kv, T) in [(DType.bf16, 6), (.f32, 6), (.bf16, 20)] {
            let (Hq, Hkv, D) = (8, 2, 64)
            let q = random([T, Hq, D]), k = random([T, Hkv, D]), v = random([T, Hkv, D])
            let kCache = random([40, Hkv, D], kv), vCache = random([40, Hkv, D], kv)
            let starts: [Int32] = [0, 9, 4095, 2, 100_000, 7]
            let slots = i32((0..<T).map { (t: Int) -> Int32 in t == 1 ? -1 : Int32((t * 7 + 3) % 40) })
            let positions = i32((0..<T).map { (t: Int) -> Int32 in starts[t % 6] })
            let freqs = inverseFrequencies(D)
            let (gk, gv) = (try up(kCache), try up(vCache))
            try gpu.beginStep()
            let gq = try gpu.ropeWriteKV(q: up(q), k: up(k), v: up(v), positions: up(positions), invFreq: up(freqs), scaling: 1.3466,
                                         kCache: gk, vCache: gv, slots: up(slots))
            let cq = try cpu.ropeWriteKV(q: q, k: k, v: v, positions: positions, invFreq: freqs, scaling: 1.3466,
                                         kCache: kCache, vCache: vCache, slots: slots)
            let shape = "T\(T) Hq\(Hq) Hkv\(Hkv) D\(D) rows 40 kv \(kv), slot -1 skipped"
            out.append(try compare("ropeWriteKV q", shape, gpu: gq, cpu: cq))
            // bf16: a last-bit difference of the rotation can round to the neighbouring bf16 value.
            out.append(try compare("ropeWriteKV k cache", shape, gpu: gk, cpu: kCache, bound: kv == .bf16 ? 8e-3 : 1e-4))
            out.append(try compare("ropeWriteKV v cache", shape, gpu: gv, cpu: vCache, bound: 0))
        }
        let x = random([7, 8, 64])
        let freqs = inverseFrequencies(64)
        let positions = i32([0, 4095, 5, 100_000, 17, 17, 3])
        try gpu.beginStep()
        out.append(try compare("rope(positions:)", "T7 heads8 D64 positions 0...100000", gpu: gpu.rope(up(x), positions: up(positions), invFreq: up(freqs), scaling: 1.3466),
                               cpu: cpu.rope(x, positions: positions, invFreq: freqs, scaling: 1.3466)))
        let kx = random([7, 3, 64])
        try gpu.beginStep()
        let pair = try gpu.rope(up(x), up(kx), positions: up(positions), invFreq: up(freqs), scaling: 1.3466)
        out.append(try compare("rope(q, k, positions:) q", "T7 heads8 + 3 D64", gpu: pair.q, cpu: cpu.rope(x, positions: positions, invFreq: freqs, scaling: 1.3466)))
        out.append(try compare("rope(q, k, positions:) k", "T7 heads8 + 3 D64", gpu: pair.k, cpu: cpu.rope(kx, positions: positions, invFreq: freqs, scaling: 1.3466)))
        let rows = random([9, 2880]), picks = i32([8, 0, 3, 3])
        try gpu.beginStep()
        out.append(try compare("gatherRows", "T9 H2880 rows [8, 0, 3, 3]", gpu: gpu.gatherRows(up(rows), rows: up(picks)), cpu: cpu.gatherRows(rows, rows: picks), bound: 0))
        return out
    }

    /// RoPE inverse frequencies of head size D with gpt-oss's theta (150,000), [D / 2].
    func inverseFrequencies(_ D: Int) -> Tensor {
        Tensor((0..<(D / 2)).map { i in Float(1 / Foundation.pow(150_000.0, Double(2 * i) / Double(D))) }, shape: [D / 2])
    }

    /// One pagedAttention comparison on a random paged cache: blocks handed out in a random order,
    /// blocks a sliding window has released -1 in the table, and NaN in every cache row no query
    /// may read (spare and released blocks, the tail of each last block), so a wrong read fails.
    /// The cache holds `kv` (bf16 or f32); both backends read the same values.
    mutating func pagedCase(_ kind: String, _ seqs: [(context: Int, queries: Int)], Hq: Int, Hkv: Int, D: Int, window: Int?, sinks: Bool,
                            blockSize bs: Int, kv: DType, tensorCores: Bool = false) throws -> Result {
        let blocks = seqs.map { ($0.context + bs - 1) / bs }
        let maxBlocks = blocks.max()! + 1, total = blocks.reduce(3, +)
        var order = Array(0..<total)
        for i in stride(from: total - 1, to: 0, by: -1) {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            order.swapAt(i, Int(seed >> 33) % (i + 1))
        }
        let (kCache, vCache) = (random([total * bs, Hkv, D], kv, scale: 2), random([total * bs, Hkv, D], kv))
        var owned = [Bool](repeating: false, count: total * bs)
        var table = [Int32](repeating: -1, count: seqs.count * maxBlocks)
        var next = 0
        for (s, (context, n)) in seqs.enumerated() {
            let firstVisible = window.map { max(0, context - n - $0 + 1) } ?? 0
            for b in 0..<blocks[s] {
                let id = order[next]
                next += 1
                guard (b + 1) * bs > firstVisible else { continue }  // released
                table[s * maxBlocks + b] = Int32(id)
                for p in (b * bs)..<min(context, (b + 1) * bs) { owned[id * bs + p - b * bs] = true }
            }
        }
        let row = Hkv * D
        for r in 0..<(total * bs) where !owned[r] {
            for i in (r * row)..<((r + 1) * row) {
                if kv == .bf16 {
                    kCache.mutableRaw.storeBytes(of: bf16Bits(.nan), toByteOffset: 2 * i, as: UInt16.self)
                    vCache.mutableRaw.storeBytes(of: bf16Bits(.nan), toByteOffset: 2 * i, as: UInt16.self)
                } else {
                    kCache.mutableRaw.storeBytes(of: Float.nan, toByteOffset: 4 * i, as: Float.self)
                    vCache.mutableRaw.storeBytes(of: Float.nan, toByteOffset: 4 * i, as: Float.self)
                }
            }
        }
        var starts: [Int32] = [0]
        for (_, n) in seqs { starts.append(starts.last! + Int32(n)) }
        let layout = PagedLayout(queryStarts: i32(starts), contextLengths: i32(seqs.map { Int32($0.context) }),
                                 blockTables: i32(table).reshaped([seqs.count, maxBlocks]), blockSize: bs, sequenceCount: seqs.count,
                                 maxQueryLength: seqs.map(\.queries).max()!, maxContextLength: seqs.map(\.context).max()!)
        var device = layout
        (device.queryStarts, device.contextLengths, device.blockTables) = (try up(layout.queryStarts), try up(layout.contextLengths), try up(layout.blockTables))
        let q = random([Int(starts.last!), Hq, D], scale: 2)
        let s = sinks ? random([Hq], .bf16, scale: 3) : nil
        let scale = 1 / Float(D).squareRoot()
        let counts = seqs.count > 8 ? "\(seqs.count) sequences, contexts ≤ \(layout.maxContextLength)" : seqs.map { "\($0.queries)/\($0.context)" }.joined(separator: " ")
        try gpu.beginStep()
        let saved = gpu.context.pagedTensorCores
        gpu.context.pagedTensorCores = tensorCores
        defer { gpu.context.pagedTensorCores = saved }
        return try compare("pagedAttention \(kind)", "\(counts) Hq\(Hq) Hkv\(Hkv) D\(D) window \(window.map(String.init) ?? "-")\(sinks ? " sinks" : "") block \(bs) kv \(kv)"
                           + (tensorCores ? " (tensor cores)" : ""),
                           gpu: gpu.pagedAttention(q: up(q), kCache: up(kCache), vCache: up(vCache), sinks: s.map(up), layout: device, window: window, scale: scale),
                           cpu: cpu.pagedAttention(q: q, kCache: kCache, vCache: vCache, sinks: s, layout: layout, window: window, scale: scale),
                           bound: tensorCores ? 1e-2 : 1e-4)
    }

    func i32(_ values: [Int32]) -> Tensor {
        let t = Tensor(zeros: [values.count], dtype: .i32)
        for (i, x) in values.enumerated() { t.mutableRaw.storeBytes(of: x, toByteOffset: 4 * i, as: Int32.self) }
        return t
    }
}
