// One GPU as Osprey uses it: the primary context, one stream, the loaded kernel modules, and
// device memory (CUDAContext+Memory.swift) and cuBLASLt (CUDAContext+GEMM.swift). Memory comes from three places: a weights arena reserved in one allocation
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
    /// Recorded graphs replayed (each replaces all the launches it recorded).
    public var graphLaunches = 0
    /// Waits for an earlier step's result (a token) while later work is already queued.
    public var eventWaits = 0
}

/// A GPU: context, stream, memory and kernels.
public final class CUDAContext: @unchecked Sendable {
    public let ordinal: Int
    public let name: String
    public let computeCapability: (major: Int, minor: Int)
    public let totalMemory: Int
    /// Streaming multiprocessors, and the shared memory one block may opt into (bytes).
    public let multiprocessors: Int, sharedMemoryPerBlock: Int
    /// The driver's CUDA version as cuDriverGetVersion gives it (13000 for 13.0).
    public let driverVersion: Int
    public internal(set) var stats = CUDAStats()
    let driver: Driver
    let stream: OpaquePointer?
    private let context: OpaquePointer?
    private var registry: KernelRegistry
    private let compiler: KernelCompiler
    private var modules: [String: OpaquePointer] = [:]     // source name -> CUmodule
    private var functions: [String: OpaquePointer] = [:]   // "layer/function" -> CUfunction
    private var carvedOut: Set<String> = []                // functions given the largest shared-memory carveout
    private var sharedOptIn: [String: Int] = [:]           // functions allowed more than 48 KB of dynamic shared memory
    var weights: Arena?
    var workspace: [Arena] = []
    var workspaceHighWater = 0
    /// Changes whenever the workspace's allocations are replaced (recorded graphs hold its addresses).
    var workspaceGeneration = 0
    var currentChunk = 0
    var blas: (lt: CUBLASLt, handle: OpaquePointer?, workspace: Arena)?
    var blasFailure: CUDAError?
    var plans: [GEMMKey: GEMMPlan] = [:]
    var pinned: [(host: UnsafeMutableRawPointer, event: OpaquePointer?)] = []
    var nextPinned = 0
    var weightBytesExpected = 0, weightBytesCopied = 0, progressShown = -1
    /// Decode-sized MXFP4 expert matvecs quantize their inputs to int8 per 32 values and use dp4a
    /// (as llama.cpp does; ~4x fewer instructions, relative error ~1e-3). Off: f32 inputs, exact.
    public var int8DecodeActivations = true
    /// The int8 form (q [T, H], d [T, H / 32]) of the normed rows at `normed` that the last
    /// addRMSNormRoute made for the decode experts, which take it instead of quantizing those rows
    /// again; cleared when they take it, at each step and when the workspace moves.
    var routedInt8: (normed: CUdeviceptr, count: Int, q: Tensor, d: Tensor)?
    /// Paged attention of query rows (decode) over a bf16 cache with 64-dimension heads and up to 16
    /// query heads per kv head runs on tensor cores (paged_mma_d64_bf16: Q and the probabilities in
    /// bf16, as a bf16 checkpoint's attention computes them; relative error ~1e-3). Off, or with
    /// OSPREY_PAGED_MMA=0: paged_rows, f32 math.
    public var pagedTensorCores = ProcessInfo.processInfo.environment["OSPREY_PAGED_MMA"] != "0"
    /// One-token bf16 linears whose matrix fits the SMs' shared memory (q/k/v, o_proj) copy it there
    /// before they wait for the kernel ahead (linear_bf16_resident_nN, sm_90+), in this many blocks
    /// per SM; 0 (or OSPREY_RESIDENT_LINEARS=0): the staged kernels only.
    public var residentLinearBlocksPerSM = Int(ProcessInfo.processInfo.environment["OSPREY_RESIDENT_LINEARS"] ?? "") ?? 1
    /// Built-in kernels are launched with programmatic dependent launch (Hopper+): each begins with
    /// pdl_trigger() / pdl_wait() (common.cuh), so the next one starts, and fetches its weights,
    /// while the one before it still runs. On with compute capability 9+ unless OSPREY_PDL=0.
    public var earlyLaunches = false
    /// Layers whose source a kernel package replaced: their kernels may not wait for their inputs
    /// (pdl_wait), so they are launched after the kernel ahead has finished.
    private var registeredLayers: Set<String> = []
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
        var sms: Int32 = 0, sharedOptIn: Int32 = 0
        try d.check(d.cuDeviceGetAttribute(&sms, 16, dev), "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)")
        try d.check(d.cuDeviceGetAttribute(&sharedOptIn, 97, dev), "cuDeviceGetAttribute(MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)")
        (multiprocessors, sharedMemoryPerBlock) = (Int(sms), Int(sharedOptIn))
        var total = 0
        try d.check(d.cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem_v2")
        var ctx: OpaquePointer?
        try d.check(d.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain")
        try d.check(d.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        var s: OpaquePointer?
        try d.check(d.cuStreamCreate(&s, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate")
        (self.ordinal, name, computeCapability, totalMemory, context, stream) =
            (ordinal, String(decoding: nameBuf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self), (Int(major), Int(minor)), total, ctx, s)
        self.driverVersion = Int(driverVersion)
        // sm_90 and sm_100 have architecture-specific features behind the "a" suffix.
        let arch = "sm_\(major)\(minor)" + (major >= 9 ? "a" : "")
        compiler = KernelCompiler(nvrtc: try NVRTC.shared(), architecture: arch, driverVersion: Int(driverVersion))
        registry = try KernelRegistry.builtIn()
        earlyLaunches = major >= 9 && ProcessInfo.processInfo.environment["OSPREY_PDL"] != "0"
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
        registeredLayers.insert(layer)
        functions.removeAll()
    }

    /// Launches `function` of `layer` on the stream with `arguments` (each a KernelArgument).
    /// Built-in kernels call `pdl_wait()` (common.cuh) before they touch anything an earlier kernel
    /// writes or reads, so they start while the kernel before them finishes (programmatic dependent
    /// launch, Hopper and later; see `earlyLaunches`); a package's kernels start after it.
    /// `maxSharedMemory`: ask for the SM's largest shared-memory carveout for this kernel (set once
    /// per function), so that as many of its CTAs fit an SM as their shared memory allows. More
    /// than 48 KB of `sharedBytes` is opted into per function (up to the device's per-block limit).
    func launch(_ layer: String, _ function: String, grid: (Int, Int, Int), block: Int, sharedBytes: Int = 0,
                maxSharedMemory: Bool = false, _ arguments: [KernelArgument]) throws {
        let f = try self.function(layer: layer, function)
        if maxSharedMemory && !carvedOut.contains(function) {
            // CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT (9): percent of the unified L1/shared memory.
            try driver.check(driver.cuFuncSetAttribute(f, 9, 100), "cuFuncSetAttribute(\(function), carveout)")
            carvedOut.insert(function)
        }
        if sharedBytes > 48 << 10 && sharedOptIn[function, default: 0] < sharedBytes {
            // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (8): above 48 KB a kernel must opt in.
            try driver.check(driver.cuFuncSetAttribute(f, 8, Int32(sharedBytes)), "cuFuncSetAttribute(\(function), \(sharedBytes) bytes of shared memory)")
            sharedOptIn[function] = sharedBytes
        }
        // No set lookup (string hashing) per launch unless a package registered a layer.
        let early = earlyLaunches && (registeredLayers.isEmpty || !registeredLayers.contains(layer))
        if profileKernels {
            return try timed(function) { try self.launchNow(f, function, grid: grid, block: block, sharedBytes: sharedBytes, early: early, arguments) }
        }
        try launchNow(f, function, grid: grid, block: block, sharedBytes: sharedBytes, early: early, arguments)
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
                           early: Bool, _ arguments: [KernelArgument]) throws {
        // Each argument's bytes in an 8-byte slot; kernelParams points at each slot (stack memory).
        stats.kernelLaunches += 1
        let n = arguments.count
        let status = withUnsafeTemporaryAllocation(of: UInt64.self, capacity: max(n, 1)) { slots in
            withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(n, 1)) { params in
                for i in 0..<n {
                    slots[i] = arguments[i].bits
                    params[i] = UnsafeMutableRawPointer(slots.baseAddress! + i)
                }
                guard early else {
                    return driver.cuLaunchKernel(f, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block), 1, 1,
                                                 UInt32(sharedBytes), stream, params.baseAddress, nil)
                }
                // CUlaunchConfig (56 bytes: grid and block dims, shared bytes, stream at 32, attrs at 40,
                // numAttrs at 48) with one CUlaunchAttribute (72 bytes: id, 4 bytes of padding, a 64-byte
                // value): PROGRAMMATIC_STREAM_SERIALIZATION (6) = 1.
                return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 9 + 7) { words in
                    let raw = UnsafeMutableRawPointer(words.baseAddress!)
                    raw.initializeMemory(as: UInt8.self, repeating: 0, count: 16 * 8)
                    let attribute = raw + 56
                    attribute.storeBytes(of: UInt32(6), toByteOffset: 0, as: UInt32.self)
                    attribute.storeBytes(of: Int32(1), toByteOffset: 8, as: Int32.self)
                    for (i, v) in [grid.0, grid.1, grid.2, block, 1, 1, sharedBytes].enumerated() {
                        raw.storeBytes(of: UInt32(v), toByteOffset: 4 * i, as: UInt32.self)
                    }
                    raw.storeBytes(of: UInt(bitPattern: stream.map { Int(bitPattern: UnsafeRawPointer($0)) } ?? 0), toByteOffset: 32, as: UInt.self)
                    raw.storeBytes(of: UInt(bitPattern: Int(bitPattern: attribute)), toByteOffset: 40, as: UInt.self)
                    raw.storeBytes(of: UInt32(1), toByteOffset: 48, as: UInt32.self)
                    return driver.cuLaunchKernelEx(UnsafeRawPointer(raw), f, params.baseAddress, nil)
                }
            }
        }
        if status != 0 { try driver.check(status, "cuLaunchKernel(\(function))") }
    }

    /// Resets the counters (tests read them after a warm-up).
    public func resetStats() { stats = CUDAStats() }
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
