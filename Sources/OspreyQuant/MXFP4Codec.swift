// MXFP4 whole-tensor conversions: dequantize packed experts (the `dequantize: true` path, and
// test oracles) and quantize float weights into blocks + scales, by one of two scale rules.
// NOTE: the two rules really differ, and a decoder cannot tell them apart (both give valid MXFP4):
// - `.transformers` is what transformers runs when it quantizes bf16 experts
//   (`integrations/mxfp4.py` `quantize_to_mxfp4` → triton_kernels `downcast_to_mxfp_torch`,
//   `DequantScaleRoundingMode.ROUND_UP`): the input is first rounded to bf16; per block of 32,
//   scale = 2^ceil(log2(amax / 6)) (the f32 bit trick `(bits + 0x7FFFFF) & 0x7F800000`, byte 0
//   for an all-zero block), so |x / scale| ≤ 6 and nothing is clipped; each x · (1 / scale) is
//   rounded to the nearest e2m1 value with ties away from zero.
// - `.ocp` is the OCP Microscaling v1.0 formula (§6.3): shared exponent floor(log2 amax) − 2 (2 is
//   e2m1's largest exponent, 6 = 1.5 · 2^2), clamped to bytes 0...254; values rounded to nearest
//   with ties to the even mantissa, saturating at ±6 (up to 25% clipping of the block's largest
//   values, in exchange for a grid twice as fine as the round-up scale in half the blocks).
// Both keep the sign of values that round to zero (−0 is nibble 0x8). Byte k of a block holds
// element 2k in its low nibble and 2k+1 in its high nibble. Non-finite inputs are rejected.
import OspreyCore

/// How MXFP4 block scales and element rounding are chosen when quantizing.
public enum MXFP4Rule: String, Sendable, CaseIterable {
    /// transformers' own quantizer (triton_kernels `downcast_to_mxfp_torch`, ROUND_UP): bf16 input,
    /// scale 2^ceil(log2(amax/6)), ties away from zero. The default: a checkpoint quantized with it
    /// holds the same bytes transformers would write for the same bf16 weights.
    case transformers
    /// OCP Microscaling v1.0: scale 2^(floor(log2 amax) − 2), ties to even, saturate at ±6.
    case ocp
}

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

    /// Quantizes a float tensor [..., n] (n a multiple of 32) to blocks u8 [..., n/32, 16] and
    /// scales u8 [..., n/32], with `rule` (default: transformers', see `MXFP4Rule`).
    public static func quantize(_ x: Tensor, rule: MXFP4Rule = .transformers) throws -> (blocks: Tensor, scales: Tensor) {
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
        let v = UnsafeMutablePointer<Float>.allocate(capacity: MXFP4.blockSize)
        defer { v.deallocate() }
        for blk in 0..<scales.count {
            for j in 0..<MXFP4.blockSize { v[j] = x.float(at: blk * MXFP4.blockSize + j) }
            guard let scale = quantizeBlock(v, rule: rule, into: bp + blk * MXFP4.bytesPerBlock) else {
                throw OspreyError.invalidTensor("MXFP4 quantize: block \(blk) of \(x.shape) holds a NaN or infinity")
            }
            sp[blk] = scale
        }
        return (blocks, scales)
    }

    /// Quantizes the 32 floats at `values` into 16 packed bytes at `out`; returns the scale byte,
    /// or nil when a value is not finite. The `.transformers` rule rounds `values` to bf16 in place.
    public static func quantizeBlock(_ values: UnsafeMutablePointer<Float>, rule: MXFP4Rule, into out: UnsafeMutablePointer<UInt8>) -> UInt8? {
        var amax: Float = 0
        for j in 0..<MXFP4.blockSize {
            if rule == .transformers { values[j] = floatFromBF16(bf16Bits(values[j])) }
            guard values[j].isFinite else { return nil }
            amax = max(amax, abs(values[j]))
        }
        let scale: UInt8, inverse: Float
        switch rule {
        case .transformers:
            let rounded = ((amax / 6).bitPattern &+ 0x007F_FFFF) & 0x7F80_0000
            scale = UInt8(rounded >> 23)
            inverse = rounded == 0 ? 0 : 1 / Float(bitPattern: rounded)
        case .ocp:
            scale = amax > 0 ? UInt8(clamping: min(max(Int(amax.exponent) - 2 + 127, 0), 254)) : 0
            inverse = 1 / MXFP4.scaleValue(scale)
        }
        for k in 0..<MXFP4.bytesPerBlock {
            let lo = values[2 * k] * inverse, hi = values[2 * k + 1] * inverse
            out[k] = rule == .transformers
                ? nearestE2M1TiesAway(lo) | (nearestE2M1TiesAway(hi) << 4)
                : nearestE2M1(lo) | (nearestE2M1(hi) << 4)
        }
        return scale
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

    /// The e2m1 nibble nearest to `v` with ties away from zero, saturating at ±6: what triton's
    /// bit trick computes (keep the top extra mantissa bit, add one, shift).
    public static func nearestE2M1TiesAway(_ v: Float) -> UInt8 {
        let sign: UInt8 = v.sign == .minus ? 8 : 0
        let a = abs(v)
        let code: UInt8 = a < 0.25 ? 0 : a < 0.75 ? 1 : a < 1.25 ? 2 : a < 1.75 ? 3 : a < 2.5 ? 4 : a < 3.5 ? 5 : a < 5 ? 6 : 7
        return sign | code
    }
}
