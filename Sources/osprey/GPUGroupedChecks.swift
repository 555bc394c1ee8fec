// Grouped MXFP4 expert GEMM checks for `osprey gpu-check` (issue 6): `experts` of 16 tokens and
// more with MXFP4 weights, run three ways on the GPU (CUDAContext.mxfp4Experts): the grouped
// GEMM on tensor cores (on tiled blocks both the bulk-copy kernels of sm_90 and the cp.async
// ones, each equal to the untiled result), its FMA twin (same tiling, scalar math: if it passes and the MMA one
// fails, the MMA fragment mapping or the register decode is at fault; if both fail, the tiling,
// routing or epilogue), and the old bf16 expansion for cuBLASLt. Both grouped variants against
// the CPU oracle (bound 1e-2: bf16 inputs), the MMA one against the expansion (bound 1e-3: the
// same bf16 roundings, sums in another order). Shapes: 16 to 1,000 tokens, 8 and 32 experts,
// top-2 and top-4; random routing (experts left empty at 32 experts) and skewed routing (7 in 8
// tokens pick expert 0 first, so it spans many tiles; the last expert is never picked);
// H / I = 64 / 64, 96 / 160 (odd block counts, row tiles cut short) and gpt-oss-20b's 2880 / 2880.
// Cases averaging 32 or more pairs per expert (T 300 E 8, T 1000) run the 64-pair MMA kernels.
import Foundation
import OspreyCore
import OspreyCPU
import OspreyCUDA

/// The grouped MXFP4 expert GEMM (CUDABackend+Grouped.swift) against the CPU oracle and the
/// bf16-expansion path: three results per case.
func groupedMXFP4Checks(gpu: CUDABackend, cpu: CPUBackend = CPUBackend()) throws -> [OpChecks.Result] {
    enum Routing: String { case random, skewed }
    let cases: [(T: Int, E: Int, k: Int, H: Int, I: Int, routing: Routing)] = [
        (16, 8, 2, 64, 64, .random), (16, 32, 4, 64, 64, .random), (33, 8, 4, 64, 64, .skewed),
        (100, 32, 4, 64, 64, .random), (100, 8, 2, 96, 160, .random), (300, 32, 2, 64, 64, .skewed),
        (300, 8, 4, 64, 64, .random), (1000, 8, 2, 64, 64, .skewed), (1000, 32, 4, 64, 64, .random),
        (64, 32, 4, 2880, 2880, .random),
    ]
    var checks = OpChecks(gpu: gpu)
    checks.seed = 0x6772_6F75_7065_6421
    let saved = gpu.context.mxfp4Experts
    defer { gpu.context.mxfp4Experts = saved }
    var out: [OpChecks.Result] = []
    for (T, E, k, H, I, routing) in cases {
        let x = checks.random([T, H], scale: 2)
        let logits = checks.random([T, E], scale: 4)
        if routing == .skewed {
            for t in 0..<T {
                if t % 8 != 0 { logits.mutableRaw.storeBytes(of: Float(50), toByteOffset: 4 * (t * E), as: Float.self) }
                logits.mutableRaw.storeBytes(of: Float(-50), toByteOffset: 4 * (t * E + E - 1), as: Float.self)
            }
        }
        let (ids, weights) = try cpu.topKSoftmax(logits, k: k)
        let gub = checks.random([E, 2 * I, H / 32, 16], .u8), db = checks.random([E, H, I / 32, 16], .u8)
        let gus = scales(checks.random([E, 2 * I, H / 32], .u8), inputs: H), ds = scales(checks.random([E, H, I / 32], .u8), inputs: I)
        let bGU = checks.random([E, 2 * I], .bf16, scale: 0.5), bD = checks.random([E, H], .bf16, scale: 0.5)
        let host = ExpertBank(weights: .mxfp4(gateUpBlocks: gub, gateUpScales: gus, downBlocks: db, downScales: ds),
                              gateUpBias: bGU, downBias: bD, swigluLimit: 7)
        let (gusD, dsD) = (try gpu.upload(gus), try gpu.upload(ds))
        let device = ExpertBank(weights: .mxfp4(gateUpBlocks: try gpu.upload(gub), gateUpScales: gusD,
                                                downBlocks: try gpu.upload(db), downScales: dsD),
                                gateUpBias: try gpu.upload(bGU), downBias: try gpu.upload(bD), swigluLimit: 7)
        let reference = try cpu.experts(x, bank: host, ids: ids, weights: weights)
        let (gx, gids, gw) = (try gpu.upload(x), try gpu.upload(ids), try gpu.upload(weights))
        func run(_ kernels: MXFP4ExpertKernels) throws -> Tensor {
            gpu.context.mxfp4Experts = kernels
            try gpu.beginStep()
            return try gpu.experts(gx, bank: device, ids: gids, weights: gw)
        }
        let shape = "T\(T) E\(E) k\(k) H\(H) I\(I) \(routing.rawValue) routing"
        let g = try run(.groupedMMA), mma = try gpu.download(g)  // kept for the comparison with the expansion
        out.append(try checks.compare("experts grouped mxfp4", shape + " (mma vs CPU)", gpu: g, cpu: reference, bound: 1e-2))
        out.append(try checks.compare("experts grouped mxfp4", shape + " (fma twin vs CPU)", gpu: try run(.groupedFMA), cpu: reference, bound: 1e-2))
        out.append(try checks.compare("experts grouped mxfp4", shape + " (mma vs bf16 expansion on the GPU)", gpu: try run(.expansion), cpu: mma,
                                      bound: 1e-3))
        // The same weights in the tiled layout the model loader uses (MXFP4Tiling): the same sums exactly.
        let (tgu, tdn) = (try gpu.uploadExpertBlocks(gub), try gpu.uploadExpertBlocks(db))
        let tiled = ExpertBank(weights: .mxfp4(gateUpBlocks: tgu.blocks, gateUpScales: gusD, downBlocks: tdn.blocks,
                                               downScales: dsD),
                               gateUpBias: device.gateUpBias, downBias: device.downBias, swigluLimit: 7, tiledBlocks: true)
        func runTiled(_ kernels: MXFP4ExpertKernels) throws -> Tensor {
            gpu.context.mxfp4Experts = kernels
            try gpu.beginStep()
            return try gpu.experts(gx, bank: tiled, ids: gids, weights: gw)
        }
        // On sm_90 tiled blocks take the bulk-copy kernels (moe_grouped_tma.cu): the same sums in
        // the same order as the cp.async ones, which stay checked on tiled blocks too.
        out.append(try checks.compare("experts grouped mxfp4", shape + " (mma, tiled blocks, vs untiled)", gpu: try runTiled(.groupedMMA), cpu: mma, bound: 1e-6))
        out.append(try checks.compare("experts grouped mxfp4", shape + " (cp.async mma, tiled blocks, vs untiled)", gpu: try runTiled(.groupedCpAsync),
                                      cpu: mma, bound: 1e-6))
        out.append(try checks.compare("experts grouped mxfp4", shape + " (bf16 expansion, tiled blocks, vs untiled mma)", gpu: try runTiled(.expansion),
                                      cpu: mma, bound: 1e-3))
    }
    return out
}

/// Random scale bytes mapped to base - 2 ... base + 2, base putting dot products of `inputs`
/// e2m1 values (RMS ~3) with inputs of RMS ~1 near 1: 117 ... 121 for 2,880 inputs, 120 ... 124 for 64.
private func scales(_ t: Tensor, inputs: Int) -> Tensor {
    let p = t.mutableRaw.assumingMemoryBound(to: UInt8.self)
    let base = 125 - Int((log2(Double(inputs)) / 2).rounded())
    for i in 0..<t.count { p[i] = UInt8(base - 2 + Int(p[i] % 5)) }
    return t
}
