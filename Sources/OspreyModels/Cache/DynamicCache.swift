// DynamicCache: the config-aware cache of transformers, in host memory. Full-attention layers
// grow (capacity doubles, rounded to 256 rows, so appends are amortised O(1) and the returned
// keys are a view, not a copy); sliding-window layers keep only the last `window - 1` positions,
// which is all a later query can see (key j is visible to query i iff i - j < window), so their
// memory stops growing at the window whatever the sequence length.
import OspreyCore

/// A host-memory KV cache whose sliding layers stop growing at their window.
public final class DynamicCache: KVCache {
    private struct Layer {
        let window: Int?
        var k: Tensor?
        var v: Tensor?
        var count = 0       // rows stored
        var start = 0       // absolute position of row 0
    }

    private var layers: [Layer]
    public private(set) var offset = 0

    /// One entry per layer: the sliding window, or nil for full attention.
    public init(windows: [Int?]) {
        layers = windows.map { Layer(window: $0) }
    }

    public func update(layer index: Int, k: Tensor, v: Tensor) throws -> (k: Tensor, v: Tensor, keyStart: Int) {
        guard k.shape == v.shape, k.shape.rank == 3, k.dtype == .f32 else {
            throw OspreyError.invalidTensor("cache update with k \(k.shape) v \(v.shape)")
        }
        var l = layers[index]
        let T = k.shape[0], rowShape = Array(k.shape.dims.dropFirst())
        if l.count == 0 { l.start = offset }
        let total = l.count + T
        let keep = l.window.map { max($0 - 1, 0) }
        if l.k == nil || l.k!.shape[0] < total || (keep != nil) {
            // Sliding layers build [kept + new] afresh (at most window - 1 + T rows); full layers
            // reallocate only when capacity runs out.
            let capacity = keep != nil ? total : max(total, 2 * (l.k?.shape[0] ?? 0)).roundedUp(to: 256)
            l.k = try Self.grow(l.k, count: l.count, capacity: capacity, row: rowShape)
            l.v = try Self.grow(l.v, count: l.count, capacity: capacity, row: rowShape)
        }
        Self.write(k, into: l.k!, at: l.count)
        Self.write(v, into: l.v!, at: l.count)
        let visible = (k: l.k!.rows(0..<total), v: l.v!.rows(0..<total), keyStart: l.start)
        l.count = total
        if let keep, l.count > keep {
            let drop = l.count - keep
            let tailK = l.k!.rows(drop..<l.count), tailV = l.v!.rows(drop..<l.count)
            l.k = Self.copy(tailK); l.v = Self.copy(tailV)
            l.count = keep
            l.start += drop
        }
        layers[index] = l
        return visible
    }

    public func advance(by count: Int) { offset += count }

    public func storedTokens(layer: Int) -> Int { layers[layer].count }

    private static func grow(_ old: Tensor?, count: Int, capacity: Int, row: [Int]) throws -> Tensor {
        let fresh = Tensor(zeros: Shape([capacity] + row), dtype: .f32)
        if let old, count > 0 {
            fresh.mutableRaw.copyMemory(from: old.raw, byteCount: old.rows(0..<count).byteCount)
        }
        return fresh
    }

    private static func write(_ src: Tensor, into dst: Tensor, at row: Int) {
        dst.rows(row..<(row + src.shape[0])).mutableRaw.copyMemory(from: src.raw, byteCount: src.byteCount)
    }

    private static func copy(_ t: Tensor) -> Tensor {
        let out = Tensor(zeros: t.shape, dtype: t.dtype)
        out.mutableRaw.copyMemory(from: t.raw, byteCount: t.byteCount)
        return out
    }
}

extension Int {
    func roundedUp(to multiple: Int) -> Int { (self + multiple - 1) / multiple * multiple }
}
