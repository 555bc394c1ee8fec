// MXFP4 odd cases for `osprey gpu-check` (issue 6): the GPU's MXFP4 expert kernels against the CPU
// oracle on weights built to reach every decode corner: every e2m1 nibble (0x8 is −0) at every
// position of a block, and the scale bytes at the edges: 0 and 1 (subnormal weights), 2 and
// 250/251 (the bounds of the bf16 expansion's bit-building fast path), 126-128, 200, 253 and 254
// (2^126, 2^127). 255 is left out: the oracle's 0 x 2^128 is NaN.
// NOTE: a scale byte is only checked if its blocks' share of an output is neither lost under the
// others nor infinite. So block column c of the matrix under test has one scale s_c, and the
// input values it meets have magnitude about 2^(K - (s_c - 127)): every block then adds about 2^K
// to each dot product, whatever its scale. No single K keeps every sum finite (at s = 0 inputs
// are 2^(K + 127), and the decode kernel sums 32 products with e2m1 codes before it scales them,
// so K ≤ -9) and every int8 step finite (quantize_q8 takes 127 / amax, finite only for amax >
// 2^-121, so K ≥ 7 at s = 254), hence two groups of scales: low (K = -9) and high (K = 10, with
// margin). Inputs are then normal f32 and bf16 values everywhere. A nibble whose value
// times 2^(s - 127) overflows f32 (|v| ≥ 2 at 254, ≥ 4 at 253; the oracle would hold inf) keeps
// its sign and drops to magnitude ≤ 1.5 (bit 2 cleared).
// Each half is checked on its own. gate_up: x carries the magnitudes; the SwiGLU gets no clamp
// (limit = max float) and alpha ≈ 1 / |gu| so h stays sensitive to gu. down: gate_up's nibbles are
// all 0 or 0x8 (so gu = its bias, which also checks that −0 decodes to zero at every scale), and
// the bias is chosen so that h = SwiGLU(bias) has the magnitudes down's columns need.
// Kernel paths by batch (CUDABackend+Ops.swift, CUDABackend+GEMM.swift): ≤ 64 (token, expert)
// pairs with H, I ≤ 4096 take the decode kernels (moe_mxfp4_q8_cN with int8 inputs, and
// moe_mxfp4_rows_cN exactly in f32 when int8DecodeActivations is off; N = blocks per lane:
// H = 448 → 1, I = 1056 → 2, I = 2080 → 3, H = 4096 → 4); H > 4096 takes moe_matvec_rows4;
// > 64 pairs under 16 tokens the tiled moe_matvec; ≥ 16 tokens cuBLASLt on the bf16 expansion
// (mxfp4_to_bf16). Bounds as in GPUOpChecks: 1e-4 exact f32, 3e-2 int8 inputs, 1e-2 cuBLASLt.
import Foundation
import OspreyCore
import OspreyCPU
import OspreyCUDA

/// The MXFP4 odd-case checks of the expert kernels (see the file header), one result per case.
func mxfp4OddCaseChecks(gpu: CUDABackend, cpu: CPUBackend = CPUBackend()) throws -> [OpChecks.Result] {
    var cases = MXFP4OddCases(gpu: gpu, cpu: cpu)
    return try cases.run()
}

private struct MXFP4OddCases {
    enum Half: String { case gateUp = "gate_up", down }

    struct Group {
        let name: String, scales: [UInt8], K: Int
        /// The scale of block column c.
        func scale(_ c: Int) -> UInt8 { scales[c % scales.count] }
        /// log2 of the input magnitude that block column c meets.
        func inputExponent(_ c: Int) -> Int { K - (Int(scale(c)) - 127) }
    }

    static let groups = [Group(name: "low scales", scales: [0, 1, 2, 126, 127, 128], K: -9),
                         Group(name: "high scales", scales: [127, 128, 200, 250, 251, 253, 254], K: 10)]
    /// (E, H, I, runs of (tokens, top-k)).
    static let shapes: [(E: Int, H: Int, I: Int, runs: [(T: Int, k: Int)])] = [
        (8, 448, 1056, [(1, 4), (12, 8), (64, 4), (600, 2)]),
        (4, 4096, 2080, [(1, 2)]),
        (4, 4160, 96, [(1, 2)]),
    ]

    let gpu: CUDABackend, cpu: CPUBackend
    var seed: UInt64 = 0x4D58_4650_345F_6F64

    mutating func run() throws -> [OpChecks.Result] {
        var out: [OpChecks.Result] = []
        for group in Self.groups {
            for half in [Half.gateUp, .down] {
                for (E, H, I, runs) in Self.shapes {
                    let (bank, kR) = layer(group, half, E: E, H: H, I: I)
                    guard case .mxfp4(let gub, let gus, let db, let ds) = bank.weights else { continue }
                    // Blocks as stored, and tiled as the model loader puts them (MXFP4Tiling).
                    let (tgu, tdn) = (try gpu.uploadExpertBlocks(gub), try gpu.uploadExpertBlocks(db))
                    let (gusD, dsD) = (try gpu.upload(gus), try gpu.upload(ds))
                    let (bGU, bD) = (try gpu.upload(bank.gateUpBias), try gpu.upload(bank.downBias))
                    let banks = [
                        ExpertBank(weights: .mxfp4(gateUpBlocks: try gpu.upload(gub), gateUpScales: gusD, downBlocks: try gpu.upload(db), downScales: dsD),
                                   gateUpBias: bGU, downBias: bD, swigluLimit: bank.swigluLimit, alpha: bank.alpha),
                        ExpertBank(weights: .mxfp4(gateUpBlocks: tgu.blocks, gateUpScales: gusD, downBlocks: tdn.blocks, downScales: dsD),
                                   gateUpBias: bGU, downBias: bD, swigluLimit: bank.swigluLimit, alpha: bank.alpha, tiledBlocks: tgu.tiled),
                    ]
                    for devBank in banks { for (T, k) in runs {
                        // gate_up under test: x carries the magnitudes; otherwise x is irrelevant (gate_up is all zeros).
                        let x = Self.filled([T, H], .f32) { i in half == .gateUp ? around(group.inputExponent((i % H) / 32)) : around(0) }
                        let routing = try cpu.topKSoftmax(Self.filled([T, E], .f32) { _ in around(1) }, k: k)
                        let reference = try cpu.experts(x, bank: bank, ids: routing.ids, weights: routing.weights)
                        let (gx, gids, gw) = (try gpu.upload(x), try gpu.upload(routing.ids), try gpu.upload(routing.weights))
                        let decode = T * k <= 64 && H <= 4096 && I <= 4096, gemm = T >= 16
                        for int8 in decode ? [true, false] : [gpu.context.int8DecodeActivations] {
                            let saved = gpu.context.int8DecodeActivations
                            gpu.context.int8DecodeActivations = int8
                            defer { gpu.context.int8DecodeActivations = saved }
                            try gpu.beginStep()
                            let g = try gpu.experts(gx, bank: devBank, ids: gids, weights: gw)
                            let path = gemm ? "GEMM path: grouped MXFP4 up to 256 pairs per expert, else cuBLASLt; bf16 in" : decode ? (int8 ? "decode, int8 inputs" : "decode, f32")
                                : T * k > 64 ? "tiled matvec" : "rows4 matvec"
                            let shape = "\(group.name) in \(half.rawValue), T\(T) E\(E) k\(k) H\(H) I\(I) (\(path)\(devBank.tiledBlocks ? ", tiled blocks" : ""))"
                                + (half == .gateUp ? ", alpha 2^\(-kR)" : "")
                            out.append(try compare("experts mxfp4 odd", shape, gpu: g, cpu: reference,
                                                   bound: gemm ? 1e-2 : (decode && int8 ? 3e-2 : 1e-4)))
                        }
                    } }
                }
            }
        }
        return out
    }

    /// A host expert bank with `half` under test on `group`'s scales; also log2 |gu| (gate_up case).
    mutating func layer(_ group: Group, _ half: Half, E: Int, H: Int, I: Int) -> (ExpertBank, Int) {
        let limit = Float.greatestFiniteMagnitude
        if half == .gateUp {
            // gu ≈ 2^K · 2.2 · √H (e2m1 RMS 2.9, inputs 0.75 · 2^e on average, random signs); h =
            // g · σ(alpha · g) · (u + 1) ≈ |gu| · max(|gu|, 1) / 2; down's scale brings y near 1.
            let kR = group.K + Int(log2(2.2 * Double(H).squareRoot()).rounded())
            let hLog = kR - 1 + max(kR, 0)
            let sDown = UInt8(min(max(127 - hLog - Int(log2(2.2 * Double(I).squareRoot()).rounded()), 8), 250))
            let (gub, gus) = oddBlocks(group, experts: E, rows: 2 * I, blocks: H / 32)
            let (db, ds) = plainBlocks(experts: E, rows: H, blocks: I / 32, scale: sDown)
            let bGU = Self.filled([E, 2 * I], .bf16) { _ in around(kR - 2) }, bD = Self.filled([E, H], .bf16) { _ in around(-3) }
            return (ExpertBank(weights: .mxfp4(gateUpBlocks: gub, gateUpScales: gus, downBlocks: db, downScales: ds),
                               gateUpBias: bGU, downBias: bD, swigluLimit: limit, alpha: Float(sign: .plus, exponent: -kR, significand: 1)), kR)
        }
        // gate = bias ≥ 0 of about 2^e (σ(1.702 g) is in [1/2, 1]), up + 1 = ±[1/2, 1): h ∈ ±[2^(e-2), 2^(e+1)).
        let zeros = Tensor(zeros: [E, 2 * I, H / 32, 16], dtype: .u8), zeroScales = Tensor(zeros: [E, 2 * I, H / 32], dtype: .u8)
        for i in 0..<zeros.count { zeros.mutableRaw.storeBytes(of: UInt8(truncatingIfNeeded: bits()) & 0x88, toByteOffset: i, as: UInt8.self) }
        for i in 0..<zeroScales.count { zeroScales.mutableRaw.storeBytes(of: group.scale(i % (H / 32)), toByteOffset: i, as: UInt8.self) }
        let (db, ds) = oddBlocks(group, experts: E, rows: H, blocks: I / 32)
        let bGU = Self.filled([E, 2 * I], .bf16) { i in
            i % 2 == 0 ? around(group.inputExponent((i / 2 % I) / 32), positive: true) : -1 + around(-1)
        }
        let bD = Self.filled([E, H], .bf16) { _ in around(group.K + 2) }
        return (ExpertBank(weights: .mxfp4(gateUpBlocks: zeros, gateUpScales: zeroScales, downBlocks: db, downScales: ds),
                           gateUpBias: bGU, downBias: bD, swigluLimit: limit), 0)
    }

    /// Blocks [E, rows, blocks, 16] and scales [E, rows, blocks] under test: block column c has
    /// scale `group.scale(c)`; value j of row r (counted across experts) has nibble (r + j + 5c) & 15,
    /// so every 16 rows hold every nibble at every position, except that nibbles whose value
    /// would overflow at that scale drop to magnitude ≤ 1.5.
    func oddBlocks(_ group: Group, experts E: Int, rows: Int, blocks nb: Int) -> (Tensor, Tensor) {
        let blocks = Tensor(zeros: [E, rows, nb, 16], dtype: .u8), scales = Tensor(zeros: [E, rows, nb], dtype: .u8)
        let (b, s) = (blocks.mutableRaw.assumingMemoryBound(to: UInt8.self), scales.mutableRaw.assumingMemoryBound(to: UInt8.self))
        for r in 0..<(E * rows) {
            for c in 0..<nb {
                let scale = group.scale(c)
                s[r * nb + c] = scale
                let nibble = { (j: Int) -> UInt8 in
                    let n = UInt8((r + j + 5 * c) & 15)
                    return (MXFP4.e2m1Value(n) * MXFP4.scaleValue(scale)).isFinite ? n : n & 0xB
                }
                for k in 0..<16 { b[(r * nb + c) * 16 + k] = nibble(2 * k) | nibble(2 * k + 1) << 4 }
            }
        }
        return (blocks, scales)
    }

    /// Random nibbles at scales `scale` - (0...3): the half not under test.
    mutating func plainBlocks(experts E: Int, rows: Int, blocks nb: Int, scale: UInt8) -> (Tensor, Tensor) {
        let blocks = Tensor(zeros: [E, rows, nb, 16], dtype: .u8), scales = Tensor(zeros: [E, rows, nb], dtype: .u8)
        for i in 0..<blocks.count { blocks.mutableRaw.storeBytes(of: UInt8(truncatingIfNeeded: bits()), toByteOffset: i, as: UInt8.self) }
        for i in 0..<scales.count { scales.mutableRaw.storeBytes(of: scale - UInt8(bits() % 4), toByteOffset: i, as: UInt8.self) }
        return (blocks, scales)
    }

    mutating func bits() -> UInt64 {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        return seed >> 33
    }

    /// A random value of magnitude in [2^e, 2^(e+1)], of random sign unless `positive`.
    mutating func around(_ e: Int, positive: Bool = false) -> Float {
        let negative = !positive && bits() & 1 == 1
        return Float(sign: negative ? .minus : .plus, exponent: e, significand: 1 + Float(bits() >> 7) / Float(1 << 24))
    }

    /// A host tensor of f32 or bf16 whose element i is `value(i)`.
    static func filled(_ shape: Shape, _ dtype: DType, _ value: (Int) -> Float) -> Tensor {
        let t = Tensor(zeros: shape, dtype: dtype)
        for i in 0..<shape.count {
            if dtype == .bf16 { t.mutableRaw.storeBytes(of: bf16Bits(value(i)), toByteOffset: 2 * i, as: UInt16.self) }
            else { t.mutableRaw.storeBytes(of: value(i), toByteOffset: 4 * i, as: Float.self) }
        }
        return t
    }

    /// max |gpu - cpu| / max |cpu| (as OpChecks.compare); a NaN or infinity on either side fails.
    func compare(_ op: String, _ shape: String, gpu g: Tensor, cpu c: Tensor, bound: Float) throws -> OpChecks.Result {
        let a = try gpu.download(g).floats(), b = c.floats()
        guard a.count == b.count else { return OpChecks.Result(op: op, shape: shape, error: .infinity, passed: false) }
        var d: Float = 0, m: Float = 0
        for i in 0..<a.count {
            if !a[i].isFinite || !b[i].isFinite { return OpChecks.Result(op: op, shape: shape, error: .nan, passed: false) }
            d = max(d, abs(a[i] - b[i])); m = max(m, abs(b[i]))
        }
        let e = d / max(m, 1e-30)
        return OpChecks.Result(op: op, shape: shape, error: e, passed: e <= bound)
    }
}
