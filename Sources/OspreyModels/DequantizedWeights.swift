// The `dequantize` load option: a WeightSource that shows a checkpoint's MXFP4 tensors
// (`NAME_blocks` u8 [..., out, in/32, 16] with `NAME_scales` u8 [..., out, in/32]) as the dense
// bf16 tensor `NAME` [..., in, out] that transformers holds after dequantizing, and passes every
// other tensor through. A family then loads its dense path unchanged (STYLE habit 9). Values are
// expanded when a tensor is read, one tensor at a time; e2m1 x 2^k is exact in bf16.
// NOTE: a gpt-oss-20b checkpoint expands to ~38 GB of bf16, so the expansion goes straight from the
// packed bytes to bf16 bits in their transposed place (no f32 copy, no separate transpose), in
// parallel, through a 256 x 16 table of bf16 bits built with MXFP4Codec's own arithmetic
// (`bf16Bits(e2m1 * 2^(scale - 127))`): bit for bit what dequantize + transpose + rounding gives,
// scale 0 (subnormal) and 255 (inf, and NaN for a zero nibble) included.
import OspreyCore

/// A checkpoint's weights with MXFP4 tensors expanded to bf16.
public struct DequantizedWeights: WeightSource {
    /// The checkpoint as stored.
    public let base: any WeightSource
    /// The names as the model sees them (`NAME` for each packed `NAME_blocks`/`NAME_scales`).
    public let tensorNames: [String]
    /// Bytes once expanded.
    public let totalBytes: Int
    private let names: Set<String>
    private let packed: Set<String>

    /// Wraps `base`; tensors are expanded when read.
    public init(_ base: any WeightSource) throws {
        self.base = base
        let packed = Self.packedStems(of: base)
        var bytes = base.totalBytes
        for stem in packed {
            let blocks = try base.tensor(stem + "_blocks"), scales = try base.tensor(stem + "_scales")
            bytes += 4 * blocks.count - blocks.byteCount - scales.byteCount  // 2 values per byte, 2 bytes each
        }
        tensorNames = base.tensorNames.filter { name in
            !packed.contains { name == $0 + "_blocks" || name == $0 + "_scales" }
        } + packed.sorted()
        (self.packed, names, totalBytes) = (packed, Set(tensorNames), bytes)
    }

    /// The stems `NAME` of `source`'s MXFP4 pairs `NAME_blocks` + `NAME_scales`.
    static func packedStems(of source: any WeightSource) -> Set<String> {
        Set(source.tensorNames.compactMap { name -> String? in
            guard name.hasSuffix("_blocks") else { return nil }
            let stem = String(name.dropLast("_blocks".count))
            return source.contains(stem + "_scales") ? stem : nil
        })
    }

    public func contains(_ name: String) -> Bool { names.contains(name) }

    public func tensor(_ name: String) throws -> Tensor {
        guard packed.contains(name) else {
            guard names.contains(name) else { throw ModelError.missingWeight(name) }
            return try base.tensor(name)
        }
        return try Self.expandTransposed(blocks: base.tensor(name + "_blocks"), scales: base.tensor(name + "_scales"), name: name)
    }

    /// bf16 bits of e2m1 nibble n times 2^(s - 127) at [s * 16 + n], computed as MXFP4Codec does.
    static let bf16Values: [UInt16] = (0..<(256 * 16)).map { i in
        bf16Bits(MXFP4.e2m1Value(UInt8(i & 15)) * MXFP4.scaleValue(UInt8(i >> 4)))
    }

    /// Blocks u8 [..., out, nb, 16] with scales u8 [..., out, nb] -> bf16 [..., nb * 32, out].
    static func expandTransposed(blocks: Tensor, scales: Tensor, name: String) throws -> Tensor {
        let r = scales.shape.rank
        guard r >= 2, blocks.dtype.byteCount(elements: 1) == 1, scales.dtype.byteCount(elements: 1) == 1,
              blocks.shape.dims == scales.shape.dims + [MXFP4.bytesPerBlock] else {
            throw ModelError.badWeightShape(name + "_blocks", expected: "\(scales.shape.dims + [MXFP4.bytesPerBlock]) u8 beside \(name)_scales \(scales.shape) (rank >= 2)",
                                            got: "\(blocks.shape) \(blocks.dtype)")
        }
        let (rows, nb) = (scales.shape[-2], scales.shape[-1]), cols = nb * MXFP4.blockSize
        var dims = scales.shape.dims
        (dims[r - 2], dims[r - 1]) = (cols, rows)
        let out = uninitializedHostTensor(Shape(dims), dtype: .bf16)
        let b = blocks.raw.assumingMemoryBound(to: UInt8.self), s = scales.raw.assumingMemoryBound(to: UInt8.self)
        let o = out.mutableRaw.assumingMemoryBound(to: UInt16.self)
        // One unit = block column c of matrix n: output rows c*32 ..< c*32+32, all `rows` columns. Each
        // strip of 32 source rows is decoded into `tile` [32 values][32 rows], then copied out as
        // 64-byte runs (writing straight down a column would stride by `rows` and thrash the cache).
        let units = scales.count / max(rows, 1)  // matrices x block columns
        Self.bf16Values.withUnsafeBufferPointer { table in
            let table = table.baseAddress!
            concurrentChunks(units) { range in
                let tile = UnsafeMutablePointer<UInt16>.allocate(capacity: 32 * 32)
                defer { tile.deallocate() }
                for u in range {
                    let (n, c) = (u / nb, u % nb)
                    let dst = o + (n * cols + c * MXFP4.blockSize) * rows
                    for r0 in stride(from: 0, to: rows, by: 32) {
                        let w = min(32, rows - r0), first = n * rows + r0
                        for i in 0..<w {
                            var src = b + ((first + i) * nb + c) * MXFP4.bytesPerBlock
                            let t = table + Int(s[(first + i) * nb + c]) * 16
                            var v = tile + i
                            for _ in 0..<MXFP4.bytesPerBlock {
                                let byte = Int(src.pointee)
                                v[0] = t[byte & 15]
                                v[32] = t[byte >> 4]
                                v += 64
                                src += 1
                            }
                        }
                        for j in 0..<MXFP4.blockSize {
                            let (from, to) = (tile + 32 * j, dst + j * rows + r0)
                            for i in 0..<w { to[i] = from[i] }
                        }
                    }
                }
            }
        }
        return out
    }
}

extension ModelFolder {
    /// Whether the weights hold MXFP4 tensors (what `dequantized()` would expand).
    public var hasMXFP4Weights: Bool { !DequantizedWeights.packedStems(of: weights).isEmpty }

    /// This folder with its MXFP4 weights shown as bf16 (the `dequantize` option).
    public func dequantized() throws -> ModelFolder {
        var copy = self
        copy.weights = try DequantizedWeights(weights)
        return copy
    }
}
