// SafetensorsFile: one .safetensors file, memory-mapped read-only and validated at open (the rules
// are in SafetensorsHeader.swift). Tensors are zero-copy views into the mapping: each keeps the
// file object (and so the mapping) alive through its Storage's owner, so tensors may outlive the
// SafetensorsFile value the caller holds. Limits: the mapping is PROT_READ, so a mapped tensor's
// bytes must never be written (copy first); a file truncated by another process while mapped
// makes the kernel raise SIGBUS on access, which no reader of a mapping can prevent.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import OspreyCore

/// A memory-mapped, validated safetensors file.
///
/// `@unchecked Sendable`: the only mutable-looking state is the raw pointer to the mapping, which
/// is read-only (PROT_READ), set once in `init` and unmapped only in `deinit`, when no tensor can
/// still reference it (every tensor view holds this object as its storage owner).
public final class SafetensorsFile: @unchecked Sendable {
    /// Where the file was opened from.
    public let url: URL
    private let base: UnsafeMutableRawPointer
    private let mappedBytes: Int
    private let header: SafetensorsHeader

    /// Maps the file at `url` read-only and validates its header and byte layout strictly.
    /// Throws `SafetensorsError` naming the file (and tensor) at fault.
    public init(url: URL) throws {
        let path = url.path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SafetensorsError.cannotOpen(file: path, reason: systemError()) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SafetensorsError.cannotOpen(file: path, reason: systemError()) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafetensorsError.cannotOpen(file: path, reason: "not a regular file")
        }
        let size = Int(st.st_size)
        guard size >= 8 else { throw SafetensorsError.fileTooSmall(file: path, size: size) }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SafetensorsError.cannotOpen(file: path, reason: "mmap: \(systemError())")
        }
        do {
            header = try SafetensorsHeader(file: path, bytes: UnsafeRawBufferPointer(start: p, count: size))
        } catch {
            munmap(p, size)
            throw error
        }
        self.url = url
        base = p
        mappedBytes = size
    }

    deinit { munmap(base, mappedBytes) }

    /// Tensor names in the order the header lists them.
    public var tensorNames: [String] { header.entries.map(\.name) }

    /// The header's `__metadata__` (empty when absent or null).
    public var metadata: [String: String] { header.metadata }

    /// The size of the file in bytes.
    public var fileSize: Int { mappedBytes }

    /// The header entry of tensor `name`, or nil when the file has no such tensor.
    public func info(_ name: String) -> SafetensorsTensorInfo? {
        header.index[name].map { header.entries[$0].info }
    }

    /// Tensor `name` as a host tensor with Osprey's dtype. The view is zero-copy into the mapping
    /// when its bytes are aligned for the dtype (always, for files written by safetensors or
    /// Osprey); a misaligned tensor from another writer is copied into aligned memory instead.
    /// The view is read-only: the mapping is PROT_READ.
    public func tensor(_ name: String) throws -> Tensor {
        guard let info = info(name) else {
            throw SafetensorsError.tensorNotFound(tensor: name, location: url.path)
        }
        guard let dtype = info.dtype.coreDType else {
            throw SafetensorsError.unsupportedDType(file: url.path, tensor: name, dtype: info.dtype)
        }
        let p = base + info.fileRange.lowerBound
        let storage: Storage
        if Int(bitPattern: p) % Self.alignment(of: dtype) == 0 {
            storage = Storage(borrowing: p, byteCount: info.byteCount, device: .cpu, owner: self)
        } else {
            storage = Storage(zeroedBytes: info.byteCount)
            storage.base.copyMemory(from: p, byteCount: info.byteCount)
        }
        return Tensor(storage: storage, shape: Shape(info.shape), dtype: dtype)
    }

    /// The raw bytes of tensor `name` (any dtype, including those Osprey has no `DType` for),
    /// valid while this file object is alive.
    public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let info = info(name) else {
            throw SafetensorsError.tensorNotFound(tensor: name, location: url.path)
        }
        return try body(UnsafeRawBufferPointer(start: base + info.fileRange.lowerBound, count: info.byteCount))
    }

    private static func alignment(of dtype: DType) -> Int {
        switch dtype {
        case .f32, .i32: 4
        case .f16, .bf16: 2
        case .i64: 8
        case .u8, .e8m0, .e2m1: 1
        }
    }
}

/// The C library's message for the current `errno`.
func systemError() -> String { String(cString: strerror(errno)) }
