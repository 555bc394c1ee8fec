// MXFP4 experts for decode-sized batches (a few tokens per expert): streaming the packed weights
// once, decoding in registers. Two kernels per projection width (NC = 32-value blocks per lane):
//   moe_mxfp4_rows_cN  f32 inputs, exact: each e2m1 code placed in an f32 as a subnormal and
//                      rescaled by 2^126 (no table, no branch); down can apply the SwiGLU on load
//   moe_mxfp4_q8_cN    int8 inputs (quantize_q8 first, staged in shared memory), dp4a with a prmt
//                      table lookup: the default
// One warp computes 4 rows of one pair's expert, issuing all of its weight loads before using any
// (blocks as stored: lanes over blocks; tiled, see mx_block: lanes over 4 rows x 8 blocks).
// Launcher: CUDABackend+Ops.swift (layer "MoEDecode").
#include "common.cuh"

// 32 MXFP4 values of one block (16 bytes, low nibble first) dotted with x[0:32], without the block
// scale. Each e2m1 code is placed in an f32 as a subnormal (magnitude bits at 22..24, sign at 31:
// exactly value * 2^-126) and rescaled exactly by 2^126: no table, no branch.
__device__ __forceinline__ float mxfp4_dot32(uint4 b, const float* x) {
    const float two126 = __uint_as_float(0x7e800000u);
    unsigned int words[4] = {b.x, b.y, b.z, b.w};
    float s0 = 0.f, s1 = 0.f;
    #pragma unroll
    for (int q = 0; q < 4; q++) {
        unsigned int w = words[q];
        #pragma unroll
        for (int n = 0; n < 8; n++) {
            // Constant shifts: nibble n's magnitude bits to 22..24 and its sign bit to 31, merged by one LOP3.
            unsigned int mag = 4 * n <= 22 ? w << (22 - 4 * n) : w >> (4 * n - 22);
            unsigned int sgn = w << (28 - 4 * n);
            float v = __uint_as_float((mag & 0x01c00000u) | (sgn & 0x80000000u)) * two126;
            if (n & 1) s1 += v * x[8 * q + n]; else s0 += v * x[8 * q + n];
        }
    }
    return s0 + s1;
}

// MXFP4 experts, decode-sized batches: one warp computes 4 consecutive rows of pair p's expert
// (grid x over row groups, y over pairs). Each lane owns the 32-value blocks c = lane + 32u of the
// rows (u < NC, NC = ceil(cols / 1024)) and issues all 4 x NC of their 16-byte loads before using
// any, so the warp waits for memory once. With swiglu_in the input is gu [P, 2 * cols] (gate even,
// up odd) and h = clamped SwiGLU is computed while loading it.
#define MX_ROWS 4
// The packed blocks and scales this lane uses of rows r0 .. r0 + MX_ROWS - 1 of expert e (blocks
// c = lane + 32u, u < NC; `blocks` as stored or tiled, see mx_block; sb = the scales of row r0),
// all loads issued before any is used. Rows past `nr` re-read row r0 (their sums are dropped);
// blocks past `nb` are zero.
template <int NC>
__device__ __forceinline__ void preload_rows(const uint4* blocks, int tiled, int e, int r0, int R, const unsigned char* sb, int nb,
                                             int nr, int lane, uint4 (&w)[NC][MX_ROWS], unsigned char (&sc)[NC][MX_ROWS]) {
    #pragma unroll
    for (int u = 0; u < NC; u++) {
        int c = lane + 32 * u;
        #pragma unroll
        for (int i = 0; i < MX_ROWS; i++) {
            int ri = i < nr ? i : 0;
            bool ok = c < nb;
            w[u][i] = ok ? blocks[mx_block(e, r0 + ri, c, R, nb, tiled)] : make_uint4(0u, 0u, 0u, 0u);
            sc[u][i] = ok ? sb[(long long)ri * nb + c] : (unsigned char)0;
        }
    }
}

template <int NC>
__device__ __forceinline__ void mxfp4_rows(const float* in, int div, int swiglu_in, float limit, float alpha, const int* ids,
                                           const unsigned char* blocks, int tiled, const unsigned char* scales,
                                           const void* bias, int bdt, float* out, int rows, int cols) {
    int r0 = ((blockIdx.x * blockDim.x + threadIdx.x) >> 5) * MX_ROWS, lane = threadIdx.x & 31;
    if (r0 >= rows) return;
    int p = blockIdx.y, e = ids[p], nb = cols / 32;
    int nr = min(MX_ROWS, rows - r0);
    long long row0 = (long long)e * rows + r0;
    const unsigned char* sb = scales + row0 * nb;
    uint4 w[NC][MX_ROWS];
    unsigned char sc[NC][MX_ROWS];
    preload_rows<NC>((const uint4*)blocks, tiled, e, r0, rows, sb, nb, nr, lane, w, sc);
    float acc[MX_ROWS];
    #pragma unroll
    for (int i = 0; i < MX_ROWS; i++) acc[i] = 0.f;
    #pragma unroll
    for (int u = 0; u < NC; u++) {
        int c = lane + 32 * u;
        if (c >= nb) break;
        float x[32];
        if (swiglu_in) {
            const float4* g = (const float4*)(in + (long long)(p / div) * 2 * cols + c * 64);
            #pragma unroll
            for (int q = 0; q < 16; q++) {
                float4 a = g[q];
                x[2 * q] = clamped_swiglu(a.x, a.y, limit, alpha);
                x[2 * q + 1] = clamped_swiglu(a.z, a.w, limit, alpha);
            }
        } else {
            const float4* xv = (const float4*)(in + (long long)(p / div) * cols + c * 32);
            #pragma unroll
            for (int q = 0; q < 8; q++) {
                float4 a = xv[q];
                x[4 * q] = a.x; x[4 * q + 1] = a.y; x[4 * q + 2] = a.z; x[4 * q + 3] = a.w;
            }
        }
        #pragma unroll
        for (int i = 0; i < MX_ROWS; i++) acc[i] += mxfp4_dot32(w[u][i], x) * e8m0_to_f32(sc[u][i]);
    }
    #pragma unroll
    for (int i = 0; i < MX_ROWS; i++) {
        float s = warp_sum(acc[i]);
        if (lane == 0 && i < nr) out[(long long)p * rows + r0 + i] = s + load_w(bias, row0 + i, bdt);
    }
}

// Tiled blocks (mx_block, tiled == 1) are read with another lane mapping, so that each load
// instruction of the warp reads whole 64-byte runs: lane l takes row r0 + (l & 3) and blocks
// c = 8u + (l >> 2) (u < 4 NC: the same 4 NC loads per lane as above), the 4 rows of a block being
// 64 contiguous bytes there; at the end the 8 lanes of each row add up their shares. Rows past
// `nr` re-read row r0 (their sums are dropped).
template <int NC>
__device__ __forceinline__ void preload_tiled(const uint4* blocks, int e, int r0, int R, const unsigned char* sb, int nb, int nr,
                                              int lane, uint4 (&w)[4 * NC], unsigned char (&sc)[4 * NC]) {
    int ri = lane & 3, row = ri < nr ? ri : 0;
    #pragma unroll
    for (int u = 0; u < 4 * NC; u++) {
        int c = 8 * u + (lane >> 2);
        bool ok = c < nb;
        w[u] = ok ? blocks[mx_block(e, r0 + row, c, R, nb, 1)] : make_uint4(0u, 0u, 0u, 0u);
        sc[u] = ok ? sb[(long long)row * nb + c] : (unsigned char)0;
    }
}

// The sum over the 8 lanes of one row (lanes l, l ^ 4, l ^ 8, ...): lane r < 4 ends with row r's.
__device__ __forceinline__ float row_sum_tiled(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 4);
    v += __shfl_xor_sync(0xffffffffu, v, 8);
    return v + __shfl_xor_sync(0xffffffffu, v, 16);
}

// mxfp4_rows over tiled blocks.
template <int NC>
__device__ __forceinline__ void mxfp4_rows_tiled(const float* in, int div, int swiglu_in, float limit, float alpha, const int* ids,
                                                 const unsigned char* blocks, const unsigned char* scales,
                                                 const void* bias, int bdt, float* out, int rows, int cols) {
    int r0 = ((blockIdx.x * blockDim.x + threadIdx.x) >> 5) * MX_ROWS, lane = threadIdx.x & 31;
    if (r0 >= rows) return;
    int p = blockIdx.y, e = ids[p], nb = cols / 32;
    int nr = min(MX_ROWS, rows - r0);
    long long row0 = (long long)e * rows + r0;
    uint4 w[4 * NC];
    unsigned char sc[4 * NC];
    preload_tiled<NC>((const uint4*)blocks, e, r0, rows, scales + row0 * nb, nb, nr, lane, w, sc);
    float acc = 0.f;
    #pragma unroll
    for (int u = 0; u < 4 * NC; u++) {
        int c = 8 * u + (lane >> 2);
        if (c >= nb) break;
        float x[32];
        if (swiglu_in) {
            const float4* g = (const float4*)(in + (long long)(p / div) * 2 * cols + c * 64);
            #pragma unroll
            for (int q = 0; q < 16; q++) {
                float4 a = g[q];
                x[2 * q] = clamped_swiglu(a.x, a.y, limit, alpha);
                x[2 * q + 1] = clamped_swiglu(a.z, a.w, limit, alpha);
            }
        } else {
            const float4* xv = (const float4*)(in + (long long)(p / div) * cols + c * 32);
            #pragma unroll
            for (int q = 0; q < 8; q++) {
                float4 a = xv[q];
                x[4 * q] = a.x; x[4 * q + 1] = a.y; x[4 * q + 2] = a.z; x[4 * q + 3] = a.w;
            }
        }
        acc += mxfp4_dot32(w[u], x) * e8m0_to_f32(sc[u]);
    }
    float s = row_sum_tiled(acc);
    if (lane < nr) out[(long long)p * rows + r0 + lane] = s + load_w(bias, row0 + lane, bdt);
}

#define MXFP4_ROWS_ARGS const float* in, int div, int swiglu_in, float limit, float alpha, const int* ids, \
    const unsigned char* blocks, int tiled, const unsigned char* scales, const void* bias, int bdt, float* out, int rows, int cols
#define MXFP4_ROWS_PASS in, div, swiglu_in, limit, alpha, ids, blocks, tiled, scales, bias, bdt, out, rows, cols
extern "C" __global__ void moe_mxfp4_rows_c1(MXFP4_ROWS_ARGS) {
    pdl_trigger(); pdl_wait();
    if (tiled) mxfp4_rows_tiled<1>(in, div, swiglu_in, limit, alpha, ids, blocks, scales, bias, bdt, out, rows, cols);
    else mxfp4_rows<1>(MXFP4_ROWS_PASS);
}
extern "C" __global__ void moe_mxfp4_rows_c2(MXFP4_ROWS_ARGS) {
    pdl_trigger(); pdl_wait();
    if (tiled) mxfp4_rows_tiled<2>(in, div, swiglu_in, limit, alpha, ids, blocks, scales, bias, bdt, out, rows, cols);
    else mxfp4_rows<2>(MXFP4_ROWS_PASS);
}
extern "C" __global__ void moe_mxfp4_rows_c3(MXFP4_ROWS_ARGS) {
    pdl_trigger(); pdl_wait();
    if (tiled) mxfp4_rows_tiled<3>(in, div, swiglu_in, limit, alpha, ids, blocks, scales, bias, bdt, out, rows, cols);
    else mxfp4_rows<3>(MXFP4_ROWS_PASS);
}
extern "C" __global__ void moe_mxfp4_rows_c4(MXFP4_ROWS_ARGS) {
    pdl_trigger(); pdl_wait();
    if (tiled) mxfp4_rows_tiled<4>(in, div, swiglu_in, limit, alpha, ids, blocks, scales, bias, bdt, out, rows, cols);
    else mxfp4_rows<4>(MXFP4_ROWS_PASS);
}

// ---- Decode with 8-bit activations (as llama.cpp's MXFP4 path): the expert input is quantized
// once per 32 values to int8 with an f32 scale (quantize_q8, which can apply the clamped SwiGLU
// first), and each 32-value block of weights is multiplied with dp4a: the e2m1 codes become
// doubled integers {0, 1, 2, 3, 4, 6, 8, 12} through a prmt byte-table lookup. prmt reads a
// selector nibble's top bit as "replicate the picked byte's sign", and every table byte is
// positive, so looking up the codes as they are yields the magnitudes of the positive values
// (0 where negative), and looking up the codes with their sign bits flipped yields those of the
// negative ones: two dot products, subtracted. 11 integer ops per 8 weights.

__device__ __forceinline__ unsigned int prmt(unsigned int a, unsigned int b, unsigned int c) {
    unsigned int d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

// sum_i 2 * e2m1(code_i) * xq_i over one 32-value block; xq holds the block's 32 int8 inputs.
__device__ __forceinline__ int mxfp4_dot32_q8(uint4 b, const int* xq) {
    const unsigned int T0 = 0x03020100u, T1 = 0x0c080604u;
    unsigned int words[4] = {b.x, b.y, b.z, b.w};
    int pos = 0, neg = 0;
    #pragma unroll
    for (int q = 0; q < 4; q++) {
        unsigned int w = words[q], f = w ^ 0x88888888u;  // f: the negative codes made positive and vice versa
        pos = __dp4a((int)prmt(T0, T1, w), xq[2 * q], pos);            // values 0-3 (selectors: the low 16 bits)
        pos = __dp4a((int)prmt(T0, T1, w >> 16), xq[2 * q + 1], pos);  // values 4-7
        neg = __dp4a((int)prmt(T0, T1, f), xq[2 * q], neg);
        neg = __dp4a((int)prmt(T0, T1, f >> 16), xq[2 * q + 1], neg);
    }
    return pos - neg;
}

// q[r, :] = round(v / d), d[r, c] = max |v| / 127 over each 32 values of v = x[r, :] (or, with
// swiglu_in, v = clamped SwiGLU of x[r, 2j], x[r, 2j + 1]). One warp per 32 values.
extern "C" __global__ void quantize_q8(const float* x, int swiglu_in, float limit, float alpha, signed char* q, float* d,
                                       long long nblocks, int cols) {
    pdl_trigger(); pdl_wait();
    long long b = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (b >= nblocks) return;
    int per = cols / 32;
    long long row = b / per;
    int c = (int)(b % per);
    int j = c * 32 + lane;
    float v = swiglu_in ? clamped_swiglu(x[row * 2 * cols + 2 * j], x[row * 2 * cols + 2 * j + 1], limit, alpha) : x[row * cols + j];
    quantize_block_q8(v, q + row * cols + c * 32, d + b, lane);
}

// The pair's int8 inputs and their scales are copied to shared memory once per CTA, all loads in
// flight at once, after the weights are requested; the dot loop then reads shared memory instead
// of waiting for L1/L2 once per 32-value block (its loads sit behind the loop's exit test).
// Measured on the H200 (2026-11-29, 20b shape, engine decode with graphs, two runs each): batch 4
// 660 / 649 tok/s unstaged, 676 / 694 staged; batch 1 344 / 335 against 352 / 329 (a tie).
// Quantizing inside each CTA instead of in quantize_q8 (no launch) was slower: batch 1 410 -> 362,
// batch 4 766 -> 628 (the L2 round trip and reduction sit on every CTA's path; 118 registers).
template <int NC>
__device__ __forceinline__ void stage_q8(const uint4*& xrow, const float*& drow, uint4* sxq, float* sxd, int nb) {
    for (int i = threadIdx.x; i < 2 * nb; i += blockDim.x) sxq[i] = xrow[i];
    for (int i = threadIdx.x; i < nb; i += blockDim.x) sxd[i] = drow[i];
    __syncthreads();
    xrow = sxq;
    drow = sxd;
}

template <int NC>
__device__ __forceinline__ void mxfp4_rows_q8(const signed char* xq, const float* xd, int div, const int* ids,
                                              const unsigned char* blocks, int tiled, const unsigned char* scales,
                                              const void* bias, int bdt, float* out, int rows, int cols) {
    __shared__ uint4 sxq[NC * 64];
    __shared__ float sxd[NC * 32];
    int r0 = ((blockIdx.x * blockDim.x + threadIdx.x) >> 5) * MX_ROWS, lane = threadIdx.x & 31;
    int p = blockIdx.y, e = ids[p], nb = cols / 32;
    int nr = min(MX_ROWS, rows - r0);
    long long row0 = (long long)e * rows + r0;
    const unsigned char* sb = scales + row0 * nb;
    const uint4* xrow = (const uint4*)(xq + (long long)(p / div) * cols);
    const float* drow = xd + (long long)(p / div) * nb;
    uint4 w[NC][MX_ROWS];
    unsigned char sc[NC][MX_ROWS];
    if (r0 < rows) preload_rows<NC>((const uint4*)blocks, tiled, e, r0, rows, sb, nb, nr, lane, w, sc);
    stage_q8<NC>(xrow, drow, sxq, sxd, nb);
    if (r0 >= rows) return;
    float acc[MX_ROWS];
    #pragma unroll
    for (int i = 0; i < MX_ROWS; i++) acc[i] = 0.f;
    #pragma unroll
    for (int u = 0; u < NC; u++) {
        int c = lane + 32 * u;
        if (c >= nb) break;
        uint4 xa = xrow[2 * c], xb = xrow[2 * c + 1];
        int x8[8] = {(int)xa.x, (int)xa.y, (int)xa.z, (int)xa.w, (int)xb.x, (int)xb.y, (int)xb.z, (int)xb.w};
        float dx = drow[c] * 0.5f;  // the table holds doubled e2m1 values
        #pragma unroll
        for (int i = 0; i < MX_ROWS; i++) acc[i] += (float)mxfp4_dot32_q8(w[u][i], x8) * (e8m0_to_f32(sc[u][i]) * dx);
    }
    #pragma unroll
    for (int i = 0; i < MX_ROWS; i++) {
        float s = warp_sum(acc[i]);
        if (lane == 0 && i < nr) out[(long long)p * rows + r0 + i] = s + load_w(bias, row0 + i, bdt);
    }
}

// mxfp4_rows_q8 over tiled blocks (the lane mapping of mxfp4_rows_tiled).
template <int NC>
__device__ __forceinline__ void mxfp4_rows_q8_tiled(const signed char* xq, const float* xd, int div, const int* ids,
                                                    const unsigned char* blocks, const unsigned char* scales,
                                                    const void* bias, int bdt, float* out, int rows, int cols) {
    __shared__ uint4 sxq[NC * 64];
    __shared__ float sxd[NC * 32];
    int r0 = ((blockIdx.x * blockDim.x + threadIdx.x) >> 5) * MX_ROWS, lane = threadIdx.x & 31;
    int p = blockIdx.y, e = ids[p], nb = cols / 32;
    int nr = min(MX_ROWS, rows - r0);
    long long row0 = (long long)e * rows + r0;
    const uint4* xrow = (const uint4*)(xq + (long long)(p / div) * cols);
    const float* drow = xd + (long long)(p / div) * nb;
    uint4 w[4 * NC];
    unsigned char sc[4 * NC];
    if (r0 < rows) preload_tiled<NC>((const uint4*)blocks, e, r0, rows, scales + row0 * nb, nb, nr, lane, w, sc);
    stage_q8<NC>(xrow, drow, sxq, sxd, nb);
    if (r0 >= rows) return;
    float acc = 0.f;
    #pragma unroll
    for (int u = 0; u < 4 * NC; u++) {
        int c = 8 * u + (lane >> 2);
        if (c >= nb) break;
        uint4 xa = xrow[2 * c], xb = xrow[2 * c + 1];
        int x8[8] = {(int)xa.x, (int)xa.y, (int)xa.z, (int)xa.w, (int)xb.x, (int)xb.y, (int)xb.z, (int)xb.w};
        acc += (float)mxfp4_dot32_q8(w[u], x8) * (e8m0_to_f32(sc[u]) * drow[c] * 0.5f);  // doubled e2m1 table
    }
    float s = row_sum_tiled(acc);
    if (lane < nr) out[(long long)p * rows + r0 + lane] = s + load_w(bias, row0 + lane, bdt);
}

// At most 85 registers (3 CTAs of 256 threads per SM, not 2; c1-c3 spill at most 4 bytes, c4 would
// spill 160 and keeps its 96): benchmarks/kernels/decode_kernels.cu on the H200, 2026-11-29, 4
// experts at batch 1: down 11.5 -> 10.9 µs, gate_up 18.2 -> 18.0 µs.
#define MXFP4_Q8_ARGS const signed char* xq, const float* xd, int div, const int* ids, const unsigned char* blocks, int tiled, \
    const unsigned char* scales, const void* bias, int bdt, float* out, int rows, int cols
#define MXFP4_Q8_PASS xq, xd, div, ids, blocks, tiled, scales, bias, bdt, out, rows, cols
extern "C" __global__ void __launch_bounds__(256, 3) moe_mxfp4_q8_c1(MXFP4_Q8_ARGS) {
    pdl_trigger(); pdl_wait();
    if (tiled) mxfp4_rows_q8_tiled<1>(xq, xd, div, ids, blocks, scales, bias, bdt, out, rows, cols);
    else mxfp4_rows_q8<1>(MXFP4_Q8_PASS);
}
extern "C" __global__ void __launch_bounds__(256, 3) moe_mxfp4_q8_c2(MXFP4_Q8_ARGS) {
    pdl_trigger(); pdl_wait();
    if (tiled) mxfp4_rows_q8_tiled<2>(xq, xd, div, ids, blocks, scales, bias, bdt, out, rows, cols);
    else mxfp4_rows_q8<2>(MXFP4_Q8_PASS);
}
extern "C" __global__ void __launch_bounds__(256, 3) moe_mxfp4_q8_c3(MXFP4_Q8_ARGS) {
    pdl_trigger(); pdl_wait();
    if (tiled) mxfp4_rows_q8_tiled<3>(xq, xd, div, ids, blocks, scales, bias, bdt, out, rows, cols);
    else mxfp4_rows_q8<3>(MXFP4_Q8_PASS);
}
extern "C" __global__ void moe_mxfp4_q8_c4(MXFP4_Q8_ARGS) {
    pdl_trigger(); pdl_wait();
    if (tiled) mxfp4_rows_q8_tiled<4>(xq, xd, div, ids, blocks, scales, bias, bdt, out, rows, cols);
    else mxfp4_rows_q8<4>(MXFP4_Q8_PASS);
}
