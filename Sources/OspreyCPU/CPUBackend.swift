// The CPU backend: naive, readable, multithreaded. It is the numerical oracle every GPU kernel is
// tested against (STYLE habit 11), so clarity beats speed here: plain loops in f32, weights
// widened row by row, MXFP4 decoded one 32-value block at a time (never a whole dequantized copy).
// The heavier ops live in CPULinear.swift, CPUAttention.swift and CPUExperts.swift.
import OspreyCore

/// The CPU implementation of `Backend`.
public struct CPUBackend: Backend {
    /// nil: the CPU runs MXFP4 experts as they are. A reason makes this backend stand in for a
    /// device that cannot (the load-time dequantize fallback is tested with it).
    public let mxfp4Unavailable: String?

    public init(mxfp4Unavailable: String? = nil) { self.mxfp4Unavailable = mxfp4Unavailable }

    public var device: Device { .cpu }

    public func upload(_ tensor: Tensor) throws -> Tensor { try requireHost(tensor, "upload"); return tensor }
    public func download(_ tensor: Tensor) throws -> Tensor { try requireHost(tensor, "download"); return tensor }

    public func makeBuffer(_ shape: Shape, dtype: DType) throws -> Tensor { Tensor(zeros: shape, dtype: dtype) }

    public func copyRows(_ source: Tensor, into destination: Tensor, at row: Int) throws {
        guard Self.fits(source, into: destination, at: row) else {
            throw OspreyError.invalidTensor("copy of \(source.shape) into \(destination.shape) at row \(row)")
        }
        destination.rows(row..<(row + source.shape[0])).mutableRaw.copyMemory(from: source.raw, byteCount: source.byteCount)
    }

    /// Whether `source`'s rows fit `destination` from `row` on (same dtype and row shape).
    // Kept out of line: with the checks inlined, Swift 6.3's optimizer returned from
    // copyRows with the error register set (a spurious throw) in release builds.
    @inline(never)
    static func fits(_ source: Tensor, into destination: Tensor, at row: Int) -> Bool {
        let (s, d) = (source.shape.dims, destination.shape.dims)
        guard source.dtype == destination.dtype, s.count == d.count, s.count >= 1, row >= 0 else { return false }
        for i in 1..<s.count where s[i] != d[i] { return false }
        return row + s[0] <= d[0]
    }

    public func embedding(_ table: Tensor, ids: [Int32]) throws -> Tensor {
        guard table.shape.rank == 2 else { throw OspreyError.invalidTensor("embedding table must be [V, H], got \(table.shape)") }
        let (V, H) = (table.shape[0], table.shape[1])
        let out = Tensor(zeros: [ids.count, H], dtype: .f32)
        for (t, id) in ids.enumerated() {
            guard id >= 0 && Int(id) < V else { throw OspreyError.invalidArgument("token id \(id) outside the vocabulary (0..<\(V))") }
            loadRow(table, start: Int(id) * H, count: H, into: out.f32Pointer + t * H)
        }
        return out
    }

    public func argmax(_ logits: Tensor, into out: Tensor) throws {
        let V = logits.shape[-1], T = logits.count / max(V, 1)
        guard V > 0, out.dtype == .i32, out.count == T, logits.dtype == .f32 else {
            throw OspreyError.invalidTensor("argmax of \(logits.shape) \(logits.dtype) into \(out.shape) \(out.dtype)")
        }
        let x = logits.f32Pointer, o = out.mutableRaw.assumingMemoryBound(to: Int32.self)
        for t in 0..<T {
            var best = 0
            for v in 1..<V where x[t * V + v] > x[t * V + best] { best = v }
            o[t] = Int32(best)
        }
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) throws -> Tensor {
        let H = x.shape[-1]
        guard weight.count == H else { throw OspreyError.invalidTensor("rms norm weight \(weight.shape) for rows of \(H)") }
        return rmsNormRows(x, weight: weight.floats(), eps: eps)
    }

    private func rmsNormRows(_ x: Tensor, weight w: [Float], eps: Float) -> Tensor {
        let H = w.count, T = x.count / H
        let out = Tensor(zeros: x.shape, dtype: .f32)
        let xp = x.f32Pointer, op = out.f32Pointer
        for t in 0..<T {
            var ss: Float = 0
            for i in 0..<H { ss += xp[t * H + i] * xp[t * H + i] }
            let r = 1 / (ss / Float(H) + eps).squareRoot()
            for i in 0..<H { op[t * H + i] = w[i] * (xp[t * H + i] * r) }
        }
        return out
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard a.shape == b.shape else { throw OspreyError.invalidTensor("add of \(a.shape) and \(b.shape)") }
        let out = Tensor(zeros: a.shape, dtype: .f32)
        let (ap, bp, op) = (a.f32Pointer, b.f32Pointer, out.f32Pointer)
        for i in 0..<a.count { op[i] = ap[i] + bp[i] }
        return out
    }

    private func requireHost(_ t: Tensor, _ what: String) throws {
        guard t.device == .cpu else { throw OspreyError.invalidTensor("\(what): tensor on \(t.device), CPU backend holds host tensors only") }
    }
}
