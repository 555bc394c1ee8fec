// Mixture-of-experts routing and routed experts on the CPU (gpt-oss style).
// Routing: top-k of the router logits, softmax over those k only. Experts: only the picked ones
// run (never all experts densely). For each expert, the tokens routed to it are gathered; each
// weight row is widened once (MXFP4 rows decoded block by block: e2m1 nibble x 2^(scale-127)) and
// dotted with every such token. gate_up's output interleaves gate (even) and up (odd) columns;
// gate = min(gate, limit), up = clamp(up, -limit, limit), h = gate * sigmoid(alpha * gate) * (up + 1).
import Foundation
import OspreyCore

extension CPUBackend {
    public func topKSoftmax(_ logits: Tensor, k: Int) throws -> (ids: Tensor, weights: Tensor) {
        let E = logits.shape[-1], T = logits.count / E
        guard k >= 1 && k <= E else { throw OspreyError.invalidArgument("top-\(k) of \(E) experts") }
        let lp = logits.f32Pointer
        var ids = [Int32](repeating: 0, count: T * k), weights = [Float](repeating: 0, count: T * k)
        for t in 0..<T {
            var chosen = [Int]()
            for _ in 0..<k {
                var best = -1
                for e in 0..<E where !chosen.contains(e) {
                    if best < 0 || lp[t * E + e] > lp[t * E + best] { best = e }
                }
                chosen.append(best)
            }
            let top = chosen.map { lp[t * E + $0] }
            let m = top.max()!
            let ex = top.map { Foundation.exp($0 - m) }
            let sum = ex.reduce(0, +)
            for j in 0..<k { ids[t * k + j] = Int32(chosen[j]); weights[t * k + j] = ex[j] / sum }
        }
        let idTensor = Tensor(zeros: [T, k], dtype: .i32)
        ids.withUnsafeBytes { idTensor.mutableRaw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return (idTensor, Tensor(weights, shape: [T, k]))
    }

    public func experts(_ x: Tensor, bank: ExpertBank, ids idTensor: Tensor, weights weightTensor: Tensor) throws -> Tensor {
        let H = x.shape[-1], T = x.count / H
        let k = idTensor.shape[-1]
        let ids = (0..<idTensor.count).map { Int32(idTensor.float(at: $0)) }, weights = weightTensor.floats()
        let E = bank.weights.count
        let twoI = bank.gateUpBias.shape[-1], I = twoI / 2
        guard !bank.tiledBlocks else { throw OspreyError.invalidTensor("experts: the CPU reads MXFP4 blocks as stored, not tiled") }
        guard ids.count == T * k, weights.count == T * k, bank.downBias.shape[-1] == H else {
            throw OspreyError.invalidTensor("experts: x \(x.shape), \(ids.count) picks for k=\(k), down bias \(bank.downBias.shape)")
        }
        let gateUp = RowReader(bank.weights, half: .gateUp, rows: twoI, cols: H)
        let down = RowReader(bank.weights, half: .down, rows: H, cols: I)
        try gateUp.validate(experts: E); try down.validate(experts: E)
        let (bGU, bD) = (bank.gateUpBias.floats(), bank.downBias.floats())
        guard ids.allSatisfy({ $0 >= 0 && Int($0) < E }) else { throw OspreyError.invalidArgument("expert id outside 0..<\(E)") }
        let out = Tensor(zeros: [T, H], dtype: .f32)
        let (xp, op) = (x.f32Pointer, out.f32Pointer)
        for e in 0..<E {
            let picks = (0..<(T * k)).filter { ids[$0] == Int32(e) }
            if picks.isEmpty { continue }
            let n = picks.count
            let gu = UnsafeMutablePointer<Float>.allocate(capacity: n * twoI)
            let h = UnsafeMutablePointer<Float>.allocate(capacity: n * I)
            defer { gu.deallocate(); h.deallocate() }
            parallelFor(twoI, grain: 8) { rows in
                let row = UnsafeMutablePointer<Float>.allocate(capacity: H)
                defer { row.deallocate() }
                for r in rows {
                    gateUp.load(expert: e, row: r, into: row)
                    for (j, p) in picks.enumerated() { gu[j * twoI + r] = dot(xp + (p / k) * H, row, H) + bGU[e * twoI + r] }
                }
            }
            let limit = bank.swigluLimit, alpha = bank.alpha
            for j in 0..<n {
                for c in 0..<I {
                    let gate = min(gu[j * twoI + 2 * c], limit)
                    let up = min(max(gu[j * twoI + 2 * c + 1], -limit), limit)
                    h[j * I + c] = gate / (1 + Foundation.exp(-alpha * gate)) * (up + 1)
                }
            }
            parallelFor(H, grain: 8) { rows in
                let row = UnsafeMutablePointer<Float>.allocate(capacity: I)
                defer { row.deallocate() }
                for r in rows {
                    down.load(expert: e, row: r, into: row)
                    for (j, p) in picks.enumerated() {
                        op[(p / k) * H + r] += weights[p] * (dot(h + j * I, row, I) + bD[e * H + r])
                    }
                }
            }
        }
        return out
    }
}

/// Reads one output row of one expert's matrix as f32, from dense or MXFP4 storage.
private struct RowReader {
    enum Half { case gateUp, down }
    let weights: ExpertWeights
    let half: Half
    let rows: Int, cols: Int

    init(_ weights: ExpertWeights, half: Half, rows: Int, cols: Int) {
        (self.weights, self.half, self.rows, self.cols) = (weights, half, rows, cols)
    }

    func validate(experts E: Int) throws {
        switch weights {
        case .dense(let gateUp, let down):
            let w = half == .gateUp ? gateUp : down
            guard w.shape == [E, rows, cols] else { throw OspreyError.invalidTensor("expert weight \(w.shape), expected [\(E), \(rows), \(cols)]") }
        case .mxfp4(let gub, let gus, let db, let ds):
            let (b, s) = half == .gateUp ? (gub, gus) : (db, ds)
            let nb = cols / MXFP4.blockSize
            guard cols % MXFP4.blockSize == 0, b.shape == [E, rows, nb, MXFP4.bytesPerBlock], s.shape == [E, rows, nb] else {
                throw OspreyError.invalidTensor("MXFP4 expert blocks \(b.shape) / scales \(s.shape), expected [\(E), \(rows), \(nb), 16] / [\(E), \(rows), \(nb)]")
            }
        }
    }

    func load(expert e: Int, row r: Int, into out: UnsafeMutablePointer<Float>) {
        switch weights {
        case .dense(let gateUp, let down):
            loadRow(half == .gateUp ? gateUp : down, start: (e * rows + r) * cols, count: cols, into: out)
        case .mxfp4(let gub, let gus, let db, let ds):
            let (b, s) = half == .gateUp ? (gub, gus) : (db, ds)
            let nb = cols / MXFP4.blockSize
            let blocks = b.raw.assumingMemoryBound(to: UInt8.self) + (e * rows + r) * nb * MXFP4.bytesPerBlock
            let scales = s.raw.assumingMemoryBound(to: UInt8.self) + (e * rows + r) * nb
            for i in 0..<nb {
                MXFP4.decodeBlock(blocks + i * MXFP4.bytesPerBlock, scale: scales[i], into: out + i * MXFP4.blockSize)
            }
        }
    }
}
