// The Backend protocol: everything a model's forward pass asks of a device. A family's forward
// pass is written once against it (DESIGN decision 4); the CPU backend is the naive, readable
// oracle and the CUDA backend implements the same ops with kernels. Activations are f32 on the
// CPU; weights may be f32, f16 or bf16 and are widened as they are read, and so is a paged KV
// cache of bf16 (rounded to nearest even as it is written). Ops take their
// per-step metadata (positions, windows) as explicit arguments, never as globals.

/// The two halves of a gpt-oss style expert bank, in one of the layouts the backends understand.
/// Rows are output features throughout (as in `nn.Linear` and MXFP4 checkpoints).
public enum ExpertWeights: Sendable {
    /// Dense experts: `gateUp` [E, 2I, H] and `down` [E, H, I] of f32, f16 or bf16.
    case dense(gateUp: Tensor, down: Tensor)
    /// MXFP4 experts as stored: `*_blocks` u8 [E, rows, cols/32, 16] and `*_scales` u8 [E, rows, cols/32].
    case mxfp4(gateUpBlocks: Tensor, gateUpScales: Tensor, downBlocks: Tensor, downScales: Tensor)

    /// Number of experts.
    public var count: Int {
        switch self {
        case .dense(let gateUp, _): gateUp.shape[0]
        case .mxfp4(let blocks, _, _, _): blocks.shape[0]
        }
    }
}

/// A mixture-of-experts layer's weights and activation settings (clamped SwiGLU, gpt-oss style:
/// gate/up interleaved in the gate_up output, even = gate, odd = up).
public struct ExpertBank: Sendable {
    public var weights: ExpertWeights
    /// [E, 2I] bias of gate_up (interleaved like its output).
    public var gateUpBias: Tensor
    /// [E, H] bias of down.
    public var downBias: Tensor
    public var swigluLimit: Float
    public var alpha: Float
    /// MXFP4 blocks in `MXFP4Tiling`'s layout (as `Backend.uploadExpertBlocks` gave them; the
    /// tensors keep their stored shapes [E, R, nb, 16]) rather than as stored.
    public var tiledBlocks: Bool

    public init(weights: ExpertWeights, gateUpBias: Tensor, downBias: Tensor, swigluLimit: Float, alpha: Float = 1.702,
                tiledBlocks: Bool = false) {
        self.weights = weights
        self.gateUpBias = gateUpBias
        self.downBias = downBias
        self.swigluLimit = swigluLimit
        self.alpha = alpha
        self.tiledBlocks = tiledBlocks
    }
}

/// Where the keys of one attention call sit, and which of them a query may see.
public struct AttentionSpan: Sendable {
    /// Absolute position of query row 0; query row t is at `queryStart + t`.
    public var queryStart: Int
    /// Absolute position of key row 0; key row s is at `keyStart + s`.
    public var keyStart: Int
    /// Sliding window: key j is visible to query i iff 0 <= i - j < window. `nil`: full causal.
    public var window: Int?

    public init(queryStart: Int, keyStart: Int, window: Int?) {
        self.queryStart = queryStart
        self.keyStart = keyStart
        self.window = window
    }
}

/// Where the keys of a batch of sequences sit in a paged KV cache, built per step by the model
/// runner (all i32 tensors on the backend's device). Query row i of sequence s (0-based within s,
/// n its query count) is at position `contextLengths[s] - n + i`: a sequence's queries are the last
/// n positions of its context (decode: n = 1; a prefill chunk: n > 1, possibly mid-sequence).
public struct PagedLayout: Sendable {
    /// i32 [S + 1]: sequence s owns query rows `queryStarts[s] ..< queryStarts[s + 1]` (cu_seqlens_q).
    public var queryStarts: Tensor
    /// i32 [S]: the keys of sequence s are at positions `0 ..< contextLengths[s]` (this step's keys included).
    public var contextLengths: Tensor
    /// i32 [S, maxBlocks]: position p of sequence s lives in cache row
    /// `blockTables[s][p / blockSize] * blockSize + p % blockSize`; entries no query can see may be -1.
    public var blockTables: Tensor
    public var blockSize: Int
    /// S (host value, for grid sizes).
    public var sequenceCount: Int
    /// The largest query count of a sequence, or an upper bound of it (host value).
    public var maxQueryLength: Int
    /// The largest context length, or an upper bound of it (host value).
    public var maxContextLength: Int

    public init(queryStarts: Tensor, contextLengths: Tensor, blockTables: Tensor, blockSize: Int,
                sequenceCount: Int, maxQueryLength: Int, maxContextLength: Int) {
        (self.queryStarts, self.contextLengths, self.blockTables) = (queryStarts, contextLengths, blockTables)
        (self.blockSize, self.sequenceCount, self.maxQueryLength, self.maxContextLength) = (blockSize, sequenceCount, maxQueryLength, maxContextLength)
    }

    /// Entries per row of `blockTables`.
    public var maxBlocks: Int { blockTables.shape.rank == 2 ? blockTables.shape[1] : 0 }

    /// Checks the shapes, dtypes and host values against each other (not the tensors' contents,
    /// which may be on a device).
    public func validate() throws {
        let S = sequenceCount
        guard queryStarts.dtype == .i32, contextLengths.dtype == .i32, blockTables.dtype == .i32 else {
            throw OspreyError.invalidTensor("paged layout: queryStarts, contextLengths and blockTables must be i32, got \(queryStarts.dtype), \(contextLengths.dtype), \(blockTables.dtype)")
        }
        guard S >= 1, queryStarts.shape == [S + 1], contextLengths.shape == [S], blockTables.shape.rank == 2, blockTables.shape[0] == S else {
            throw OspreyError.invalidTensor("paged layout of \(S) sequences: queryStarts \(queryStarts.shape), contextLengths \(contextLengths.shape), blockTables \(blockTables.shape)")
        }
        guard blockSize >= 1, maxQueryLength >= 0, maxContextLength >= maxQueryLength, maxContextLength <= maxBlocks * blockSize else {
            throw OspreyError.invalidArgument("paged layout: block size \(blockSize), maxQueryLength \(maxQueryLength), maxContextLength \(maxContextLength) with \(maxBlocks) blocks per sequence")
        }
    }
}

/// The operations a device offers a model. Errors are device failures (a kernel launch, memory).
public protocol Backend: Sendable {
    /// The device whose memory this backend's tensors live in.
    var device: Device { get }

    /// Why this backend cannot run its kernels on MXFP4 expert weights; nil when it can (the
    /// default). Loading then expands the experts to bf16 instead and says so (issue 6's fallback).
    var mxfp4Unavailable: String? { get }

    /// Copies a host tensor to this device (returns it unchanged on the CPU).
    func upload(_ tensor: Tensor) throws -> Tensor
    /// Copies host MXFP4 expert blocks u8 [E, R, nb, 16] to this device in the layout its expert
    /// kernels read fastest; `tiled` says whether that is `MXFP4Tiling` (the bank's `tiledBlocks`).
    /// Default: `upload`, as stored.
    func uploadExpertBlocks(_ blocks: Tensor) throws -> (blocks: Tensor, tiled: Bool)
    /// Records the device work `body` queues, without running it, for `replay` (CUDA graphs: one
    /// launch instead of hundreds); nil where there are no graphs (default: the body is not run)
    /// or the work could not be recorded. Starts a step first (`beginStep`).
    func record(_ body: () throws -> Void) throws -> (any DeviceGraph)?
    /// Queues the work `graph` recorded again, on the same addresses.
    func replay(_ graph: any DeviceGraph) throws
    /// Copies a tensor of this device to the host (returns it unchanged on the CPU).
    func download(_ tensor: Tensor) throws -> Tensor
    /// A zero-filled tensor on this device that lives as long as it is referenced (caches, weights).
    func makeBuffer(_ shape: Shape, dtype: DType) throws -> Tensor
    /// Copies all rows of `source` into `destination` starting at row `row` (same row shape and dtype).
    func copyRows(_ source: Tensor, into destination: Tensor, at row: Int) throws

    /// Rows `ids` of `table` [V, H], as f32 [T, H].
    func embedding(_ table: Tensor, ids: [Int32]) throws -> Tensor
    /// `x * rsqrt(mean(x^2) + eps) * weight` per row, computed in f32. x [T, H].
    func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) throws -> Tensor
    /// `x @ weight^T + bias`: x [T, in] f32, weight [out, in], bias [out] or nil -> [T, out].
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor
    /// Several linear layers over the same input (q, k and v): one launch on a GPU where the
    /// shapes allow. Default: `linear` for each.
    func linears(_ x: Tensor, _ layers: [(weight: Tensor, bias: Tensor?)]) throws -> [Tensor]
    /// Elementwise a + b of equal shapes.
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor
    /// The residual add and the next RMSNorm in one pass: sum = a + b, normed = rmsNorm(sum).
    func addRMSNorm(_ a: Tensor, _ b: Tensor, weight: Tensor, eps: Float) throws -> (sum: Tensor, normed: Tensor)
    /// Rotary embedding, half-split (first half / second half), in place on a copy:
    /// x [T, heads, D]; row t at position `start + t`; cos/sin of pos * invFreq[i], times `scaling`.
    func rope(_ x: Tensor, start: Int, invFreq: Tensor, scaling: Float) throws -> Tensor
    /// Attention with optional learned sinks (one logit per query head, an extra softmax column
    /// with no value). q [T, Hq, D], k/v [S, Hkv, D], Hq a multiple of Hkv -> [T, Hq * D].
    func attention(q: Tensor, k: Tensor, v: Tensor, sinks: Tensor?, span: AttentionSpan, scale: Float) throws -> Tensor
    /// Like `rope(_:start:invFreq:scaling:)` with row t at position `positions[t]` (i32 [T] on this device).
    /// Default: one `rope(start:)` per row after reading the positions on the host.
    func rope(_ x: Tensor, positions: Tensor, invFreq: Tensor, scaling: Float) throws -> Tensor
    /// `rope(_:positions:invFreq:scaling:)` of q [T, Hq, D] and k [T, Hk, D] at the same positions,
    /// in one call (one launch on a GPU). Default: one call each.
    func rope(_ q: Tensor, _ k: Tensor, positions: Tensor, invFreq: Tensor, scaling: Float) throws -> (q: Tensor, k: Tensor)
    /// Writes row t of k and v (f32 [T, Hkv, D]) into row `slots[t]` of `kCache` and `vCache`
    /// ([rows, Hkv, D], both f32 or both bf16), in place; slots is i32 [T] on this device and a
    /// slot < 0 skips its row. Into a bf16 cache each value is rounded to nearest even (`bf16Bits`).
    /// Default: `copyRows` per row after reading the slots (and rounding, for bf16) on the host.
    func writeKV(k: Tensor, v: Tensor, kCache: Tensor, vCache: Tensor, slots: Tensor) throws
    /// `rope(q, k, positions:)` and `writeKV` of the rotated k and of v, in one call (one launch on a
    /// GPU, the rotated k never leaving it); returns the rotated q. Default: those two.
    func ropeWriteKV(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, invFreq: Tensor, scaling: Float,
                     kCache: Tensor, vCache: Tensor, slots: Tensor) throws -> Tensor
    /// `attention` over a batch of sequences whose keys and values sit in a paged cache ([rows, Hkv, D],
    /// both f32 or both bf16, bf16 widened to f32 as it is read; f32 math either way), read through
    /// `layout.blockTables`. q [T, Hq, D] with T = queryStarts[S],
    /// Hq a multiple of Hkv -> [T, Hq * D]. Key j is visible to a query at position p iff j <= p and,
    /// with a window, p - j < window; sinks as in `attention`.
    /// Default: per sequence, its keys gathered with `copyRows` (and widened on the host, for bf16)
    /// and `attention` (metadata read on the host).
    func pagedAttention(q: Tensor, kCache: Tensor, vCache: Tensor, sinks: Tensor?, layout: PagedLayout, window: Int?, scale: Float) throws -> Tensor
    /// Rows `rows` (i32 [R] on this device) of x [T, H] -> [R, H] (each sequence's last row before the lm_head).
    /// Default: `copyRows` per row after reading the indices on the host.
    func gatherRows(_ x: Tensor, rows: Tensor) throws -> Tensor
    /// Top-k over each row of `logits` [T, E] (ties to the lower index), then softmax over the k:
    /// returns expert ids (i32 [T, k]) and their weights (f32 [T, k]) on this device.
    func topKSoftmax(_ logits: Tensor, k: Int) throws -> (ids: Tensor, weights: Tensor)
    /// Routed experts: for each token t and each of its k picks e with weight w,
    /// `out[t] += w * (down_e(swiglu(gateUp_e(x[t]) + bGU_e)) + bD_e)`. x [T, H] -> [T, H].
    func experts(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor) throws -> Tensor
    /// The residual add, the norm and the MoE routing in one call: `addRMSNorm(a, b)`, then
    /// `topKSoftmax(linear(normed, router, routerBias), k)`. Default: those three; the CUDA backend
    /// does decode-sized batches in one kernel.
    func addRMSNormRoute(_ a: Tensor, _ b: Tensor, weight: Tensor, eps: Float, router: Tensor, routerBias: Tensor?, k: Int) throws
        -> (sum: Tensor, normed: Tensor, ids: Tensor, weights: Tensor)
    /// The experts' output added to `residual` and normalized: `addRMSNorm(residual, experts(x, ...))`
    /// in one call. Default: those two; the CUDA backend folds the experts' weighted combine into the
    /// add for decode-sized batches.
    func expertsAddRMSNorm(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor, residual: Tensor, weight: Tensor, eps: Float) throws
        -> (sum: Tensor, normed: Tensor)

    /// Like `embedding(_:ids:)` with the ids already on this device (i32 [T]), e.g. the previous
    /// step's argmax, so a decode step needs nothing from the host. Ids outside the table give zero rows.
    func embedding(_ table: Tensor, tokens: Tensor) throws -> Tensor
    /// The index of the largest value of each row of `logits` [T, V] (ties to the lower index),
    /// written as i32 into `out` [T], a buffer of this device (it outlives the step).
    func argmax(_ logits: Tensor, into out: Tensor) throws
    /// A token drawn for each row of `logits` [T, V] from softmax(row / temperature), by Gumbel-max
    /// with `GumbelSampling`'s noise, written as i32 into `out` [T] (a buffer of this device).
    /// `parameters` i32 [T, 3] on this device: the temperature's f32 bits (> 0), the seed's low and
    /// high 32 bits. Default: on the host with `GumbelSampling.pick`.
    func sample(_ logits: Tensor, parameters: Tensor, into out: Tensor) throws
    /// Starts copying a small tensor of this device to the host behind the work queued so far and
    /// returns at once; `wait()` on the result blocks until the copy is done. A decode loop queues
    /// step n + 1 before waiting for step n's token, so the device never waits for the host.
    func startDownload(_ tensor: Tensor) throws -> PendingDownload

    /// Says that of the tensors this step's ops returned so far only `tensors` are still needed,
    /// and returns them (possibly moved): a GPU backend then reuses the rest of its step workspace, so a
    /// long prefill needs one layer's worth of scratch memory, not one per layer. Default: `t`.
    func keepOnly(_ tensors: [Tensor]) throws -> [Tensor]

    /// Marks the start of a forward step: tensors the previous step's ops returned may be reused
    /// (a GPU backend recycles its per-step workspace here). Default: nothing to do.
    func beginStep() throws
    /// Tells the backend how many bytes of weights are about to be uploaded, so it can reserve
    /// them in one allocation before any copy. Default: nothing to do.
    func reserveWeights(bytes: Int) throws
}

/// A device-to-host copy in flight (see `Backend.startDownload`).
public struct PendingDownload {
    /// Shape and dtype of the tensor being copied.
    public let shape: Shape
    public let dtype: DType
    private let finish: (UnsafeMutableRawPointer) throws -> Void

    /// `finish` blocks until the copy is done and writes its bytes to the pointer it is given.
    public init(shape: Shape, dtype: DType, _ finish: @escaping (UnsafeMutableRawPointer) throws -> Void) {
        (self.shape, self.dtype, self.finish) = (shape, dtype, finish)
    }

    /// Bytes the copy delivers.
    public var byteCount: Int { dtype.byteCount(elements: shape.count) }

    /// Blocks until the copy is done and writes it into `buffer` (no allocation: a decode loop
    /// reads its token this way).
    public func wait(into buffer: UnsafeMutableRawBufferPointer) throws {
        guard let base = buffer.baseAddress, buffer.count >= byteCount else {
            throw OspreyError.invalidArgument("a \(buffer.count)-byte buffer for a \(byteCount)-byte download")
        }
        try finish(base)
    }

    /// Blocks until the copy is done; returns it as a new host tensor.
    public func wait() throws -> Tensor {
        let out = Tensor(zeros: shape, dtype: dtype)
        try finish(out.mutableRaw)
        return out
    }
}

extension Backend {
    public var mxfp4Unavailable: String? { nil }

    public func embedding(_ table: Tensor, tokens: Tensor) throws -> Tensor {
        let host = try download(tokens)
        return try embedding(table, ids: (0..<host.count).map { host.raw.load(fromByteOffset: 4 * $0, as: Int32.self) })
    }

    public func startDownload(_ tensor: Tensor) throws -> PendingDownload {
        let host = try download(tensor)
        return PendingDownload(shape: host.shape, dtype: host.dtype) { $0.copyMemory(from: host.raw, byteCount: host.byteCount) }
    }

    public func keepOnly(_ tensors: [Tensor]) throws -> [Tensor] { tensors }

    public func linears(_ x: Tensor, _ layers: [(weight: Tensor, bias: Tensor?)]) throws -> [Tensor] {
        try layers.map { try linear(x, weight: $0.weight, bias: $0.bias) }
    }

    public func addRMSNorm(_ a: Tensor, _ b: Tensor, weight: Tensor, eps: Float) throws -> (sum: Tensor, normed: Tensor) {
        let sum = try add(a, b)
        return (sum, try rmsNorm(sum, weight: weight, eps: eps))
    }

    public func addRMSNormRoute(_ a: Tensor, _ b: Tensor, weight: Tensor, eps: Float, router: Tensor, routerBias: Tensor?, k: Int) throws
        -> (sum: Tensor, normed: Tensor, ids: Tensor, weights: Tensor) {
        try composedAddRMSNormRoute(a, b, weight: weight, eps: eps, router: router, routerBias: routerBias, k: k)
    }

    /// `addRMSNormRoute` as its three ops (the default, and a fused backend's fallback).
    public func composedAddRMSNormRoute(_ a: Tensor, _ b: Tensor, weight: Tensor, eps: Float, router: Tensor, routerBias: Tensor?, k: Int) throws
        -> (sum: Tensor, normed: Tensor, ids: Tensor, weights: Tensor) {
        let (sum, normed) = try addRMSNorm(a, b, weight: weight, eps: eps)
        let routing = try topKSoftmax(linear(normed, weight: router, bias: routerBias), k: k)
        return (sum, normed, routing.ids, routing.weights)
    }

    public func expertsAddRMSNorm(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor, residual: Tensor, weight: Tensor, eps: Float) throws
        -> (sum: Tensor, normed: Tensor) {
        try addRMSNorm(residual, experts(x, bank: bank, ids: ids, weights: weights), weight: weight, eps: eps)
    }

    public func rope(_ q: Tensor, _ k: Tensor, positions: Tensor, invFreq: Tensor, scaling: Float) throws -> (q: Tensor, k: Tensor) {
        (try rope(q, positions: positions, invFreq: invFreq, scaling: scaling), try rope(k, positions: positions, invFreq: invFreq, scaling: scaling))
    }

    public func ropeWriteKV(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, invFreq: Tensor, scaling: Float,
                            kCache: Tensor, vCache: Tensor, slots: Tensor) throws -> Tensor {
        let (rq, rk) = try rope(q, k, positions: positions, invFreq: invFreq, scaling: scaling)
        try writeKV(k: rk, v: v, kCache: kCache, vCache: vCache, slots: slots)
        return rq
    }

    public func beginStep() throws {}
    public func reserveWeights(bytes: Int) throws {}
    public func uploadExpertBlocks(_ blocks: Tensor) throws -> (blocks: Tensor, tiled: Bool) { (try upload(blocks), false) }
    public func record(_ body: () throws -> Void) throws -> (any DeviceGraph)? { nil }

    public func sample(_ logits: Tensor, parameters: Tensor, into out: Tensor) throws {
        let V = logits.shape[-1], T = logits.count / max(V, 1)
        guard V > 0, logits.dtype == .f32, parameters.dtype == .i32, parameters.count == 3 * T, out.dtype == .i32, out.count == T else {
            throw OspreyError.invalidTensor("sample of \(logits.shape) \(logits.dtype) with parameters \(parameters.shape) into \(out.shape) \(out.dtype)")
        }
        let (rows, params) = (try download(logits), try download(parameters).int32s())
        let picks = Tensor(zeros: [T], dtype: .i32)
        let x = rows.raw.assumingMemoryBound(to: Float.self), o = picks.mutableRaw.assumingMemoryBound(to: Int32.self)
        for t in 0..<T {
            let temperature = Float(bitPattern: UInt32(bitPattern: params[3 * t]))
            let seed = UInt64(UInt32(bitPattern: params[3 * t + 1])) | UInt64(UInt32(bitPattern: params[3 * t + 2])) << 32
            guard temperature > 0 else { throw OspreyError.invalidArgument("sample: temperature \(temperature) of row \(t)") }
            o[t] = GumbelSampling.pick(x + t * V, count: V, temperature: temperature, seed: seed)
        }
        try copyRows(picks, into: out, at: 0)
    }
    public func replay(_ graph: any DeviceGraph) throws { throw OspreyError.invalidArgument("this backend has no recorded graphs") }
}

/// Device work recorded once (`Backend.record`) and replayed on the same addresses.
public protocol DeviceGraph: AnyObject, Sendable {
    /// False once memory the recorded work uses may have moved: record it again.
    var isValid: Bool { get }
}

// MARK: - Paged ops composed from the others (slow: they read their i32 inputs on the host)

extension Backend {
    public func rope(_ x: Tensor, positions: Tensor, invFreq: Tensor, scaling: Float) throws -> Tensor {
        let pos = try download(positions).int32s()
        guard x.shape.rank == 3, positions.dtype == .i32, pos.count == x.shape[0] else {
            throw OspreyError.invalidTensor("rope of \(x.shape) at \(positions.dtype) positions \(positions.shape)")
        }
        let out = try makeBuffer(x.shape, dtype: .f32)
        for (t, p) in pos.enumerated() {
            try copyRows(rope(x.rows(t..<(t + 1)), start: Int(p), invFreq: invFreq, scaling: scaling), into: out, at: t)
        }
        return out
    }

    public func writeKV(k: Tensor, v: Tensor, kCache: Tensor, vCache: Tensor, slots: Tensor) throws {
        let slot = try download(slots).int32s()
        guard k.shape == v.shape, kCache.shape == vCache.shape, slots.dtype == .i32, slot.count == k.shape[0],
              k.dtype == .f32, v.dtype == .f32, kCache.dtype == vCache.dtype, kCache.dtype == .f32 || kCache.dtype == .bf16 else {
            throw OspreyError.invalidTensor("writeKV of k \(k.dtype) \(k.shape), v \(v.dtype) \(v.shape) into \(kCache.dtype) \(kCache.shape) / \(vCache.dtype) \(vCache.shape) at \(slots.dtype) slots \(slots.shape)")
        }
        var (k, v) = (k, v)
        if kCache.dtype == .bf16 { (k, v) = (try upload(download(k).roundedToBF16()), try upload(download(v).roundedToBF16())) }
        for (t, r) in slot.enumerated() where r >= 0 {
            try copyRows(k.rows(t..<(t + 1)), into: kCache, at: Int(r))
            try copyRows(v.rows(t..<(t + 1)), into: vCache, at: Int(r))
        }
    }

    public func gatherRows(_ x: Tensor, rows: Tensor) throws -> Tensor {
        let index = try download(rows).int32s()
        guard x.shape.rank == 2, rows.dtype == .i32, index.allSatisfy({ $0 >= 0 && Int($0) < x.shape[0] }) else {
            throw OspreyError.invalidTensor("gatherRows of \(x.shape) at \(rows.dtype) rows \(index)")
        }
        let out = try makeBuffer([index.count, x.shape[1]], dtype: x.dtype)
        for (i, r) in index.enumerated() { try copyRows(x.rows(Int(r)..<(Int(r) + 1)), into: out, at: i) }
        return out
    }

    public func pagedAttention(q: Tensor, kCache: Tensor, vCache: Tensor, sinks: Tensor?, layout: PagedLayout, window: Int?, scale: Float) throws -> Tensor {
        try layout.validate()
        if let window, window < 1 { throw OspreyError.invalidArgument("pagedAttention: window \(window)") }
        let starts = try download(layout.queryStarts).int32s().map(Int.init)
        let lengths = try download(layout.contextLengths).int32s().map(Int.init)
        let table = try download(layout.blockTables).int32s().map(Int.init)
        let (bs, maxBlocks) = (layout.blockSize, layout.maxBlocks)
        guard q.shape.rank == 3, kCache.shape.rank == 3, kCache.shape == vCache.shape, q.shape[2] == kCache.shape[2],
              q.shape[0] == starts.last, kCache.dtype == vCache.dtype, kCache.dtype == .f32 || kCache.dtype == .bf16 else {
            throw OspreyError.invalidTensor("pagedAttention of q \(q.shape) over \(kCache.dtype) / \(vCache.dtype) caches \(kCache.shape) / \(vCache.shape) with \(starts.last ?? 0) query rows")
        }
        let out = try makeBuffer([q.shape[0], q.shape[1] * q.shape[2]], dtype: .f32)
        for s in 0..<layout.sequenceCount where starts[s] < starts[s + 1] {
            let n = starts[s + 1] - starts[s], context = lengths[s]
            guard n <= context, context <= maxBlocks * bs else {
                throw OspreyError.invalidArgument("sequence \(s): \(n) queries, \(context) keys, \(maxBlocks) blocks of \(bs)")
            }
            // This sequence's keys in order; blocks marked -1 stay zero (no query of it sees them).
            var k = try makeBuffer([context, kCache.shape[1], kCache.shape[2]], dtype: kCache.dtype)
            var v = try makeBuffer(k.shape, dtype: kCache.dtype)
            for b in 0..<((context + bs - 1) / bs) where table[s * maxBlocks + b] >= 0 {
                let (row, count) = (table[s * maxBlocks + b] * bs, min(bs, context - b * bs))
                guard row + count <= kCache.shape[0] else {
                    throw OspreyError.invalidArgument("block \(table[s * maxBlocks + b]) of sequence \(s) outside a cache of \(kCache.shape[0]) rows")
                }
                try copyRows(kCache.rows(row..<(row + count)), into: k, at: b * bs)
                try copyRows(vCache.rows(row..<(row + count)), into: v, at: b * bs)
            }
            if kCache.dtype == .bf16 { (k, v) = (try upload(download(k).toF32()), try upload(download(v).toF32())) }
            let span = AttentionSpan(queryStart: context - n, keyStart: 0, window: window)
            try copyRows(attention(q: q.rows(starts[s]..<starts[s + 1]), k: k, v: v, sinks: sinks, span: span, scale: scale), into: out, at: starts[s])
        }
        return out
    }
}

extension Tensor {
    /// The elements of a host i32 tensor.
    fileprivate func int32s() -> [Int32] { (0..<count).map { raw.load(fromByteOffset: 4 * $0, as: Int32.self) } }

    /// A host bf16 copy of a host f32 tensor, each value rounded to nearest even.
    fileprivate func roundedToBF16() -> Tensor {
        let out = Tensor(zeros: shape, dtype: .bf16)
        for i in 0..<count { out.mutableRaw.storeBytes(of: bf16Bits(float(at: i)), toByteOffset: 2 * i, as: UInt16.self) }
        return out
    }
}
