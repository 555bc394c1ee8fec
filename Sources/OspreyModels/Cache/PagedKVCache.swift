// The paged KV cache of the continuous-batching engine: one pool of fixed-size blocks shared by
// every sequence, as transformers' PagedAttentionCache lays it out. The layers are split into
// groups of equal size whose layers share an attention type (full, or one sliding window); a
// physical block belongs to one (sequence, group) at a time and holds `blockSize` positions of
// every layer of that group, so there is one key tensor and one value tensor per position within a
// group, [numBlocks * blockSize, Hkv, D] each, and layer l reads tensor `index(l)` through the block
// table of `group(l)`. The pool stores bf16 by default, as transformers and vLLM do for a bf16
// model: at high concurrency a decode step is bound by reading the keys and values, so halving
// their bytes halves that time and doubles the blocks that fit; the step's f32 keys and values are
// rounded to nearest even as they are written, and widened back to f32 as attention reads them.
// f32 stays selectable (exact agreement with the one-sequence caches, which keep f32). Which blocks a sequence owns is the block manager's business (plain
// bookkeeping in OspreyGeneration); the runner turns that into a `PagedStep` of device tensors and
// sets it here before each forward pass, so the model code never changes.
import OspreyCore

/// Per-step inputs of the paged cache (device i32 tensors built by the model runner).
public struct PagedStep: Sendable {
    /// i32 [T]: the absolute position of each row of the step.
    public var positions: Tensor
    /// Per group, i32 [T]: the cache row each token's key and value are written to (< 0: none).
    public var slots: [Tensor]
    /// Per group: the sequences' query rows, context lengths and block tables.
    public var layouts: [PagedLayout]

    public init(positions: Tensor, slots: [Tensor], layouts: [PagedLayout]) {
        (self.positions, self.slots, self.layouts) = (positions, slots, layouts)
    }
}

/// Keys and values of many sequences in blocks of a shared pool.
public final class PagedKVCache: AttentionCache {
    /// Positions per block.
    public let blockSize: Int
    /// Blocks in the pool.
    public let blockCount: Int
    /// Per layer: its group and its index within the group.
    public let layerSlots: [(group: Int, index: Int)]
    /// Element type of `keys` and `values`: bf16 or f32.
    public let dtype: DType
    /// Per index within a group: keys and values, [blockCount * blockSize, Hkv, D] of `dtype`.
    public let keys: [Tensor]
    public let values: [Tensor]
    /// The step being run; the runner sets it before each forward pass.
    public var step: PagedStep?

    /// Allocates the pool on `backend`: `layerSlots` maps each layer to (group, index) with
    /// indices 0..<groupSize; `rowShape` is [Hkv, D]; `dtype` (bf16 or f32) is what the pool stores.
    public init(layerSlots: [(group: Int, index: Int)], blockCount: Int, blockSize: Int, rowShape: [Int],
                dtype: DType = .bf16, backend: any Backend) throws {
        guard blockCount > 0, blockSize > 0, !layerSlots.isEmpty else {
            throw CacheError.badUpdate("a paged cache of \(blockCount) blocks of \(blockSize) positions for \(layerSlots.count) layers")
        }
        guard Self.dtypes.contains(dtype) else {
            throw CacheError.badUpdate("a paged cache of \(dtype): the pool stores bf16 or f32")
        }
        let groupSize = (layerSlots.map(\.index).max() ?? 0) + 1
        let rows = Shape([blockCount * blockSize] + rowShape)
        (self.layerSlots, self.blockCount, self.blockSize, self.dtype) = (layerSlots, blockCount, blockSize, dtype)
        keys = try (0..<groupSize).map { _ in try backend.makeBuffer(rows, dtype: dtype) }
        values = try (0..<groupSize).map { _ in try backend.makeBuffer(rows, dtype: dtype) }
    }

    /// The element types a pool may store.
    public static let dtypes: [DType] = [.bf16, .f32]

    /// Bytes one block takes (keys and values of every layer of a group) when the pool stores `dtype`.
    public static func bytesPerBlock(groupSize: Int, blockSize: Int, rowShape: [Int], dtype: DType) -> Int {
        2 * groupSize * dtype.byteCount(elements: blockSize * rowShape.reduce(1, *))
    }

    private func current() throws -> PagedStep {
        guard let step else { throw CacheError.badUpdate("a paged cache used without a step (the runner sets one)") }
        return step
    }

    public func rope(_ x: Tensor, invFreq: Tensor, scaling: Float, on backend: any Backend) throws -> Tensor {
        try backend.rope(x, positions: current().positions, invFreq: invFreq, scaling: scaling)
    }

    public func rope(_ q: Tensor, _ k: Tensor, invFreq: Tensor, scaling: Float, on backend: any Backend) throws -> (q: Tensor, k: Tensor) {
        try backend.rope(q, k, positions: current().positions, invFreq: invFreq, scaling: scaling)
    }

    public func attention(layer: Int, q: Tensor, k: Tensor, v: Tensor, sinks: Tensor?, window: Int?, scale: Float,
                          on backend: any Backend) throws -> Tensor {
        let step = try current(), (g, i) = layerSlots[layer]
        try backend.writeKV(k: k, v: v, kCache: keys[i], vCache: values[i], slots: step.slots[g])
        return try backend.pagedAttention(q: q, kCache: keys[i], vCache: values[i], sinks: sinks, layout: step.layouts[g],
                                          window: window, scale: scale)
    }

    /// The rotation of k fused with its store (`ropeWriteKV`: one launch on a GPU), then attention.
    public func ropeAttention(layer: Int, q: Tensor, k: Tensor, v: Tensor, invFreq: Tensor, scaling: Float, sinks: Tensor?, window: Int?,
                              scale: Float, on backend: any Backend) throws -> Tensor {
        let step = try current(), (g, i) = layerSlots[layer]
        let rq = try backend.ropeWriteKV(q: q, k: k, v: v, positions: step.positions, invFreq: invFreq, scaling: scaling,
                                         kCache: keys[i], vCache: values[i], slots: step.slots[g])
        return try backend.pagedAttention(q: rq, kCache: keys[i], vCache: values[i], sinks: sinks, layout: step.layouts[g],
                                          window: window, scale: scale)
    }

    /// Nothing to do: the scheduler counts what each sequence has computed.
    public func advance(by count: Int) {}
}
