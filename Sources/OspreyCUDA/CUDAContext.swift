// One GPU as Osprey uses it: the primary context, one stream, the loaded kernel modules, and
// device memory. Memory comes from three places: a weights arena reserved in one allocation
// sized from the checkpoint before any copy; a per-step workspace (bump allocator, recycled at
// each step, so a steady decode allocates nothing once it has grown to the step's size); and
// standalone buffers for things that outlive a step (KV caches). `stats` counts allocations,
// host synchronisations and compilations so tests can show the steady decode does none.
// This class is the handle boundary: it owns mutable device state and is `@unchecked Sendable`;
// the engine drives a device from one task at a time.
import Foundation
import OspreyCore

/// Counters of the expensive events on a device.
public struct CUDAStats: Sendable, Equatable {
    public var deviceAllocations = 0
    public var hostSynchronizations = 0
    public var kernelCompilations = 0
    public var kernelLaunches = 0
    /// Waits for an earlier step's result (a token) while later work is already queued.
    public var eventWaits = 0
}

/// A GPU: context, stream, memory and kernels.
public final class CUDAContext: @unchecked Sendable {
    public let ordinal: Int
    public let name: String
    public let computeCapability: (major: Int, minor: Int)
    public let totalMemory: Int
    public private(set) var stats = CUDAStats()
    let driver: Driver
    let stream: OpaquePointer?
    private let context: OpaquePointer?
    private var registry: KernelRegistry
    private let compiler: KernelCompiler
    private var modules: [String: OpaquePointer] = [:]     // source name -> CUmodule
    private var functions: [String: OpaquePointer] = [:]   // "layer/function" -> CUfunction
    private var weights: Arena?
    private var workspace: [Arena] = []
    private var workspaceHighWater = 0
    private var currentChunk = 0
    private var blas: (lt: CUBLASLt, handle: OpaquePointer?, workspace: Arena)?
    private var blasFailure: CUDAError?
    private var plans: [GEMMKey: GEMMPlan] = [:]
    private var pinned: [(host: UnsafeMutableRawPointer, event: OpaquePointer?)] = []
    private var nextPinned = 0
    private var weightBytesExpected = 0, weightBytesCopied = 0, progressShown = -1
    /// Decode-sized MXFP4 expert matvecs quantize their inputs to int8 per 32 values and use dp4a
    /// (as llama.cpp does; ~4x fewer instructions, relative error ~1e-3). Off: f32 inputs, exact.
    public var int8DecodeActivations = true
    /// When set, every launch is timed with a pair of events (and waited for: slow, for breakdowns
    /// only) and the GPU time summed per kernel name into `profile`.
    public var profileKernels = false
    /// GPU milliseconds and launches per kernel name, while `profileKernels` is set.
    public var profile: [String: (launches: Int, milliseconds: Double)] = [:]
    private var profileEvents: (OpaquePointer?, OpaquePointer?)?
    /// When set, each step's workspace is filled with 0xFF bytes (f32 NaN) first, so an op that
    /// leaves part of its output unwritten shows up as NaN in the GPU checks.
    public var poisonWorkspace = false

    /// Opens GPU `ordinal` (driver, context, stream) and the kernel compiler.
    public init(ordinal: Int = 0) throws {
        let d = try Driver.shared.get()
        driver = d
        try d.check(d.cuInit(0), "cuInit")
        var count: Int32 = 0
        try d.check(d.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard count > 0 else { throw CUDAError.noDevice }
        guard ordinal >= 0 && ordinal < Int(count) else {
            throw CUDAError.driver(call: "cuDeviceGet", status: 101, message: "device \(ordinal) requested, \(count) present")
        }
        var dev: Int32 = 0
        try d.check(d.cuDeviceGet(&dev, Int32(ordinal)), "cuDeviceGet")
        var nameBuf = [CChar](repeating: 0, count: 256)
        try d.check(d.cuDeviceGetName(&nameBuf, 256, dev), "cuDeviceGetName")
        var major: Int32 = 0, minor: Int32 = 0, driverVersion: Int32 = 0
        try d.check(d.cuDeviceGetAttribute(&major, 75, dev), "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)")
        try d.check(d.cuDeviceGetAttribute(&minor, 76, dev), "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)")
        try d.check(d.cuDriverGetVersion(&driverVersion), "cuDriverGetVersion")
        var total = 0
        try d.check(d.cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem_v2")
        var ctx: OpaquePointer?
        try d.check(d.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain")
        try d.check(d.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        var s: OpaquePointer?
        try d.check(d.cuStreamCreate(&s, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate")
        (self.ordinal, name, computeCapability, totalMemory, context, stream) =
            (ordinal, String(cString: nameBuf), (Int(major), Int(minor)), total, ctx, s)
        // sm_90 and sm_100 have architecture-specific features behind the "a" suffix.
        let arch = "sm_\(major)\(minor)" + (major >= 9 ? "a" : "")
        compiler = KernelCompiler(nvrtc: try NVRTC.shared(), architecture: arch, driverVersion: Int(driverVersion))
        registry = try KernelRegistry.builtIn()
    }

    /// Makes this context current on the calling thread (the driver's current context is per thread).
    func makeCurrent() throws { try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent") }

    // MARK: - Kernels

    /// The CUfunction `function` of the source registered for `layer`, compiling on first use.
    func function(layer: String, _ function: String) throws -> OpaquePointer {
        // Function names are unique across the kernel sources, so the name alone is the cache key
        // (no string building per launch); registering a source clears the cache.
        let key = function
        if let f = functions[key] { return f }
        let source = try registry.source(for: layer)
        let module: OpaquePointer
        if let m = modules[source.name] {
            module = m
        } else {
            let (cubin, compiled) = try compiler.cubin(for: source, headers: registry.headers)
            if compiled { stats.kernelCompilations += 1 }
            var m: OpaquePointer?
            try makeCurrent()
            try cubin.withUnsafeBytes { try driver.check(driver.cuModuleLoadData(&m, $0.baseAddress!), "cuModuleLoadData(\(source.name))") }
            module = m!
            modules[source.name] = module
        }
        var f: OpaquePointer?
        try driver.check(driver.cuModuleGetFunction(&f, module, function), "cuModuleGetFunction(\(function))")
        functions[key] = f!
        return f!
    }

    /// Implements `layer` with `source` from now on (a kernel package's override); compiled on next use.
    public func register(layer: String, source: KernelSource) {
        registry.register(layer: layer, source: source)
        functions.removeAll()
    }

    /// Launches `function` of `layer` on the stream with `arguments` (each a KernelArgument).
    func launch(_ layer: String, _ function: String, grid: (Int, Int, Int), block: Int, sharedBytes: Int = 0,
                _ arguments: [KernelArgument]) throws {
        let f = try self.function(layer: layer, function)
        if profileKernels {
            return try timed(function) { try self.launchNow(f, function, grid: grid, block: block, sharedBytes: sharedBytes, arguments) }
        }
        try launchNow(f, function, grid: grid, block: block, sharedBytes: sharedBytes, arguments)
    }

    /// Runs `body` between two events, waits, and adds the GPU time to `profile[name]`.
    func timed(_ name: String, _ body: () throws -> Void) throws {
        if profileEvents == nil {
            var a: OpaquePointer?, b: OpaquePointer?
            try driver.check(driver.cuEventCreate(&a, 0), "cuEventCreate")
            try driver.check(driver.cuEventCreate(&b, 0), "cuEventCreate")
            profileEvents = (a, b)
        }
        let (a, b) = profileEvents!
        try driver.check(driver.cuEventRecord(a, stream), "cuEventRecord")
        try body()
        try driver.check(driver.cuEventRecord(b, stream), "cuEventRecord")
        try driver.check(driver.cuEventSynchronize(b), "cuEventSynchronize")
        var ms: Float = 0
        try driver.check(driver.cuEventElapsedTime(&ms, a, b), "cuEventElapsedTime")
        let old = profile[name] ?? (0, 0)
        profile[name] = (old.launches + 1, old.milliseconds + Double(ms))
    }

    private func launchNow(_ f: OpaquePointer, _ function: String, grid: (Int, Int, Int), block: Int, sharedBytes: Int,
                           _ arguments: [KernelArgument]) throws {
        // Each argument's bytes in an 8-byte slot; kernelParams points at each slot (stack memory).
        stats.kernelLaunches += 1
        let n = arguments.count
        let status = withUnsafeTemporaryAllocation(of: UInt64.self, capacity: max(n, 1)) { slots in
            withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(n, 1)) { params in
                for i in 0..<n {
                    slots[i] = arguments[i].bits
                    params[i] = UnsafeMutableRawPointer(slots.baseAddress! + i)
                }
                return driver.cuLaunchKernel(f, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block), 1, 1,
                                             UInt32(sharedBytes), stream, params.baseAddress, nil)
            }
        }
        if status != 0 { try driver.check(status, "cuLaunchKernel(\(function))") }
    }

    // MARK: - GEMM (cuBLASLt)

    /// Whether cuBLASLt could be opened (tried once); the GEMM paths fall back to Osprey's own
    /// kernels without it.
    var hasGEMM: Bool {
        if blas != nil { return true }
        if blasFailure != nil { return false }
        do {
            let lt = try CUBLASLt.shared.get()
            var handle: OpaquePointer?
            try makeCurrent()
            try lt.check(lt.create(&handle), "cublasLtCreate")
            blas = (lt, handle, try Arena(context: self, bytes: Self.gemmWorkspaceBytes))
            return true
        } catch let e as CUDAError {
            blasFailure = e
            FileHandle.standardError.write(Data("osprey: cuBLASLt unavailable (\(e)); prefill uses Osprey's own kernels\n".utf8))
            return false
        } catch { return false }
    }

    static let gemmWorkspaceBytes = 32 << 20

    /// d[n, m] (f32, row-major) = b[n, k] (bf16, row-major) · a[m, k]ᵀ (bf16, row-major), on the stream.
    func gemm(a: CUdeviceptr, b: CUdeviceptr, d: CUdeviceptr, m: Int, n: Int, k: Int) throws {
        guard hasGEMM, let blas else { throw blasFailure ?? CUDAError.cublas(call: "cublasLtCreate", status: -1) }
        let key = GEMMKey(m: m, n: n, k: k)
        let plan: GEMMPlan
        if let p = plans[key] { plan = p } else {
            plan = try GEMMPlan(lt: blas.lt, handle: blas.handle, key: key, workspaceLimit: Self.gemmWorkspaceBytes)
            plans[key] = plan
        }
        var alpha: Float = 1, beta: Float = 0
        if profileKernels {
            profileKernels = false
            defer { profileKernels = true }
            return try timed("cublasLtMatmul") { try gemm(a: a, b: b, d: d, m: m, n: n, k: k) }
        }
        stats.kernelLaunches += 1
        try blas.lt.check(blas.lt.matmul(blas.handle, plan.desc, &alpha, a, plan.a, b, plan.b, &beta, d, plan.d, d, plan.d,
                                         plan.algo, blas.workspace.base, Self.gemmWorkspaceBytes, stream),
                          "cublasLtMatmul(m \(m) n \(n) k \(k))")
    }

    // MARK: - Memory

    /// Reserves one allocation for `bytes` of weights (before any copy).
    func reserveWeights(bytes: Int) throws {
        weights = try Arena(context: self, bytes: bytes)
        (weightBytesExpected, weightBytesCopied, progressShown) = (bytes, 0, -1)
    }

    // MARK: - Host <-> device copies through pinned memory

    static let pinnedSlotBytes = 32 << 20
    static let pinnedSlotCount = 4

    /// The next pinned host slot (round robin), after the copy that last used it has finished.
    private func takePinnedSlot() throws -> (host: UnsafeMutableRawPointer, event: OpaquePointer?) {
        if pinned.isEmpty {
            try makeCurrent()
            for _ in 0..<Self.pinnedSlotCount {
                var p: UnsafeMutableRawPointer?, e: OpaquePointer?
                try driver.check(driver.cuMemHostAlloc(&p, Self.pinnedSlotBytes, 0), "cuMemHostAlloc")
                try driver.check(driver.cuEventCreate(&e, 2 /* CU_EVENT_DISABLE_TIMING */), "cuEventCreate")
                try driver.check(driver.cuEventRecord(e, stream), "cuEventRecord")
                pinned.append((p!, e))
            }
        }
        let slot = pinned[nextPinned]
        nextPinned = (nextPinned + 1) % pinned.count
        try driver.check(driver.cuEventSynchronize(slot.event), "cuEventSynchronize")
        return slot
    }

    /// Copies `bytes` from host memory (e.g. a mapped checkpoint) to `destination` through the
    /// pinned slots: the host fills one slot while the DMA engine drains another. Returns when the
    /// source may be released (everything is in pinned memory or on the device).
    func copyToDevice(_ destination: CUdeviceptr, from source: UnsafeRawPointer, bytes: Int) throws {
        var done = 0
        while done < bytes {
            let n = min(Self.pinnedSlotBytes, bytes - done)
            let slot = try takePinnedSlot()
            slot.host.copyMemory(from: source + done, byteCount: n)
            try driver.check(driver.cuMemcpyHtoDAsync(destination + CUdeviceptr(done), slot.host, n, stream), "cuMemcpyHtoDAsync_v2")
            try driver.check(driver.cuEventRecord(slot.event, stream), "cuEventRecord")
            done += n
        }
        weightBytesCopied += bytes
        showLoadProgress()
    }

    /// A one-line progress bar on a terminal while the reserved weights are copied.
    private func showLoadProgress() {
        guard weightBytesExpected > 0, isatty(2) != 0 else { return }
        let percent = min(100, weightBytesCopied * 100 / weightBytesExpected)
        guard percent / 2 != progressShown / 2 else { return }
        progressShown = percent
        let gb = { (b: Int) in String(format: "%.1f", Double(b) / 1e9) }
        let bar = String(repeating: "#", count: percent / 4) + String(repeating: ".", count: 25 - percent / 4)
        FileHandle.standardError.write(Data("\rloading weights to \(name): [\(bar)] \(percent)% (\(gb(weightBytesCopied))/\(gb(weightBytesExpected)) GB)\(percent >= 99 ? "\n" : "")".utf8))
        if percent >= 99 { weightBytesExpected = 0 }
    }

    /// Queues a copy of a small device range into a pinned slot and returns the slot; `waitEvent`
    /// on its event makes the bytes valid.
    func startCopyToHost(_ source: CUdeviceptr, bytes: Int) throws -> (host: UnsafeMutableRawPointer, event: OpaquePointer?) {
        let slot = try takePinnedSlot()
        try driver.check(driver.cuMemcpyDtoHAsync(slot.host, source, bytes, stream), "cuMemcpyDtoHAsync_v2")
        try driver.check(driver.cuEventRecord(slot.event, stream), "cuEventRecord")
        return slot
    }

    func waitEvent(_ event: OpaquePointer?) throws {
        stats.eventWaits += 1
        try driver.check(driver.cuEventSynchronize(event), "cuEventSynchronize")
    }

    /// Device memory for a weight tensor: from the reservation, or a fresh allocation when it is full.
    func allocateWeight(bytes: Int) throws -> (pointer: CUdeviceptr, owner: AnyObject) {
        if let a = weights, let p = a.take(bytes) { return (p, a) }
        let fresh = try Arena(context: self, bytes: bytes)
        return (fresh.take(bytes)!, fresh)
    }

    /// Step-lifetime device memory (valid until the next `beginStep`, or a `compactWorkspace`).
    /// Chunks are used in order; a step that outgrows them adds one (twice the last), and the next
    /// `beginStep` merges them into one.
    func allocateWorkspace(bytes: Int) throws -> (pointer: CUdeviceptr, owner: AnyObject) {
        while currentChunk < workspace.count {
            if let p = workspace[currentChunk].take(bytes) { return (p, workspace[currentChunk]) }
            currentChunk += 1
        }
        let fresh = try Arena(context: self, bytes: max(bytes, 64 << 20, 2 * (workspace.last?.capacity ?? 0)))
        workspace.append(fresh)
        currentChunk = workspace.count - 1
        return (fresh.take(bytes)!, fresh)
    }

    /// Recycles the workspace: if the last step needed several chunks, they become one of the total size.
    func beginStep() throws {
        let used = workspace.reduce(0) { $0 + $1.used }
        workspaceHighWater = max(workspaceHighWater, used)
        if workspace.count > 1 {
            workspace = [try Arena(context: self, bytes: workspace.reduce(0) { $0 + $1.capacity })]
        }
        workspace.first?.reset()
        currentChunk = 0
        if poisonWorkspace, let w = workspace.first {
            try driver.check(driver.cuMemsetD8Async(w.base, 0xFF, w.capacity, stream), "cuMemsetD8Async")
        }
    }

    /// Copies the workspace ranges to the front of the first chunk, one after another, and makes
    /// everything after them reusable (stream order keeps queued readers of the old contents safe).
    /// Returns the new addresses, or nil when it is not worth it (little workspace in use) or not
    /// possible (a range would overlap a destination, or a range is not in the workspace).
    func compactWorkspace(keeping ranges: [(pointer: CUdeviceptr, bytes: Int)]) throws -> (pointers: [CUdeviceptr], owner: AnyObject)? {
        let used = workspace[..<min(currentChunk + 1, workspace.count)].reduce(0) { $0 + $1.used }
        let total = ranges.reduce(0) { ($0 + $1.bytes + 255) & ~255 }
        guard let first = workspace.first, used >= Self.compactionThreshold, total <= first.capacity else { return nil }
        for r in ranges {
            guard workspace.contains(where: { r.pointer >= $0.base && r.pointer + CUdeviceptr(r.bytes) <= $0.base + CUdeviceptr($0.capacity) }),
                  r.pointer >= first.base + CUdeviceptr(total) || r.pointer + CUdeviceptr(r.bytes) <= first.base else { return nil }
        }
        for w in workspace { w.reset() }
        currentChunk = 0
        var pointers: [CUdeviceptr] = []
        for r in ranges {
            let dst = first.take(r.bytes)!
            try driver.check(driver.cuMemcpyDtoDAsync(dst, r.pointer, r.bytes, stream), "cuMemcpyDtoDAsync_v2")
            pointers.append(dst)
        }
        return (pointers, first)
    }

    /// Workspace use above which a step compacts between layers (decode steps stay below it).
    static let compactionThreshold = 256 << 20

    /// A standalone allocation freed when its owner goes.
    func allocateBuffer(bytes: Int) throws -> (pointer: CUdeviceptr, owner: AnyObject) {
        let a = try Arena(context: self, bytes: bytes)
        return (a.take(bytes)!, a)
    }

    func rawAlloc(_ bytes: Int) throws -> CUdeviceptr {
        try makeCurrent()
        var p: CUdeviceptr = 0
        try driver.check(driver.cuMemAlloc(&p, max(bytes, 256)), "cuMemAlloc_v2(\(bytes) bytes)")
        stats.deviceAllocations += 1
        return p
    }

    func synchronize() throws {
        stats.hostSynchronizations += 1
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    /// Resets the counters (tests read them after a warm-up).
    public func resetStats() { stats = CUDAStats() }
}

/// One device allocation handed out front to back (256-byte aligned pieces).
final class Arena: @unchecked Sendable {  // owned by one CUDAContext, used from its thread
    let base: CUdeviceptr
    let capacity: Int
    private(set) var used = 0
    private let driver: Driver

    init(context: CUDAContext, bytes: Int) throws {
        driver = context.driver
        capacity = max(bytes, 256)
        base = try context.rawAlloc(capacity)
    }

    func take(_ bytes: Int) -> CUdeviceptr? {
        let start = (used + 255) & ~255
        guard start + bytes <= capacity else { return nil }
        used = start + bytes
        return base + CUdeviceptr(start)
    }

    func reset() { used = 0 }

    deinit { _ = driver.cuMemFree(base) }
}

/// A kernel argument: its bytes, widened to one 8-byte slot (device pointers, ints, floats).
enum KernelArgument {
    case pointer(CUdeviceptr)
    case int(Int32)
    case int64(Int64)
    case float(Float)

    var bits: UInt64 {
        switch self {
        case .pointer(let p): p
        case .int(let i): UInt64(UInt32(bitPattern: i))
        case .int64(let i): UInt64(bitPattern: i)
        case .float(let f): UInt64(f.bitPattern)
        }
    }
}
