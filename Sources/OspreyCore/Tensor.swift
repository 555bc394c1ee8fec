// Tensor and Storage. A `Storage` owns (or keeps alive) one region of bytes on one device: a heap
// allocation, a slice of a memory-mapped file, or later a sub-allocation of a device arena. A
// `Tensor` is a value: storage + byte offset + shape + dtype, always contiguous row-major.
// `Storage` is the one class here; it is `@unchecked Sendable` because it is a handle to raw
// memory whose lifetime it manages: tensors shared across threads are read-only by convention, and
// writers (backends) own their outputs until they return them.

/// A region of bytes on one device, freed (or its owner released) when the last reference goes.
public final class Storage: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let byteCount: Int
    public let device: Device
    private let owner: AnyObject?
    private let ownsAllocation: Bool

    /// Allocates `byteCount` zeroed bytes of host memory, 64-byte aligned.
    public init(zeroedBytes byteCount: Int) {
        let n = max(byteCount, 1)
        base = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: n)
        self.byteCount = byteCount
        device = .cpu
        owner = nil
        ownsAllocation = true
    }

    /// Wraps memory that `owner` keeps alive (a memory-mapped file, a device arena).
    public init(borrowing base: UnsafeMutableRawPointer, byteCount: Int, device: Device, owner: AnyObject) {
        self.base = base
        self.byteCount = byteCount
        self.device = device
        self.owner = owner
        ownsAllocation = false
    }

    deinit { if ownsAllocation { base.deallocate() } }
}

/// A contiguous, row-major tensor: a view of `shape.count` elements of `dtype` in a `Storage`.
public struct Tensor: Sendable {
    public let storage: Storage
    public let byteOffset: Int
    public let shape: Shape
    public let dtype: DType

    public init(storage: Storage, byteOffset: Int = 0, shape: Shape, dtype: DType) {
        precondition(byteOffset + dtype.byteCount(elements: shape.count) <= storage.byteCount,
                     "tensor view outside its storage")
        self.storage = storage
        self.byteOffset = byteOffset
        self.shape = shape
        self.dtype = dtype
    }

    /// A zero-filled host tensor.
    public init(zeros shape: Shape, dtype: DType) {
        self.init(storage: Storage(zeroedBytes: dtype.byteCount(elements: shape.count)), shape: shape, dtype: dtype)
    }

    /// A host f32 tensor holding `values`.
    public init(_ values: [Float], shape: Shape) {
        precondition(values.count == shape.count, "\(values.count) values for shape \(shape)")
        self.init(zeros: shape, dtype: .f32)
        values.withUnsafeBytes { mutableRaw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    public var device: Device { storage.device }
    public var count: Int { shape.count }
    public var byteCount: Int { dtype.byteCount(elements: shape.count) }
    public var raw: UnsafeRawPointer { UnsafeRawPointer(storage.base + byteOffset) }
    public var mutableRaw: UnsafeMutableRawPointer { storage.base + byteOffset }

    /// The same bytes seen with another shape of equal element count.
    public func reshaped(_ newShape: Shape) -> Tensor {
        precondition(newShape.count == shape.count, "reshape \(shape) -> \(newShape)")
        return Tensor(storage: storage, byteOffset: byteOffset, shape: newShape, dtype: dtype)
    }

    /// Rows `range` of the first dimension, without copying.
    public func rows(_ range: Range<Int>) -> Tensor {
        let rowElements = shape.count / max(shape[0], 1)
        var dims = shape.dims
        dims[0] = range.count
        return Tensor(storage: storage, byteOffset: byteOffset + dtype.byteCount(elements: range.lowerBound * rowElements),
                      shape: Shape(dims), dtype: dtype)
    }

    /// Element `i` widened to `Float` (host tensors of f32, f16, bf16, i32, i64, u8).
    public func float(at i: Int) -> Float {
        precondition(device == .cpu, "reading elements of a \(device) tensor on the host; download it first")
        return switch dtype {
        case .f32: raw.load(fromByteOffset: i * 4, as: Float.self)
        case .bf16: floatFromBF16(raw.load(fromByteOffset: i * 2, as: UInt16.self))
        case .f16: floatFromF16(raw.load(fromByteOffset: i * 2, as: UInt16.self))
        case .i32: Float(raw.load(fromByteOffset: i * 4, as: Int32.self))
        case .i64: Float(raw.load(fromByteOffset: i * 8, as: Int64.self))
        case .u8, .e8m0: Float(raw.load(fromByteOffset: i, as: UInt8.self))
        case .e2m1: MXFP4.e2m1Value(raw.load(fromByteOffset: i / 2, as: UInt8.self) >> ((i & 1) * 4) & 0xF)
        }
    }

    /// All elements widened to `Float` (host tensors; for tests and small tensors).
    public func floats() -> [Float] { (0..<count).map { float(at: $0) } }

    /// A host f32 copy of this tensor (f32/f16/bf16/integer sources).
    public func toF32() -> Tensor {
        if dtype == .f32 { return self }
        let out = Tensor(zeros: shape, dtype: .f32)
        let p = out.mutableRaw.assumingMemoryBound(to: Float.self)
        for i in 0..<count { p[i] = float(at: i) }
        return out
    }
}
