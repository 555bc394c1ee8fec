// The `dequantize` load option: a WeightSource that shows a checkpoint's MXFP4 tensors
// (`NAME_blocks` u8 [..., out, in/32, 16] with `NAME_scales` u8 [..., out, in/32]) as the dense
// bf16 tensor `NAME` [..., in, out] that transformers holds after dequantizing, and passes every
// other tensor through. A family then loads its dense path unchanged (STYLE habit 9). Values are
// expanded when a tensor is read, one tensor at a time; e2m1 x 2^k is exact in bf16.
import OspreyCore
import OspreyQuant

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
        let packed = Set(base.tensorNames.compactMap { name -> String? in
            guard name.hasSuffix("_blocks") else { return nil }
            let stem = String(name.dropLast("_blocks".count))
            return base.contains(stem + "_scales") ? stem : nil
        })
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

    public func contains(_ name: String) -> Bool { names.contains(name) }

    public func tensor(_ name: String) throws -> Tensor {
        guard packed.contains(name) else {
            guard names.contains(name) else { throw ModelError.missingWeight(name) }
            return try base.tensor(name)
        }
        let dense = try transposeLastTwo(MXFP4Codec.dequantize(blocks: base.tensor(name + "_blocks"), scales: base.tensor(name + "_scales")))
        let out = Tensor(zeros: dense.shape, dtype: .bf16)
        let (src, dst) = (dense.raw.assumingMemoryBound(to: Float.self), out.mutableRaw.assumingMemoryBound(to: UInt16.self))
        for i in 0..<dense.count { dst[i] = bf16Bits(src[i]) }
        return out
    }
}

extension ModelFolder {
    /// This folder with its MXFP4 weights shown as bf16 (the `dequantize` option).
    public func dequantized() throws -> ModelFolder {
        var copy = self
        copy.weights = try DequantizedWeights(weights)
        return copy
    }
}
