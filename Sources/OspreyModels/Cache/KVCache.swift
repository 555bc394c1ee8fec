// The cache protocols (STYLE habit 8). `AttentionCache` is what a forward pass asks of a cache:
// the positions of this step's rows (for RoPE) and attention over the keys a layer may see, this
// step's included. `KVCache` is the one-sequence kind: a layer appends the keys and values of the
// tokens being computed and gets back every key/value those tokens may attend to, with the
// absolute position of the first one; its positions run on from `offset`. Conformers decide what
// they keep: DynamicCache keeps only the last window-1 positions on sliding layers and everything
// on full layers, growing as needed; StaticCache does the same in buffers allocated once.
// PagedKVCache (the continuous-batching engine's) holds many sequences in fixed-size blocks and
// takes its positions and block tables from the step the runner set. A cache is an owned, mutable
// resource used by one forward pass at a time, hence class protocols.
import OspreyCore

/// What a forward pass asks of its cache.
public protocol AttentionCache: AnyObject {
    /// RoPE (half-split) of x [T, heads, D] at the positions of this step's rows.
    func rope(_ x: Tensor, invFreq: Tensor, scaling: Float, on backend: any Backend) throws -> Tensor
    /// RoPE of q [T, Hq, D] and k [T, Hk, D] at the positions of this step's rows (one call).
    func rope(_ q: Tensor, _ k: Tensor, invFreq: Tensor, scaling: Float, on backend: any Backend) throws -> (q: Tensor, k: Tensor)
    /// Stores this step's k, v [T, Hkv, D] for `layer` and returns attention of q [T, Hq, D] over
    /// the keys each query may see (its own included), [T, Hq * D].
    func attention(layer: Int, q: Tensor, k: Tensor, v: Tensor, sinks: Tensor?, window: Int?, scale: Float,
                   on backend: any Backend) throws -> Tensor
    /// RoPE of q and k at this step's positions, then `attention` of the rotated q over the stored
    /// keys with the rotated k and v stored first (one call, so a cache can fuse the rotation with
    /// the store). Default: `rope(q, k)`, then `attention`.
    func ropeAttention(layer: Int, q: Tensor, k: Tensor, v: Tensor, invFreq: Tensor, scaling: Float, sinks: Tensor?, window: Int?,
                       scale: Float, on backend: any Backend) throws -> Tensor
    /// Moves past the tokens of the step every layer has just stored.
    func advance(by count: Int)
}

/// Per-layer key/value storage for one sequence.
public protocol KVCache: AttentionCache {
    /// Number of tokens already computed (the position of the next token).
    var offset: Int { get }
    /// Appends k, v [T, Hkv, D] for `layer` (positions offset..<offset+T) and returns the keys
    /// and values visible to this step, [S, Hkv, D], whose first row is at position `keyStart`.
    func update(layer: Int, k: Tensor, v: Tensor) throws -> (k: Tensor, v: Tensor, keyStart: Int)
    /// Token positions currently stored for `layer` (what its memory holds).
    func storedTokens(layer: Int) -> Int
}

extension AttentionCache {
    /// One `rope` each.
    public func rope(_ q: Tensor, _ k: Tensor, invFreq: Tensor, scaling: Float, on backend: any Backend) throws -> (q: Tensor, k: Tensor) {
        (try rope(q, invFreq: invFreq, scaling: scaling, on: backend), try rope(k, invFreq: invFreq, scaling: scaling, on: backend))
    }

    public func ropeAttention(layer: Int, q: Tensor, k: Tensor, v: Tensor, invFreq: Tensor, scaling: Float, sinks: Tensor?, window: Int?,
                              scale: Float, on backend: any Backend) throws -> Tensor {
        let (rq, rk) = try rope(q, k, invFreq: invFreq, scaling: scaling, on: backend)
        return try attention(layer: layer, q: rq, k: rk, v: v, sinks: sinks, window: window, scale: scale, on: backend)
    }
}

extension KVCache {
    /// Rows at consecutive positions from `offset`.
    public func rope(_ x: Tensor, invFreq: Tensor, scaling: Float, on backend: any Backend) throws -> Tensor {
        try backend.rope(x, start: offset, invFreq: invFreq, scaling: scaling)
    }

    /// `update`, then attention over what it returns.
    public func attention(layer: Int, q: Tensor, k: Tensor, v: Tensor, sinks: Tensor?, window: Int?, scale: Float,
                          on backend: any Backend) throws -> Tensor {
        let start = offset
        let kv = try update(layer: layer, k: k, v: v)
        let span = AttentionSpan(queryStart: start, keyStart: kv.keyStart, window: window)
        return try backend.attention(q: q, k: kv.k, v: kv.v, sinks: sinks, span: span, scale: scale)
    }
}
