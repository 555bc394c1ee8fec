// Routed experts on the CPU: the MXFP4 path against the dense path on the same (decoded) weights,
// and both against a double-precision reference of gpt-oss's clamped SwiGLU.
import Foundation
import Testing
import OspreyCore
@testable import OspreyCPU

@Suite struct CPUExpertsTests {
    let cpu = CPUBackend()

    /// Random MXFP4 weights [E, rows, cols/32, 16] + scales, and the same values decoded to f32 [E, rows, cols].
    func randomMXFP4(E: Int, rows: Int, cols: Int, seed: inout UInt64) -> (blocks: Tensor, scales: Tensor, dense: Tensor) {
        let nb = cols / 32
        let blocks = Tensor(zeros: [E, rows, nb, 16], dtype: .u8), scales = Tensor(zeros: [E, rows, nb], dtype: .u8)
        let bp = blocks.mutableRaw.assumingMemoryBound(to: UInt8.self), sp = scales.mutableRaw.assumingMemoryBound(to: UInt8.self)
        for i in 0..<blocks.count { seed = seed &* 6364136223846793005 &+ 1; bp[i] = UInt8(truncatingIfNeeded: seed >> 33) }
        for i in 0..<scales.count { seed = seed &* 6364136223846793005 &+ 1; sp[i] = UInt8(120 + (seed >> 33) % 6) }
        let dense = Tensor(zeros: [E, rows, cols], dtype: .f32)
        for i in 0..<scales.count { MXFP4.decodeBlock(bp + i * 16, scale: sp[i], into: dense.f32Pointer + i * 32) }
        return (blocks, scales, dense)
    }

    @Test func mxfp4AndDenseExpertsMatchReference() throws {
        var seed: UInt64 = 7
        let (E, H, I, T, k) = (5, 64, 32, 4, 3)
        let gu = randomMXFP4(E: E, rows: 2 * I, cols: H, seed: &seed), dn = randomMXFP4(E: E, rows: H, cols: I, seed: &seed)
        let bGU = randomTensor([E, 2 * I], seed: &seed), bD = randomTensor([E, H], seed: &seed)
        let x = randomTensor([T, H], scale: 2, seed: &seed)
        let ids: [Int32] = [0, 4, 2, 1, 4, 3, 2, 0, 3, 4, 1, 0]
        let weights: [Float] = [0.5, 0.3, 0.2, 0.6, 0.3, 0.1, 0.4, 0.4, 0.2, 0.9, 0.05, 0.05]
        let mx = ExpertBank(weights: .mxfp4(gateUpBlocks: gu.blocks, gateUpScales: gu.scales, downBlocks: dn.blocks, downScales: dn.scales),
                            gateUpBias: bGU, downBias: bD, swigluLimit: 7)
        var dense = mx
        dense.weights = .dense(gateUp: gu.dense, down: dn.dense)
        let idT = Tensor(zeros: [T, k], dtype: .i32)
        for (i, id) in ids.enumerated() { idT.mutableRaw.storeBytes(of: id, toByteOffset: 4 * i, as: Int32.self) }
        let wT = Tensor(weights, shape: [T, k])
        let a = try cpu.experts(x, bank: mx, ids: idT, weights: wT).floats()
        let b = try cpu.experts(x, bank: dense, ids: idT, weights: wT).floats()
        var maxRef = 0.0
        for t in 0..<T {
            var ref = [Double](repeating: 0, count: H)
            for j in 0..<k {
                let e = Int(ids[t * k + j])
                var h = [Double](repeating: 0, count: I)
                for c in 0..<I {
                    var g = Double(bGU.float(at: e * 2 * I + 2 * c)), u = Double(bGU.float(at: e * 2 * I + 2 * c + 1))
                    for i in 0..<H {
                        g += Double(gu.dense.float(at: (e * 2 * I + 2 * c) * H + i)) * Double(x.float(at: t * H + i))
                        u += Double(gu.dense.float(at: (e * 2 * I + 2 * c + 1) * H + i)) * Double(x.float(at: t * H + i))
                    }
                    g = min(g, 7); u = min(max(u, -7), 7)
                    h[c] = g / (1 + exp(-1.702 * g)) * (u + 1)
                }
                for o in 0..<H {
                    var s = Double(bD.float(at: e * H + o))
                    for c in 0..<I { s += Double(dn.dense.float(at: (e * H + o) * I + c)) * h[c] }
                    ref[o] += Double(weights[t * k + j]) * s
                }
            }
            for o in 0..<H {
                maxRef = max(maxRef, abs(ref[o]))
                #expect(abs(Double(a[t * H + o]) - ref[o]) < 1e-3 * max(1, abs(ref[o])), "mxfp4 t\(t) o\(o)")
                #expect(abs(Double(b[t * H + o]) - ref[o]) < 1e-3 * max(1, abs(ref[o])), "dense t\(t) o\(o)")
            }
        }
        #expect(maxRef > 1)  // the clamp and the weights were exercised on non-trivial values
    }

    @Test func rejectsMismatchedShapes() {
        var seed: UInt64 = 9
        let gu = randomMXFP4(E: 2, rows: 64, cols: 64, seed: &seed)
        let bank = ExpertBank(weights: .mxfp4(gateUpBlocks: gu.blocks, gateUpScales: gu.scales, downBlocks: gu.blocks, downScales: gu.scales),
                              gateUpBias: Tensor(zeros: [2, 64], dtype: .f32), downBias: Tensor(zeros: [2, 64], dtype: .f32), swigluLimit: 7)
        // down must be [E, H, I/32, 16] = [2, 64, 1, 16]; the gate_up blocks given as down are [2, 64, 2, 16].
        #expect(throws: OspreyError.self) {
            try cpu.experts(randomTensor([1, 64], seed: &seed), bank: bank, ids: Tensor(zeros: [1, 1], dtype: .i32), weights: Tensor([1], shape: [1, 1]))
        }
    }
}
