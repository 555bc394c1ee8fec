// StaticCache: a KV cache sized once, for a maximum sequence length, that never allocates again —
// what CUDA graphs want (fixed buffers, nothing allocated on the decode path). Full-attention
// layers get one buffer pair of `maxLength` rows. Sliding-window layers get two buffer pairs of
// 2 x window rows, used as DynamicCache uses its pair: rows are appended until the active buffer
// is full, then the last window - 1 rows (all a later query can see) are copied to the front of
// the other buffer and the two swap. A chunk that arrives when no earlier key is visible (the
// prefill) may be longer than a sliding buffer: attention then reads the chunk itself and only its
// last window - 1 rows are stored. Going past `maxLength` throws `CacheError.full` before anything
// is written; a later chunk longer than a sliding buffer can take next to the rows it must keep
// throws `chunkTooLong` (earlier layers of that step have then stored it: discard the cache).
// It uses only `makeBuffer` (in init) and `copyRows`, so it works on every backend.
import OspreyCore

/// Why a cache could not take a step.
public enum CacheError: Error, CustomStringConvertible, Equatable {
    /// The step would take the sequence past the length the cache was made for.
    case full(maxLength: Int, needed: Int)
    /// A chunk after the first step is longer than a sliding layer's buffer can take.
    case chunkTooLong(layer: Int, tokens: Int, limit: Int)
    /// Keys and values that do not match the shape the cache was made for.
    case badUpdate(String)

    public var description: String {
        switch self {
        case .full(let max, let needed):
            "the static cache holds \(max) tokens and this step needs \(needed); make it with a larger maxLength"
        case .chunkTooLong(let layer, let tokens, let limit):
            "layer \(layer): a chunk of \(tokens) tokens after the first step exceeds the sliding buffer (at most \(limit)); use smaller chunks"
        case .badUpdate(let m): "cache update: \(m)"
        }
    }
}

/// A KV cache whose every buffer is allocated at creation, for at most `maxLength` tokens.
public final class StaticCache: KVCache {
    /// The most tokens (prompt and generated) this cache can hold.
    public let maxLength: Int
    private let rowShape: [Int]
    private var layers: [LayerBuffers]
    private let backend: any Backend
    /// Tokens stored so far (the position of the next one).
    public private(set) var offset = 0

    /// Allocates every buffer: one entry of `windows` per layer (the sliding window, or nil for
    /// full attention), keys and values of `rowShape` ([Hkv, D]) rows in f32 on `backend`.
    public init(windows: [Int?], maxLength: Int, rowShape: [Int], backend: any Backend) throws {
        guard maxLength > 0 else { throw CacheError.badUpdate("maxLength must be positive, got \(maxLength)") }
        self.maxLength = maxLength
        self.rowShape = rowShape
        self.backend = backend
        func buffers(_ n: Int, rows: Int) throws -> [Tensor] {
            try (0..<n).map { _ in try backend.makeBuffer(Shape([rows] + rowShape), dtype: .f32) }
        }
        layers = try windows.map { window in
            guard let window else { return LayerBuffers(keep: nil, k: try buffers(1, rows: maxLength), v: try buffers(1, rows: maxLength)) }
            let keep = max(window - 1, 0)
            // A sequence that fits in 2 x window rows never needs the second buffer.
            let (n, rows) = maxLength <= 2 * window ? (1, maxLength) : (2, 2 * window)
            return LayerBuffers(keep: keep, k: try buffers(n, rows: rows), v: try buffers(n, rows: rows))
        }
    }

    public func update(layer index: Int, k: Tensor, v: Tensor) throws -> (k: Tensor, v: Tensor, keyStart: Int) {
        guard k.shape == v.shape, k.shape.rank == 3, Array(k.shape.dims.dropFirst()) == rowShape,
              k.dtype == .f32, k.device == backend.device else {
            throw CacheError.badUpdate("k \(k.shape) v \(v.shape) \(k.dtype) on \(k.device); expected [T, \(rowShape.map(String.init).joined(separator: ", "))] f32 on \(backend.device)")
        }
        let T = k.shape[0]
        guard offset + T <= maxLength else { throw CacheError.full(maxLength: maxLength, needed: offset + T) }
        var l = layers[index]
        if l.count == 0 { l.start = offset }
        if let keep = l.keep, l.count + T > l.capacity {
            let kept = min(l.count, keep)
            if kept == 0 {
                // Nothing earlier is visible: attention reads the chunk as given; store its tail.
                let tail = min(T, keep)
                if tail > 0 {
                    try backend.copyRows(k.rows((T - tail)..<T), into: l.k[l.active], at: 0)
                    try backend.copyRows(v.rows((T - tail)..<T), into: l.v[l.active], at: 0)
                }
                (l.count, l.start) = (tail, offset + T - tail)
                layers[index] = l
                return (k, v, offset)
            }
            guard kept + T <= l.capacity, l.k.count == 2 else {
                throw CacheError.chunkTooLong(layer: index, tokens: T, limit: l.capacity - kept)
            }
            try l.rotate(keeping: kept, on: backend)
        }
        let visible = try l.append(k: k, v: v, on: backend)
        layers[index] = l
        return visible
    }

    public func advance(by count: Int) { offset += count }

    public func storedTokens(layer: Int) -> Int {
        let l = layers[layer]
        return l.keep.map { min(l.count, $0) } ?? l.count
    }

    /// Rows of key storage allocated for `layer` (both buffers on sliding layers): its memory.
    public func capacityTokens(layer: Int) -> Int { layers[layer].capacityTokens }

    /// Bytes of all key and value buffers.
    public var byteCount: Int { layers.reduce(0) { $0 + ($1.k + $1.v).reduce(0) { $0 + $1.byteCount } } }
}
