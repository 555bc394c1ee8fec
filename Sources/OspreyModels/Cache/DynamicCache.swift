// DynamicCache: the config-aware cache of transformers, on the model's backend.
// Full-attention layers grow: capacity doubles (rounded to 256 rows), so appends are amortised
// O(1) and the keys returned are a view of the buffer, not a copy. Sliding-window layers keep a
// bounded buffer pair: new rows are appended until the buffer is full, then the last
// `window - 1` rows (all a later query can see: key j is visible to query i iff i - j < window)
// are copied to the front of the other buffer and the two swap. So a sliding layer's memory
// stops growing at a fixed size near twice the window, and steady decoding neither allocates
// nor copies more than window rows once every ~window tokens.
import OspreyCore

/// A KV cache whose sliding layers stop growing at their window.
public final class DynamicCache: KVCache {
    private var layers: [LayerBuffers]
    private let backend: any Backend
    public private(set) var offset = 0

    /// One entry per layer: the sliding window, or nil for full attention. Keys and values live
    /// on `backend`'s device.
    public init(windows: [Int?], backend: any Backend) {
        layers = windows.map { LayerBuffers(keep: $0.map { max($0 - 1, 0) }) }
        self.backend = backend
    }

    public func update(layer index: Int, k: Tensor, v: Tensor) throws -> (k: Tensor, v: Tensor, keyStart: Int) {
        guard k.shape == v.shape, k.shape.rank == 3, k.dtype == .f32, k.device == backend.device else {
            throw OspreyError.invalidTensor("cache update with k \(k.shape) v \(v.shape) on \(k.device)")
        }
        var l = layers[index]
        let T = k.shape[0], row = Array(k.shape.dims.dropFirst())
        if l.count == 0 { l.start = offset }
        if let keep = l.keep {
            if l.count + T > l.capacity {
                let kept = min(l.count, keep)
                if kept + T > l.capacity || l.capacity > 4 * (keep + T) + 64 {
                    // First use, a chunk bigger than the buffers, or buffers left oversized by a long
                    // prefill: (re)allocate both, keeping the tail.
                    let capacity = (keep + max(T, keep + 1)).roundedUp(to: 64)
                    let fresh = try (0..<2).map { _ in try backend.makeBuffer(Shape([capacity] + row), dtype: .f32) }
                    let freshV = try (0..<2).map { _ in try backend.makeBuffer(Shape([capacity] + row), dtype: .f32) }
                    if kept > 0 {
                        try backend.copyRows(l.k[l.active].rows((l.count - kept)..<l.count), into: fresh[0], at: 0)
                        try backend.copyRows(l.v[l.active].rows((l.count - kept)..<l.count), into: freshV[0], at: 0)
                    }
                    (l.k, l.v, l.active) = (fresh, freshV, 0)
                    l.start += l.count - kept
                    l.count = kept
                } else {
                    try l.rotate(keeping: kept, on: backend)
                }
            }
        } else if l.count + T > l.capacity {
            let capacity = max(l.count + T, 2 * l.capacity).roundedUp(to: 256)
            let fk = try backend.makeBuffer(Shape([capacity] + row), dtype: .f32)
            let fv = try backend.makeBuffer(Shape([capacity] + row), dtype: .f32)
            if l.count > 0 {
                try backend.copyRows(l.k[0].rows(0..<l.count), into: fk, at: 0)
                try backend.copyRows(l.v[0].rows(0..<l.count), into: fv, at: 0)
            }
            (l.k, l.v) = ([fk], [fv])
        }
        let visible = try l.append(k: k, v: v, on: backend)
        layers[index] = l
        return visible
    }

    public func advance(by count: Int) { offset += count }

    /// Positions a later query can still attend to: everything on full layers, at most
    /// window - 1 on sliding layers.
    public func storedTokens(layer: Int) -> Int {
        let l = layers[layer]
        return l.keep.map { min(l.count, $0) } ?? l.count
    }

    /// Rows of key storage allocated for `layer` (both buffers on sliding layers): its memory.
    public func capacityTokens(layer: Int) -> Int { layers[layer].capacityTokens }
}

extension Int {
    func roundedUp(to multiple: Int) -> Int { (self + multiple - 1) / multiple * multiple }
}
