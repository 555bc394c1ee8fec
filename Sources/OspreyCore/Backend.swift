// The Backend protocol: everything a model's forward pass asks of a device. A family's forward
// pass is written once against it (DESIGN decision 4); the CPU backend is the naive, readable
// oracle and the CUDA backend implements the same ops with kernels. Activations are f32 on the
// CPU; weights may be f32, f16 or bf16 and are widened as they are read. Ops take their
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

    public init(weights: ExpertWeights, gateUpBias: Tensor, downBias: Tensor, swigluLimit: Float, alpha: Float = 1.702) {
        self.weights = weights
        self.gateUpBias = gateUpBias
        self.downBias = downBias
        self.swigluLimit = swigluLimit
        self.alpha = alpha
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

/// The operations a device offers a model. Errors are device failures (a kernel launch, memory).
public protocol Backend: Sendable {
    /// The device whose memory this backend's tensors live in.
    var device: Device { get }

    /// Copies a host tensor to this device (returns it unchanged on the CPU).
    func upload(_ tensor: Tensor) throws -> Tensor
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
    /// Top-k over each row of `logits` [T, E] (ties to the lower index), then softmax over the k:
    /// returns expert ids (i32 [T, k]) and their weights (f32 [T, k]) on this device.
    func topKSoftmax(_ logits: Tensor, k: Int) throws -> (ids: Tensor, weights: Tensor)
    /// Routed experts: for each token t and each of its k picks e with weight w,
    /// `out[t] += w * (down_e(swiglu(gateUp_e(x[t]) + bGU_e)) + bD_e)`. x [T, H] -> [T, H].
    func experts(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor) throws -> Tensor

    /// Like `embedding(_:ids:)` with the ids already on this device (i32 [T]), e.g. the previous
    /// step's argmax, so a decode step needs nothing from the host. Ids outside the table give zero rows.
    func embedding(_ table: Tensor, tokens: Tensor) throws -> Tensor
    /// The index of the largest value of each row of `logits` [T, V] (ties to the lower index),
    /// written as i32 into `out` [T], a buffer of this device (it outlives the step).
    func argmax(_ logits: Tensor, into out: Tensor) throws
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

    public func beginStep() throws {}
    public func reserveWeights(bytes: Int) throws {}
}
