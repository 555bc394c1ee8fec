// The CUDA backend: the Backend protocol on one GPU. Weights live in the context's weights
// arena, op outputs in its per-step workspace, caches in standalone buffers. Activations are f32;
// weights may be f32, f16 or bf16 (widened in the kernels) or MXFP4 (decoded in registers).
// The kernels are .cu files beside these launchers (Kernels/); each op checks its inputs' shapes
// and devices before launching, so a bad call is a typed error, never a bad memory access.
import Foundation
import OspreyCore

/// The Backend protocol on an NVIDIA GPU.
public struct CUDABackend: Backend {
    public let context: CUDAContext

    /// Opens GPU `ordinal`; throws a clear CUDAError when there is no driver or no GPU.
    public init(ordinal: Int = 0) throws {
        context = try CUDAContext(ordinal: ordinal)
    }

    public var device: Device { .cuda(context.ordinal) }

    // MARK: - Memory

    public func reserveWeights(bytes: Int) throws { try context.reserveWeights(bytes: bytes + (16 << 20)) }

    public func beginStep() throws { try context.beginStep() }
    /// Waits until everything queued on the GPU has run (for timings).
    public func synchronize() throws { try context.synchronize() }

    public func upload(_ tensor: Tensor) throws -> Tensor {
        guard tensor.device == .cpu else { throw OspreyError.invalidTensor("upload of a \(tensor.device) tensor") }
        let (p, owner) = try context.allocateWeight(bytes: tensor.byteCount)
        try context.copyToDevice(p, from: tensor.raw, bytes: tensor.byteCount)
        return deviceTensor(p, owner, tensor.shape, tensor.dtype)
    }

    /// The MXFP4 kernels need sm_80 or newer (bf16 mma.sync, cp.async) and must compile for this
    /// device; checked once at load by compiling (and caching) two of them.
    public var mxfp4Unavailable: String? {
        let (major, minor) = context.computeCapability
        guard major >= 8 else { return "\(context.name) is sm_\(major)\(minor) and the MXFP4 kernels need sm_80 or newer" }
        do {
            for (layer, function) in [("MoEDecode", "moe_mxfp4_q8_c3"), ("MoEGrouped", "moe_mxfp4_mma_gate_up")] {
                _ = try context.function(layer: layer, function)
            }
            return nil
        } catch {
            return "the MXFP4 kernels do not load on \(context.name): \(error)"
        }
    }

    /// Whether MXFP4 expert blocks are loaded tiled (OSPREY_MXFP4_TILED=0: as stored).
    var tilesExpertBlocks: Bool { ProcessInfo.processInfo.environment["OSPREY_MXFP4_TILED"] != "0" }

    /// MXFP4 expert blocks in `MXFP4Tiling`'s layout, converted while they pass through the pinned
    /// staging slots (no extra copy; the tensor keeps its stored shape, padding sits past it).
    public func uploadExpertBlocks(_ blocks: Tensor) throws -> (blocks: Tensor, tiled: Bool) {
        guard tilesExpertBlocks, blocks.device == .cpu, blocks.dtype == .u8, blocks.shape.rank == 4, blocks.shape[3] == MXFP4.bytesPerBlock else {
            return (try upload(blocks), false)
        }
        let tiling = MXFP4Tiling(experts: blocks.shape[0], rows: blocks.shape[1], blocksPerRow: blocks.shape[2])
        let (p, owner) = try context.allocateWeight(bytes: tiling.byteCount)
        // Read-only for the copy's duration (the caller keeps `blocks` alive); the pieces write disjoint bytes.
        nonisolated(unsafe) let source = blocks.raw
        try context.copyToDevice(p, bytes: tiling.byteCount) { destination, range in
            // Whole 16-byte blocks per piece (the pinned slots are multiples of 16 bytes), in parallel.
            let first = range.lowerBound / MXFP4.bytesPerBlock, count = range.count / MXFP4.bytesPerBlock
            let pieces = min(max(count / 65_536, 1), ProcessInfo.processInfo.activeProcessorCount)
            let per = (count + pieces - 1) / pieces
            nonisolated(unsafe) let destination = destination
            DispatchQueue.concurrentPerform(iterations: pieces) { i in
                let lo = i * per, hi = min(count, lo + per)
                guard lo < hi else { return }
                tiling.fill(destination + lo * MXFP4.bytesPerBlock, positions: (first + lo)..<(first + hi), from: source)
            }
        }
        return (deviceTensor(p, owner, blocks.shape, blocks.dtype), true)
    }

    public func keepOnly(_ tensors: [Tensor]) throws -> [Tensor] {
        // Decode steps stay under the threshold: return before building anything.
        guard context.workspaceInUse >= CUDAContext.compactionThreshold, tensors.allSatisfy({ $0.device == device }),
              let moved = try context.compactWorkspace(keeping: tensors.map { (ptr($0), $0.byteCount) }) else { return tensors }
        return zip(tensors, moved.pointers).map { deviceTensor($1, moved.owner, $0.shape, $0.dtype) }
    }

    public func startDownload(_ tensor: Tensor) throws -> PendingDownload {
        try requireDevice(tensor, "startDownload")
        let (context, bytes) = (self.context, tensor.byteCount)
        guard bytes <= CUDAContext.pinnedSlotBytes else {
            let host = try download(tensor)
            return PendingDownload(shape: host.shape, dtype: host.dtype) { $0.copyMemory(from: host.raw, byteCount: bytes) }
        }
        let slot = try context.startCopyToHost(ptr(tensor), bytes: bytes)
        return PendingDownload(shape: tensor.shape, dtype: tensor.dtype) { destination in
            try context.waitEvent(slot.event)
            destination.copyMemory(from: slot.host, byteCount: bytes)
        }
    }

    public func download(_ tensor: Tensor) throws -> Tensor {
        try requireDevice(tensor, "download")
        let out = Tensor(zeros: tensor.shape, dtype: tensor.dtype)
        try context.driver.check(context.driver.cuMemcpyDtoHAsync(out.mutableRaw, ptr(tensor), tensor.byteCount, context.stream), "cuMemcpyDtoHAsync_v2")
        try context.synchronize()
        return out
    }

    public func makeBuffer(_ shape: Shape, dtype: DType) throws -> Tensor {
        let bytes = dtype.byteCount(elements: shape.count)
        let (p, owner) = try context.allocateBuffer(bytes: bytes)
        try context.driver.check(context.driver.cuMemsetD8Async(p, 0, bytes, context.stream), "cuMemsetD8Async")
        return deviceTensor(p, owner, shape, dtype)
    }

    /// A host `source` is copied through the pinned slots (per-step inputs of the batching runner).
    public func copyRows(_ source: Tensor, into destination: Tensor, at row: Int) throws {
        try requireDevice(destination, "copyRows")
        let rows = source.shape[0]
        guard source.dtype == destination.dtype, source.shape.dims.dropFirst() == destination.shape.dims.dropFirst(),
              row >= 0, row + rows <= destination.shape[0] else {
            throw OspreyError.invalidTensor("copy of \(source.shape) into \(destination.shape) at row \(row)")
        }
        guard source.byteCount > 0 else { return }
        if source.device == .cpu {
            return try context.copyToDevice(ptr(destination.rows(row..<(row + rows))), from: source.raw, bytes: source.byteCount)
        }
        try requireDevice(source, "copyRows")
        try context.driver.check(context.driver.cuMemcpyDtoDAsync(ptr(destination.rows(row..<(row + rows))), ptr(source), source.byteCount, context.stream),
                                 "cuMemcpyDtoDAsync_v2")
    }

    // MARK: - Helpers for the op launchers

    /// A workspace tensor (valid until the next step).
    func workspace(_ shape: Shape, _ dtype: DType = .f32) throws -> Tensor {
        let (p, owner) = try context.allocateWorkspace(bytes: dtype.byteCount(elements: shape.count))
        return deviceTensor(p, owner, shape, dtype)
    }

    func deviceTensor(_ p: CUdeviceptr, _ owner: AnyObject, _ shape: Shape, _ dtype: DType) -> Tensor {
        let bytes = dtype.byteCount(elements: shape.count)
        return Tensor(storage: Storage(borrowing: UnsafeMutableRawPointer(bitPattern: UInt(p))!, byteCount: bytes, device: device, owner: owner),
                      shape: shape, dtype: dtype)
    }

    func ptr(_ t: Tensor) -> CUdeviceptr { CUdeviceptr(UInt(bitPattern: t.raw)) }

    func requireDevice(_ t: Tensor, _ op: String) throws {
        guard t.device == device else { throw OspreyError.invalidTensor("\(op): tensor on \(t.device), expected \(device)") }
    }

    /// Kernel dtype code of a float weight tensor (see common.cuh).
    func code(_ t: Tensor, _ op: String) throws -> KernelArgument {
        switch t.dtype {
        case .f32: return .int(0)
        case .f16: return .int(1)
        case .bf16: return .int(2)
        default: throw OspreyError.invalidTensor("\(op): unsupported weight dtype \(t.dtype)")
        }
    }

    /// Copies a small host array into the workspace (per-step inputs such as token ids).
    func stage<T>(_ values: [T], shape: Shape, dtype: DType) throws -> Tensor {
        let t = try workspace(shape, dtype)
        try values.withUnsafeBytes { b in
            try context.driver.check(context.driver.cuMemcpyHtoDAsync(ptr(t), b.baseAddress, b.count, context.stream), "cuMemcpyHtoDAsync_v2")
        }
        return t
    }
}
