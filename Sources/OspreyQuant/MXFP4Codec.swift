// MXFP4 whole-tensor conversions: dequantize packed experts (the `dequantize: true` path, and
// test oracles) and quantize float weights into blocks + scales.
// Quantization rule (OCP Microscaling v1.0, §6.3, which transformers' and triton_kernels'
// quantizers follow): per block of 32, shared exponent e = floor(log2(max|x|)) - 2, where 2 is
// the largest exponent of e2m1 (6 = 1.5 * 2^2); scale byte = e + 127 clamped to 0...254; each
// value x / 2^e is rounded to the nearest e2m1 value (ties to even mantissa), saturating at ±6.
// An all-zero block gets scale 0 (2^-127) and zero nibbles.
import OspreyCore

/// MXFP4 packing and unpacking of whole tensors.
public enum MXFP4Codec {
    /// Expands `blocks` u8 [..., nb, 16] with `scales` u8 [..., nb] to f32 [..., nb * 32].
    public static func dequantize(blocks: Tensor, scales: Tensor) throws -> Tensor {
        let nb = scales.shape[-1]
        guard blocks.shape.rank == scales.shape.rank + 1, blocks.shape[-1] == MXFP4.bytesPerBlock,
              Array(blocks.shape.dims.dropLast()) == scales.shape.dims else {
            throw OspreyError.invalidTensor("MXFP4 blocks \(blocks.shape) do not match scales \(scales.shape)")
        }
        var dims = scales.shape.dims
        dims[dims.count - 1] = nb * MXFP4.blockSize
        let out = Tensor(zeros: Shape(dims), dtype: .f32)
        let b = blocks.raw.assumingMemoryBound(to: UInt8.self), s = scales.raw.assumingMemoryBound(to: UInt8.self)
        let o = out.mutableRaw.assumingMemoryBound(to: Float.self)
        for i in 0..<scales.count {
            MXFP4.decodeBlock(b + i * MXFP4.bytesPerBlock, scale: s[i], into: o + i * MXFP4.blockSize)
        }
        return out
    }

    /// Quantizes a float tensor [..., n] (n a multiple of 32) to blocks u8 [..., n/32, 16] and scales u8 [..., n/32].
    public static func quantize(_ x: Tensor) throws -> (blocks: Tensor, scales: Tensor) {
        let n = x.shape[-1]
        guard x.dtype.isFloatingPoint, n % MXFP4.blockSize == 0 else {
            throw OspreyError.invalidTensor("MXFP4 quantize needs a float tensor whose last dimension is a multiple of 32, got \(x.dtype) \(x.shape)")
        }
        let nb = n / MXFP4.blockSize
        var dims = x.shape.dims
        dims[dims.count - 1] = nb
        let scales = Tensor(zeros: Shape(dims), dtype: .u8)
        let blocks = Tensor(zeros: Shape(dims + [MXFP4.bytesPerBlock]), dtype: .u8)
        let bp = blocks.mutableRaw.assumingMemoryBound(to: UInt8.self), sp = scales.mutableRaw.assumingMemoryBound(to: UInt8.self)
        var values = [Float](repeating: 0, count: MXFP4.blockSize)
        for blk in 0..<scales.count {
            for j in 0..<MXFP4.blockSize { values[j] = x.float(at: blk * MXFP4.blockSize + j) }
            let amax = values.reduce(Float(0)) { max($0, abs($1)) }
            let scale = amax > 0 && amax.isFinite ? UInt8(clamping: min(max(Int(amax.exponent) - 2 + 127, 0), 254)) : 0
            sp[blk] = scale
            let inv = 1 / MXFP4.scaleValue(scale)
            for k in 0..<MXFP4.bytesPerBlock {
                let lo = nearestE2M1(values[2 * k] * inv), hi = nearestE2M1(values[2 * k + 1] * inv)
                bp[blk * MXFP4.bytesPerBlock + k] = lo | (hi << 4)
            }
        }
        return (blocks, scales)
    }

    /// The e2m1 nibble nearest to `v` (ties to the even mantissa; saturates at ±6; NaN -> +0).
    public static func nearestE2M1(_ v: Float) -> UInt8 {
        let sign: UInt8 = v.sign == .minus ? 8 : 0
        let a = abs(v)
        if a.isNaN { return 0 }
        // Magnitudes by code 0...7: 0, 0.5, 1, 1.5, 2, 3, 4, 6; midpoints decide, even codes win ties.
        let bounds: [(Float, UInt8)] = [(0.25, 0), (0.75, 1), (1.25, 2), (1.75, 3), (2.5, 4), (3.5, 5), (5, 6)]
        for (i, (mid, code)) in bounds.enumerated() {
            if a < mid { return sign | code }
            if a == mid { return sign | (code % 2 == 0 ? code : UInt8(i + 1)) }
        }
        return sign | 7
    }
}
