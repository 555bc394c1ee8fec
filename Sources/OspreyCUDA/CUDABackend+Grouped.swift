// MXFP4 experts of batches of 16 tokens and more as one grouped GEMM on tensor cores (issue 6):
// five launches (route, gather, gate_up + bias + SwiGLU, down + bias, combine [+ residual + the
// next norm]), no host
// synchronisation and no bf16 copy of the weights: each CTA dequantizes the packed blocks of
// 128 rows of one expert in registers for a tile of its (token, pick) pairs. The tile list is
// built on the device, so the GEMM grid covers the worst case (⌈P / tile⌉ + min(E, P) tiles) and
// surplus CTAs return at once. On sm_90 with tiled blocks (what the loader makes) the GEMMs are
// the bulk-copy ring kernels (Kernels/moe_grouped_tma.cu, layer "MoEGroupedTMA"; tiles of 16, 32
// or 64 pairs as the batch averages ≤ 8, ≤ 24 or more pairs per expert); elsewhere the cp.async
// ones (Kernels/moe_grouped.cu, layer "MoEGrouped"; tiles of 32, or 64 from 32 pairs per expert).
// `CUDAContext.mxfp4Experts` picks between these, the FMA twin (checks) and the bf16 expansion for
// cuBLASLt (CUDABackend+GEMM.swift); by default grouped up to 256 pairs per expert, the expansion above.
import Foundation
import OspreyCore

/// How a GPU runs the MXFP4 experts of batches of 16 tokens or more.
public enum MXFP4ExpertKernels: String, Sendable, CaseIterable {
    /// `groupedMMA` while the experts average at most 256 (token, pick) pairs (gpt-oss-20b: up to
    /// 2,048 tokens), `expansion` above that when cuBLASLt is there (the default; see
    /// `CUDABackend.groupedMaxPairsPerExpert`).
    case auto
    /// Grouped GEMM: weights dequantized in registers, bf16 tensor-core MMAs, at every batch size
    /// (the bulk-copy kernels where they run: sm_90, tiled blocks; else the cp.async ones).
    case groupedMMA
    /// The cp.async grouped GEMM even where the bulk-copy kernels run (checks, comparisons).
    case groupedCpAsync
    /// The same grouped tiling with scalar FMAs and a naive decode: slow, for the checks (it tells
    /// an MMA fragment-layout bug from a tiling bug).
    case groupedFMA
    /// Each layer's weights expanded to bf16, then per-expert cuBLASLt GEMMs (the routing read on the host).
    case expansion
}

extension CUDAContext {
    /// Which kernels run MXFP4 experts of 16 tokens or more. Starts as OSPREY_MXFP4_GROUPED says:
    /// 0 → `.expansion`, 1 → `.groupedMMA`, cpasync → `.groupedCpAsync`, fma → `.groupedFMA`,
    /// otherwise `.auto`.
    public var mxfp4Experts: MXFP4ExpertKernels {
        get { GroupedSettings.shared[self] }
        set { GroupedSettings.shared[self] = newValue }
    }
}

/// Holds `mxfp4Experts` per context (an extension cannot add a stored property to CUDAContext).
private final class GroupedSettings: @unchecked Sendable {  // mutable state behind `lock`
    static let shared = GroupedSettings()
    private let lock = NSLock()
    private var kernels: [ObjectIdentifier: MXFP4ExpertKernels] = [:]
    private let initial: MXFP4ExpertKernels = switch ProcessInfo.processInfo.environment["OSPREY_MXFP4_GROUPED"] {
    case "0": .expansion
    case "1": .groupedMMA
    case "cpasync": .groupedCpAsync
    case "fma": .groupedFMA
    default: .auto
    }

    subscript(context: CUDAContext) -> MXFP4ExpertKernels {
        get { lock.withLock { kernels[ObjectIdentifier(context)] ?? initial } }
        set { lock.withLock { kernels[ObjectIdentifier(context)] = newValue } }
    }
}

extension CUDAContext {
    /// Whether the grouped GEMM kernels ask for the largest shared-memory carveout (their ~44 KB
    /// CTAs: 5 per SM with it); OSPREY_GROUPED_CARVEOUT=0 leaves the driver's choice.
    var groupedCarveout: Bool { Self.groupedCarveoutSetting }
    /// Read once: the environment is rebuilt as a dictionary on every access, and this is asked per launch.
    private static let groupedCarveoutSetting = ProcessInfo.processInfo.environment["OSPREY_GROUPED_CARVEOUT"] != "0"
}

extension CUDABackend {
    /// Weight rows per CTA of the grouped GEMM (GM_ROWS in moe_grouped.cu).
    static let groupedRows = 128
    /// Under `.auto`, batches whose experts average more (token, pick) pairs take the expansion.
    /// Measured on an H200 with gpt-oss-20b's experts (E 32, top-4, H = I = 2,880) in an engine
    /// prefill step (osprey profile-decode, 2026-11-29, bulk-copy kernels with the bf16 decode): at
    /// 2,048 tokens (256 pairs per expert) the grouped GEMMs took 2.18 ms per layer against 2.55 for
    /// the expansion (0.85 of it the bf16 copy of the weights) and its GEMMs; at 8,192 tokens the
    /// expansion took 3.0 (the grouped ones grow ~linearly: ~8.7).
    static let groupedMaxPairsPerExpert = 256

    /// Shared memory of a grouped GEMM CTA with tiles of `pairs` pairs over K inputs: its cp.async
    /// stages (4 of 4 KB weights + 4 KB inputs with 32 pairs, 3 of 4 + 8 KB with 64), then the
    /// CTA's scales (128 rows × K / 32 bytes, + 32 for alignment). At most 48 KB (no opt-in).
    static func groupedShared(pairs: Int, inputs K: Int) -> Int {
        (pairs == 64 ? 3 : 4) * (4096 + 128 * pairs) + groupedRows * (K / 32) + 32
    }

    /// Shared memory of a bulk-copy grouped GEMM CTA (moe_grouped_tma.cu): 128 bytes of mbarriers,
    /// `stages` stages of 8 KB of weights + 320 bytes per pair, the CTA's scales (128 rows, a stride
    /// of ⌈nb⌉ to 4 mod 8 bytes).
    static func tmaShared(pairs: Int, stages: Int, inputs K: Int) -> Int {
        let nb = K / 32
        return 128 + stages * (8192 + 320 * pairs) + 128 * (((nb + 3) & ~7) + 4)
    }

    /// The bulk-copy kernels' tile (pairs, stages) for P pairs over E experts: the fastest of
    /// benchmarks/kernels/grouped_kernels.cu at 16-64 (16), 128 (32) and 256-2,048 tokens (64) of gpt-oss-20b.
    static func tmaTile(pairs P: Int, experts E: Int) -> (pairs: Int, stages: Int) {
        P <= 8 * E ? (16, 3) : P <= 24 * E ? (32, 3) : (64, 2)
    }

    /// Whether the bulk-copy kernels run this bank: sm_90 or later, tiled blocks, not overridden.
    func expertsUseTMA(bank: ExpertBank, inputs K: Int) -> Bool {
        let kernels = context.mxfp4Experts
        return (kernels == .auto || kernels == .groupedMMA) && bank.tiledBlocks && context.computeCapability.major >= 9
            && Self.tmaShared(pairs: 64, stages: 2, inputs: K) <= 227 << 10
    }

    /// Whether a batch's MXFP4 experts take the grouped kernels: selected, and shapes they take
    /// (inputs of both halves at most 4,064: the CTA's scales share the 48 KB of shared memory
    /// with the stages; E at most 2,048: the router's counters, 16 E bytes).
    func expertsUseGrouped(bank: ExpertBank) -> Bool {
        guard context.mxfp4Experts != .expansion, case .mxfp4(let gub, let gus, let db, let ds) = bank.weights else { return false }
        let H = bank.downBias.shape[-1], I = bank.gateUpBias.shape[-1] / 2, E = bank.weights.count
        return H % 32 == 0 && I % 32 == 0 && Self.groupedShared(pairs: 32, inputs: max(H, I)) <= 48 << 10 && E <= 2048
            && [gub, gus, db, ds].allSatisfy { ptr($0) % 16 == 0 }  // cp.async copies 16-byte pieces
    }

    /// Whether a batch of `pairs` (token, pick) pairs that `expertsUseGrouped` allows is best run grouped.
    func groupedPreferred(pairs P: Int, experts E: Int) -> Bool {
        context.mxfp4Experts != .auto || P <= Self.groupedMaxPairsPerExpert * E || !context.hasGEMM
    }

    /// The routed MXFP4 experts of T tokens as grouped GEMMs; returns out [T, H]. Shapes were
    /// checked by `experts` and `expertsUseGrouped`.
    func expertsGrouped(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor, T: Int, k: Int, H: Int, I: Int,
                        then norm: (residual: Tensor, weight: Tensor, eps: Float)?) throws -> (out: Tensor, normed: Tensor?) {
        guard case .mxfp4(let gub, let gus, let db, let ds) = bank.weights else {
            throw OspreyError.invalidTensor("experts: the grouped kernels take MXFP4 weights")
        }
        let E = bank.weights.count, P = T * k
        let bulk = expertsUseTMA(bank: bank, inputs: max(H, I)) ? Self.tmaTile(pairs: P, experts: E) : nil
        // cp.async: 64-pair tiles once experts average 32 pairs (gpt-oss-20b: 256 tokens, where they
        // took 0.52 ms against 0.58), when they fit.
        let wide = context.mxfp4Experts != .groupedFMA && P >= 32 * E && Self.groupedShared(pairs: 64, inputs: max(H, I)) <= 48 << 10
        let tile = bulk?.pairs ?? (wide ? 64 : 32), maxTiles = (P + tile - 1) / tile + min(E, P)
        // order: sorted position → pair; tiles: (expert, first position, pairs, 0) per tile.
        let order = try workspace([P], .i32), tiles = try workspace([maxTiles, 4], .i32)
        let xs = try workspace([P, H], .bf16), h = try workspace([P, I], .bf16)  // rows in expert order
        let y = try workspace([P, H])                                           // y in pick order
        try context.launch("MoEGrouped", "moe_grouped_route", grid: (1, 1, 1), block: 1024, sharedBytes: 4 * (4 * E + 2), [
            .pointer(ptr(ids)), .int(Int32(P)), .int(Int32(E)), .int(Int32(tile)), .int(Int32(maxTiles)),
            .pointer(ptr(order)), .pointer(ptr(tiles)), .pointer(ptr(y)), .int(Int32(H)),
        ])
        try context.launch("MoEGrouped", "moe_grouped_gather", grid: (P, 1, 1), block: 256,
                           [.pointer(ptr(x)), .pointer(ptr(order)), .int(Int32(k)), .pointer(ptr(xs)), .int(Int32(H))])
        if let bulk {
            // gate_up (R = 2I rows over H inputs), then down (H rows over I inputs), as below.
            let (gateUp, down) = bulk.pairs == 16 ? ("moe_mxfp4_tma16_gate_up", "moe_mxfp4_tma16_down")
                : bulk.pairs == 32 ? ("moe_mxfp4_tma32_gate_up", "moe_mxfp4_tma32_down") : ("moe_mxfp4_tma64_gate_up", "moe_mxfp4_tma64_down")
            try launchTMA(gateUp, bulk, input: xs, tiles: tiles, order: order, blocks: gub, scales: gus, bias: bank.gateUpBias,
                          output: h, rows: 2 * I, inputs: H, tilesCount: maxTiles, bank: bank)
            try launchTMA(down, bulk, input: h, tiles: tiles, order: order, blocks: db, scales: ds, bias: bank.downBias,
                          output: y, rows: H, inputs: I, tilesCount: maxTiles, bank: bank)
        } else {
            try cpAsyncGEMMs(wide: wide, maxTiles: maxTiles, xs: xs, h: h, y: y, tiles: tiles, order: order, bank: bank,
                             blocks: (gub, gus, db, ds), H: H, I: I)
        }
        return try combine(y, weights: weights, T: T, k: k, H: H, then: norm)
    }

    /// One bulk-copy GEMM (moe_grouped_tma.cu): `rows` weight rows over `inputs` per tile.
    private func launchTMA(_ function: String, _ bulk: (pairs: Int, stages: Int), input: Tensor, tiles: Tensor, order: Tensor,
                           blocks: Tensor, scales: Tensor, bias: Tensor, output: Tensor, rows R: Int, inputs K: Int, tilesCount: Int,
                           bank: ExpertBank) throws {
        try context.launch("MoEGroupedTMA", function, grid: groupedGrid(tiles: tilesCount, rows: R), block: 160,
                           sharedBytes: Self.tmaShared(pairs: bulk.pairs, stages: bulk.stages, inputs: K), maxSharedMemory: context.groupedCarveout, [
            .pointer(ptr(input)), .pointer(ptr(tiles)), .pointer(ptr(order)), .pointer(ptr(blocks)), .pointer(ptr(scales)),
            .pointer(ptr(bias)), try code(bias, "experts"), .pointer(ptr(output)), .int(Int32(R)), .int(Int32(K)),
            .float(bank.swigluLimit), .float(bank.alpha),
        ])
    }

    /// The cp.async GEMMs (moe_grouped.cu): MMA tiles of 32 or (`wide`) 64 pairs, or the FMA twin.
    private func cpAsyncGEMMs(wide: Bool, maxTiles: Int, xs: Tensor, h: Tensor, y: Tensor, tiles: Tensor, order: Tensor,
                              bank: ExpertBank, blocks: (gub: Tensor, gus: Tensor, db: Tensor, ds: Tensor), H: Int, I: Int) throws {
        let (gub, gus, db, ds) = blocks, tile = wide ? 64 : 32
        let mma = context.mxfp4Experts != .groupedFMA
        // gate_up: R = 2I rows over K = H inputs, h = SwiGLU(xs · Wᵀ + b) in bf16.
        try context.launch("MoEGrouped", wide ? "moe_mxfp4_mma64_gate_up" : mma ? "moe_mxfp4_mma_gate_up" : "moe_mxfp4_fma_gate_up",
                           grid: groupedGrid(tiles: maxTiles, rows: 2 * I), block: 128, sharedBytes: Self.groupedShared(pairs: tile, inputs: H),
                           maxSharedMemory: context.groupedCarveout,
                           try groupedArguments(input: xs, tiles: tiles, order: order, blocks: gub, scales: gus, bias: bank.gateUpBias,
                                                output: h, rows: 2 * I, inputs: H, bank: bank))
        // down: R = H rows over K = I inputs, y[pick] = h · Wᵀ + b in f32.
        try context.launch("MoEGrouped", wide ? "moe_mxfp4_mma64_down" : mma ? "moe_mxfp4_mma_down" : "moe_mxfp4_fma_down",
                           grid: groupedGrid(tiles: maxTiles, rows: H), block: 128, sharedBytes: Self.groupedShared(pairs: tile, inputs: I),
                           maxSharedMemory: context.groupedCarveout,
                           try groupedArguments(input: h, tiles: tiles, order: order, blocks: db, scales: ds, bias: bank.downBias,
                                                output: y, rows: H, inputs: I, bank: bank))
    }

    /// x: tiles (surplus ones return at once), y: tiles of 128 weight rows.
    private func groupedGrid(tiles: Int, rows: Int) -> (Int, Int, Int) {
        (tiles, (rows + Self.groupedRows - 1) / Self.groupedRows, 1)
    }

    private func groupedArguments(input: Tensor, tiles: Tensor, order: Tensor, blocks: Tensor, scales: Tensor, bias: Tensor,
                                  output: Tensor, rows: Int, inputs: Int, bank: ExpertBank) throws -> [KernelArgument] {
        [.pointer(ptr(input)), .pointer(ptr(tiles)), .pointer(ptr(order)), .pointer(ptr(blocks)), .int(bank.tiledBlocks ? 1 : 0), .pointer(ptr(scales)),
         .pointer(ptr(bias)), try code(bias, "experts"), .pointer(ptr(output)), .int(Int32(rows)), .int(Int32(inputs)),
         .float(bank.swigluLimit), .float(bank.alpha)]
    }
}
