// Shared layer types. Linear layers are values conforming to `LinearLayer` so that tensor
// parallelism can add column- and row-sharded conformers (which load their own shard and own
// their collective) without the forward pass changing (STYLE habit 9). `WeightLoader` reads
// named tensors, checks their shapes and puts them on the model's backend. `transposeLastTwo` (strip-wise,
// parallel) changes layouts at load time, when a checkpoint stores a weight as x @ W.
import Dispatch
import Foundation
import OspreyCore

/// y = x W^T + b for x [T, in].
public protocol LinearLayer: Sendable {
    func callAsFunction(_ x: Tensor, on backend: any Backend) throws -> Tensor
}

/// A replicated dense linear layer: weight [out, in], optional bias [out].
public struct Linear: LinearLayer {
    public var weight: Tensor
    public var bias: Tensor?

    public init(weight: Tensor, bias: Tensor?) {
        self.weight = weight
        self.bias = bias
    }

    /// Loads `prefix.weight` [out, in] (and `prefix.bias` [out] when `bias`). The bias is kept in
    /// f32 whatever the checkpoint stores (exact, a few KB): every backend adds it in f32, and
    /// cuBLASLt's bias epilogue, which adds it inside the GEMM, takes an f32 bias for f32 outputs.
    public init(_ loader: WeightLoader, _ prefix: String, out: Int, in inFeatures: Int, bias: Bool) throws {
        weight = try loader.tensor("\(prefix).weight", [out, inFeatures])
        self.bias = bias ? try loader.backend.upload(loader.host("\(prefix).bias", [out]).toF32()) : nil
    }

    public func callAsFunction(_ x: Tensor, on backend: any Backend) throws -> Tensor {
        try backend.linear(x, weight: weight, bias: bias)
    }
}

/// Reads checkpoint tensors by name, validates their shapes, and places them on the backend.
public struct WeightLoader: Sendable {
    public let source: any WeightSource
    public let backend: any Backend

    public init(source: any WeightSource, backend: any Backend) {
        self.source = source
        self.backend = backend
    }

    /// The tensor `name`, which must have shape `shape`, on the backend's device.
    public func tensor(_ name: String, _ shape: Shape) throws -> Tensor {
        try backend.upload(host(name, shape))
    }

    /// The tensor `name` in host memory (for load-time conversions), shape-checked.
    public func host(_ name: String, _ shape: Shape) throws -> Tensor {
        guard source.contains(name) else { throw ModelError.missingWeight(name) }
        let t = try source.tensor(name)
        guard t.shape == shape else { throw ModelError.badWeightShape(name, expected: "\(shape)", got: "\(t.shape)") }
        return t
    }

    public func contains(_ name: String) -> Bool { source.contains(name) }
}

/// Swaps the last two dimensions of a host tensor of 1-, 2-, 4- or 8-byte elements: [.., a, b] -> [.., b, a].
func transposeLastTwo(_ t: Tensor) -> Tensor {
    let (a, b) = (t.shape[-2], t.shape[-1])
    var dims = t.shape.dims
    dims[dims.count - 2] = b
    dims[dims.count - 1] = a
    let out = uninitializedHostTensor(Shape(dims), dtype: t.dtype)
    let batch = a * b == 0 ? 0 : t.count / (a * b)
    switch t.dtype.byteCount(elements: 1) {
    case 1: transposeStrips(t.raw, out.mutableRaw, UInt8.self, batch: batch, a: a, b: b)
    case 2: transposeStrips(t.raw, out.mutableRaw, UInt16.self, batch: batch, a: a, b: b)
    case 4: transposeStrips(t.raw, out.mutableRaw, UInt32.self, batch: batch, a: a, b: b)
    case 8: transposeStrips(t.raw, out.mutableRaw, UInt64.self, batch: batch, a: a, b: b)
    default: preconditionFailure("transposeLastTwo of \(t.dtype)")
    }
    return out
}

/// The transpose by strips of 32 source rows, in parallel over strips (each writes its own
/// 32-element runs of every destination row). A strip reads its 32 rows front to back, so their
/// cache lines stay in L1 until every element of them has been moved.
private func transposeStrips<T>(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, _: T.Type, batch: Int, a: Int, b: Int) {
    let strip = 32, strips = (a + strip - 1) / strip
    concurrentChunks(batch * strips) { units in
        let (s, d) = (src.assumingMemoryBound(to: T.self), dst.assumingMemoryBound(to: T.self))
        for u in units {
            let (n, i0) = (u / strips, (u % strips) * strip)
            let (first, h) = (s + (n * a + i0) * b, min(strip, a - i0))
            var out = d + n * a * b + i0
            for j in 0..<b {
                var p = first + j
                for i in 0..<h {
                    out[i] = p.pointee
                    p += b
                }
                out += a
            }
        }
    }
}

/// A host tensor whose bytes are left unset, for a producer that writes every element: it skips
/// `Tensor(zeros:)`'s single-threaded memset and lets first-touch page faults happen in the
/// (parallel) writers, which on a 38 GB expansion is seconds.
func uninitializedHostTensor(_ shape: Shape, dtype: DType) -> Tensor {
    let allocation = HostAllocation(byteCount: dtype.byteCount(elements: shape.count))
    return Tensor(storage: Storage(borrowing: allocation.base, byteCount: allocation.byteCount, device: .cpu, owner: allocation),
                  shape: shape, dtype: dtype)
}

private final class HostAllocation {
    let base: UnsafeMutableRawPointer, byteCount: Int
    init(byteCount: Int) {
        self.byteCount = byteCount
        base = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }
    deinit { base.deallocate() }
}

/// Runs `body` over contiguous chunks of `0..<count` on all cores, for load-time conversions
/// (OspreyCPU's `parallelFor` is internal to that module). Chunks must write disjoint memory.
func concurrentChunks(_ count: Int, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let chunks = min(count, ProcessInfo.processInfo.activeProcessorCount * 4)
    if chunks <= 1 { body(0..<count); return }
    let size = (count + chunks - 1) / chunks
    // Swift cannot see that the chunks are disjoint, hence the opt-out (as in OspreyCPU).
    nonisolated(unsafe) let body = body
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = c * size, hi = min(count, lo + size)
        if lo < hi { body(lo..<hi) }
    }
}
