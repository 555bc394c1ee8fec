// Device memory of one GPU: the weights arena (one reservation sized from the checkpoint before
// any copy), the per-step workspace (a bump allocator recycled at each step and compacted between
// layers), standalone buffers (caches), pinned host slots for copies in both directions (uploads
// overlap the host's memcpy with the DMA; small downloads complete behind queued work), and the
// load progress bar. Every allocation and synchronisation is counted in `stats`.
import Foundation

extension CUDAContext {
    /// Reserves one allocation for `bytes` of weights (before any copy).
    func reserveWeights(bytes: Int) throws {
        weights = try Arena(context: self, bytes: bytes)
        (weightBytesExpected, weightBytesCopied, progressShown) = (bytes, 0, -1)
        FileHandle.standardError.write(Data("osprey: reserved \(String(format: "%.2f", Double(bytes) / 1e9)) GB of \(name) memory for weights\n".utf8))
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
        try copyToDevice(destination, bytes: bytes) { $0.copyMemory(from: source + $1.lowerBound, byteCount: $1.count) }
    }

    /// Copies `bytes` to `destination` through the pinned slots, `fill(slot, range)` writing the
    /// bytes `range` of the destination into each slot (a conversion on the way costs no extra copy).
    func copyToDevice(_ destination: CUdeviceptr, bytes: Int, fill: (UnsafeMutableRawPointer, Range<Int>) throws -> Void) throws {
        var done = 0
        while done < bytes {
            let n = min(Self.pinnedSlotBytes, bytes - done)
            let slot = try takePinnedSlot()
            try fill(slot.host, done..<(done + n))
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
        // Twice the last chunk, so that a growing step needs few chunks; when that much is not free
        // (the KV pool takes most of the memory), just what this request needs.
        let least = max(bytes, 64 << 20), wanted = max(least, 2 * (workspace.last?.capacity ?? 0))
        let fresh: Arena
        do {
            fresh = try Arena(context: self, bytes: wanted)
        } catch where wanted > least {
            fresh = try Arena(context: self, bytes: least)
        }
        workspace.append(fresh)
        workspaceGeneration += 1
        currentChunk = workspace.count - 1
        return (fresh.take(bytes)!, fresh)
    }

    /// Recycles the workspace: if the last step needed several chunks, they become one of the total size.
    func beginStep() throws {
        routedInt8 = nil
        let used = workspace.reduce(0) { $0 + $1.used }
        workspaceHighWater = max(workspaceHighWater, used)
        if workspace.count > 1 {
            // The chunks are released before their sum is taken as one (not both held at once).
            let total = workspace.reduce(0) { $0 + $1.capacity }
            workspace = []
            workspace = [try Arena(context: self, bytes: total)]
            workspaceGeneration += 1
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
        routedInt8 = nil
        let used = workspaceInUse
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

    /// Bytes of workspace handed out in this step so far.
    var workspaceInUse: Int { workspace[..<min(currentChunk + 1, workspace.count)].reduce(0) { $0 + $1.used } }

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

    /// Device memory in use on this GPU: total − free as the driver reports it (every context and
    /// process on the GPU, the CUDA context itself included; what `nvidia-smi` shows).
    public func memoryInUse() throws -> Int {
        try makeCurrent()
        var free = 0, total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo_v2")
        return total - free
    }

    /// Device memory free on this GPU, as the driver reports it.
    public func memoryFree() throws -> Int {
        try makeCurrent()
        var free = 0, total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo_v2")
        return free
    }
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
