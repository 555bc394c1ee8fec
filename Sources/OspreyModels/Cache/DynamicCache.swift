// DynamicCache: the config-aware cache of transformers, on the model's backend. Full-attention layers
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
    private let backend: any Backend
    public private(set) var offset = 0

    /// One entry per layer: the sliding window, or nil for full attention. Keys and values live
    /// on `backend`'s device.
    public init(windows: [Int?], backend: any Backend) {
        layers = windows.map { Layer(window: $0) }
        self.backend = backend
    }

    public func update(layer index: Int, k: Tensor, v: Tensor) throws -> (k: Tensor, v: Tensor, keyStart: Int) {
        guard k.shape == v.shape, k.shape.rank == 3, k.dtype == .f32, k.device == backend.device else {
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
            l.k = try grow(l.k, count: l.count, capacity: capacity, row: rowShape)
            l.v = try grow(l.v, count: l.count, capacity: capacity, row: rowShape)
        }
        try backend.copyRows(k, into: l.k!, at: l.count)
        try backend.copyRows(v, into: l.v!, at: l.count)
        let visible = (k: l.k!.rows(0..<total), v: l.v!.rows(0..<total), keyStart: l.start)
        l.count = total
        if let keep, l.count > keep {
            let drop = l.count - keep
            let tailK = l.k!.rows(drop..<l.count), tailV = l.v!.rows(drop..<l.count)
            l.k = try copy(tailK); l.v = try copy(tailV)
            l.count = keep
            l.start += drop
        }
        layers[index] = l
        return visible
    }

    public func advance(by count: Int) { offset += count }

    public func storedTokens(layer: Int) -> Int { layers[layer].count }

    private func grow(_ old: Tensor?, count: Int, capacity: Int, row: [Int]) throws -> Tensor {
        let fresh = try backend.makeBuffer(Shape([capacity] + row), dtype: .f32)
        if let old, count > 0 { try backend.copyRows(old.rows(0..<count), into: fresh, at: 0) }
        return fresh
    }

    private func copy(_ t: Tensor) throws -> Tensor {
        let out = try backend.makeBuffer(t.shape, dtype: t.dtype)
        try backend.copyRows(t, into: out, at: 0)
        return out
    }
}

extension Int {
    func roundedUp(to multiple: Int) -> Int { (self + multiple - 1) / multiple * multiple }
}
