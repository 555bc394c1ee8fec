// MXFP4 and dense experts for prefill-sized batches, around the per-expert cuBLASLt GEMMs
// (CUDABackend+GEMM.swift): gather the routed rows in expert order as bf16, expand MXFP4 weights
// to bf16 (exactly), bias + SwiGLU to bf16, and bias + scatter back to pick order.
// Launcher: CUDABackend+GEMM.swift (layer "MoEPrefill").
#include "common.cuh"

// xs[slot[i], :] = bf16(x[order[i] / div, :]) for the P routed pairs in expert order; one block
// per pair. slot maps a sorted position to its row in the padded per-expert segments.
extern "C" __global__ void moe_gather_bf16(const float* x, const int* order, const int* slot, int div,
                                           unsigned short* xs, int H) {
    pdl_trigger(); pdl_wait();
    int i = blockIdx.x;
    const float* src = x + (long long)(order[i] / div) * H;
    unsigned short* dst = xs + (long long)slot[i] * H;
    for (int c = threadIdx.x; c < H; c += blockDim.x) dst[c] = f32_to_bf16_rne(src[c]);
}

// Expands MXFP4 blocks to bf16 (exact: an e2m1 value times a power of two has at most two
// significant bits). One thread per 4 packed bytes (8 values): reads and writes are contiguous
// across a warp. `nwords` = packed bytes / 4; every 4 words share one scale.
// bf16 bits of an e2m1 code times 2^(s - 127), built directly: magnitude codes m >= 2 are
// 2^((m >> 1) - 1) * (1 + (m & 1) / 2), so their bits are (m << 6) + ((s - 1) << 7); code 1 is
// 2^(s - 128) = (s - 1) << 7; code 0 is zero. Valid for 2 <= s <= 250 (no subnormal or overflow);
// other scales take the exact float path.
__device__ __forceinline__ unsigned int e2m1_to_bf16_bits(unsigned int nibble, unsigned int base /* (s - 1) << 7 */) {
    unsigned int m = nibble & 7u;
    unsigned int mag = m >= 2u ? (m << 6) + base : (m == 1u ? base : 0u);
    return mag | ((nibble & 8u) << 12);
}

__device__ __forceinline__ unsigned int e2m1_pair_to_bf16(unsigned int byte, unsigned int scale) {
    if (scale >= 2u && scale <= 250u) {
        unsigned int base = (scale - 1u) << 7;
        return e2m1_to_bf16_bits(byte & 15u, base) | (e2m1_to_bf16_bits(byte >> 4, base) << 16);
    }
    float s = e8m0_to_f32((unsigned char)scale);
    unsigned int lo = f32_to_bf16_rne(e2m1_to_f32(byte & 15u) * s);
    unsigned int hi = f32_to_bf16_rne(e2m1_to_f32(byte >> 4) * s);
    return lo | (hi << 16);
}

// W [ne, R, nb * 32] bf16 = experts e0 .. e0 + ne - 1 expanded; `blocks` the whole tensor, as
// stored or tiled (see mx_block), `scales` the whole [E, R, nb]. One thread per 4 packed bytes,
// taken in the order they are stored (coalesced reads; tiled, the padding is skipped).
extern "C" __global__ void mxfp4_to_bf16(const unsigned char* blocks, int tiled, const unsigned char* scales, unsigned short* W,
                                         int e0, int ne, int R, int nb) {
    pdl_trigger(); pdl_wait();
    const long long RT = (R + 127) >> 7, NB2 = (nb + 1) >> 1;
    const long long perExpert = tiled ? RT * NB2 * 256 : (long long)R * nb;  // 16-byte blocks per expert as stored here
    const long long nwords = ne * perExpert * 4, first = e0 * perExpert;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < nwords; i += (long long)gridDim.x * blockDim.x) {
        long long pos = first + (i >> 2);  // the block's position in `blocks`
        long long B = pos;                 // its index as stored, (e * R + r) * nb + b
        if (tiled) {
            long long e = pos / perExpert, in = pos % perExpert;
            int rr = (int)(in & 127), h = (int)((in >> 7) & 1);
            long long pair = (in >> 8) % NB2, rt = (in >> 8) / NB2;
            int r = (int)(rt * 128 + rr), b = (int)(2 * pair + h);
            if (r >= R || b >= nb) continue;  // padding
            B = (e * R + r) * nb + b;
        }
        unsigned int word = ((const unsigned int*)blocks)[pos * 4 + (i & 3)];
        unsigned int s = scales[B];
        uint4 o;
        o.x = e2m1_pair_to_bf16(word & 0xffu, s);
        o.y = e2m1_pair_to_bf16((word >> 8) & 0xffu, s);
        o.z = e2m1_pair_to_bf16((word >> 16) & 0xffu, s);
        o.w = e2m1_pair_to_bf16(word >> 24, s);
        ((uint4*)W)[(B - (long long)e0 * R * nb) * 4 + (i & 3)] = o;
    }
}

// h[slot, c] = bf16(SwiGLU(gu[slot, 2c] + b[e, 2c], gu[slot, 2c + 1] + b[e, 2c + 1])) for each
// routed pair (e its expert); one block per pair.
extern "C" __global__ void moe_bias_swiglu_bf16(const float* gu, const int* order, const int* slot, const int* ids,
                                                const void* bias, int bdt, unsigned short* h, int I, float limit, float alpha) {
    pdl_trigger(); pdl_wait();
    int i = blockIdx.x;
    long long row = slot[i];
    long long e = ids[order[i]];
    for (int c = threadIdx.x; c < I; c += blockDim.x) {
        float g = gu[row * 2 * I + 2 * c] + load_w(bias, e * 2 * I + 2 * c, bdt);
        float u = gu[row * 2 * I + 2 * c + 1] + load_w(bias, e * 2 * I + 2 * c + 1, bdt);
        h[row * I + c] = f32_to_bf16_rne(clamped_swiglu(g, u, limit, alpha));
    }
}

// y[order[i], :] = ys[slot[i], :] + b[e, :]: back to pick order for moe_combine; one block per pair.
extern "C" __global__ void moe_bias_scatter(const float* ys, const int* order, const int* slot, const int* ids,
                                            const void* bias, int bdt, float* y, int H) {
    pdl_trigger(); pdl_wait();
    int i = blockIdx.x;
    int p = order[i];
    long long e = ids[p];
    const float* src = ys + (long long)slot[i] * H;
    for (int c = threadIdx.x; c < H; c += blockDim.x) y[(long long)p * H + c] = src[c] + load_w(bias, e * H + c, bdt);
}
