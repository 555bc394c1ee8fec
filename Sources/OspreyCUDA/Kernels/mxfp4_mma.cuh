// Shared by the grouped MXFP4 expert GEMMs (moe_grouped.cu: cp.async stages; moe_grouped_tma.cu:
// a bulk-copy ring on sm_90): the tiling and MMA fragment layout, the e2m1 register decode, the
// cp.async and mma.sync wrappers, and the epilogue (bias + clamped SwiGLU for gate_up; bias and
// the scatter back to pick order for down). Passed to NVRTC as a header, like common.cuh.
#pragma once
#include "common.cuh"

// NOTE: the tiling. out[pair, r] = sum_k act[pair, k] * W[e, r, k] is computed transposed, as
// C[r, pair] = W · actᵀ, so that the weight rows (many) are the MMA's M and the pairs (few per
// expert: 2-64 in batched decode) its N, which comes in steps of 8. A CTA of 4 warps computes
// 128 weight rows (32 per warp: two m16 tiles) x 32 pairs of one expert (four n8 tiles, those
// past the tile's pairs skipped; 64 pairs and eight n8 tiles in the mma64 kernels); the K loop
// takes 64 inputs (two MXFP4 blocks) per stage, 4 stages of cp.async (3 with 64 pairs). Per
// stage, shared memory holds the packed bytes of the two blocks of each row (two planes of
// 16-byte rows: conflict-free 4-byte reads) and the pairs' 64 bf16 inputs (128-byte rows,
// 16-byte chunks XOR-swizzled by pair parity: conflict-free 16-byte reads); the CTA's scales
// (one contiguous run of 128 * K / 32 bytes) are copied once, with the first stage.
//
// mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32, lane = 4 * g + t (g = lane / 4, t = lane % 4),
// each .b32 register holding two bf16, the lower k in the low half (PTX ISA "Matrix Fragments
// for mma.m16n8k16 with floating point type"):
//   A (16 x 16, row): a0 = (row g,     k 2t, 2t+1)   a1 = (row g + 8, k 2t, 2t+1)
//                     a2 = (row g,     k 2t+8, 2t+9) a3 = (row g + 8, k 2t+8, 2t+9)
//   B (16 x 8, col):  b0 = (k 2t, 2t+1, col g)       b1 = (k 2t+8, 2t+9, col g)
//   C (16 x 8):       c0, c1 = (row g, col 2t, 2t+1) c2, c3 = (row g + 8, col 2t, 2t+1)
// The sum over k does not care which k sits in which slot, so long as A and B agree; both are
// filled so that each thread reads contiguous memory. Per 32-value block (two k16 MMAs) thread t
// takes the block's bytes 4t..4t+3 (its values 8t..8t+7) of rows g and g + 8, and inputs
// 8t..8t+7 of pair g (one 16-byte read). Slots (2t, 2t+1 | 2t+8, 2t+9) hold values
// (8t, 8t+1 | 8t+2, 8t+3) in the first MMA and (8t+4, 8t+5 | 8t+6, 8t+7) in the second: each
// register is two consecutive values, i.e. one packed byte of weights, one word of inputs.
// The MMAs see the e2m1 values unscaled (exact in bf16); each block's partial sums are scaled by
// 2^(scale - 127) in f32 (rows g and g + 8 have their own scales), exact for every scale byte.

#define GM_ROWS 128
#define GM_THREADS 128
#define GM_PLANE (GM_ROWS * 16)   // one block of every row: 2 KB
#define GM_STAGE_W (2 * GM_PLANE)  // 4 KB of weights per stage; then NP * 128 bytes of inputs
#define GM_GATE_UP 0
#define GM_DOWN 1

__device__ __forceinline__ unsigned int prmt_b32(unsigned int a, unsigned int b, unsigned int c) {
    unsigned int d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

// Copies 16 bytes (both addresses 16-byte aligned); only the first `bytes` are read, the rest zero-filled.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int bytes) {
    unsigned int s = (unsigned int)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes) : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// The tables of e2m1x8_to_bf16x2: low and high bytes of the bf16 of the magnitudes 0, 0.5, 1,
// 1.5, 2, 3, 4, 6 (L0 L1: 00 00 80 C0 | 00 40 80 C0; H0 H1: 00 3F 3F 3F | 40 40 40 40), and K.
struct E2M1Tables {
    unsigned int L0, L1, H0, H1, K;
};

__device__ __forceinline__ E2M1Tables e2m1_constant_tables() { return {0xC0800000u, 0xC0804000u, 0x3F3F3F00u, 0x40404040u, 0x80808080u}; }

// The same tables as per-lane register values: threadIdx.y is 0 in the kernels that use this (1-D
// blocks), which ptxas cannot know, so the sums stay in vector registers. (Constants, or values it
// can prove uniform, go to uniform registers and are copied back before every prmt: ~25 moves per
// 32-value block in moe_grouped_tma.cu's loop.)
__device__ __forceinline__ E2M1Tables e2m1_register_tables() {
    const unsigned int z = threadIdx.y;
    const E2M1Tables c = e2m1_constant_tables();
    return {c.L0 + z, c.L1 + z, c.H0 + z, c.H1 + z, c.K + z};
}

// The 8 e2m1 values of one packed word (nibble i = value i, low nibble first), unscaled, as 4
// bf16 pairs: r[j] = (value 2j in the low half, value 2j + 1 in the high half), i.e. byte j.
// Magnitudes through two prmt byte tables; signs merged into the high bytes: a prmt of 0x80 bytes
// in sign-replicate mode gives 0xff for a nibble with bit 3 set and 0x80 otherwise, so bit 6 of
// each byte is the sign (bit 7 never tells them apart), moved to bit 7 by a shift; then the bytes
// interleaved. 17 ops / 8 values, 15 of them on the ALU pipe (the shifts by 1 go to the FMA pipe).
__device__ __forceinline__ void e2m1x8_to_bf16x2(unsigned int w, unsigned int (&r)[4], const E2M1Tables& tb = e2m1_constant_tables()) {
    unsigned int m = w & 0x77777777u, mh = m >> 16, wh = w >> 16;
    unsigned int lo = prmt_b32(tb.L0, tb.L1, m), loh = prmt_b32(tb.L0, tb.L1, mh);
    unsigned int hi = prmt_b32(tb.H0, tb.H1, m) | ((prmt_b32(tb.K, tb.K, w) << 1) & 0x80808080u);
    unsigned int hih = prmt_b32(tb.H0, tb.H1, mh) | ((prmt_b32(tb.K, tb.K, wh) << 1) & 0x80808080u);
    r[0] = prmt_b32(lo, hi, 0x5140u);   // values 0, 1
    r[1] = prmt_b32(lo, hi, 0x7362u);   // values 2, 3
    r[2] = prmt_b32(loh, hih, 0x5140u); // values 4, 5
    r[3] = prmt_b32(loh, hih, 0x7362u); // values 6, 7
}

template <int NT>
__device__ __forceinline__ void zero_acc(float (&acc)[2][NT][4]) {
    #pragma unroll
    for (int mt = 0; mt < 2; mt++)
        #pragma unroll
        for (int nt = 0; nt < NT; nt++)
            #pragma unroll
            for (int i = 0; i < 4; i++) acc[mt][nt][i] = 0.f;
}

// One 32-value block's MMAs: the decoded weights wa[mt][row g, g + 8][4] (e2m1x8_to_bf16x2) against
// each 8-pair tile that holds pairs (act_at(p, k): the bf16 input k of pair p, 16-byte aligned for
// k a multiple of 8), acc[mt][nt] += sc[mt][row] * partial sums (the block's scales, rows g, g + 8).
template <int NT, class ActAt>
__device__ __forceinline__ void mma_pairs(float (&acc)[2][NT][4], const unsigned int (&wa)[2][2][4], const float (&sc)[2][2], int n, int g,
                                          int t, ActAt act_at) {
    #pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        if (nt * 8 >= n) break;  // warp-uniform
        const uint4 x = *(const uint4*)act_at(nt * 8 + g, 8 * t);
        #pragma unroll
        for (int mt = 0; mt < 2; mt++) {
            float d[4] = {0.f, 0.f, 0.f, 0.f};
            mma_bf16(d, wa[mt][0][0], wa[mt][1][0], wa[mt][0][1], wa[mt][1][1], x.x, x.y);
            mma_bf16(d, wa[mt][0][2], wa[mt][1][2], wa[mt][0][3], wa[mt][1][3], x.z, x.w);
            acc[mt][nt][0] += d[0] * sc[mt][0];
            acc[mt][nt][1] += d[1] * sc[mt][0];
            acc[mt][nt][2] += d[2] * sc[mt][1];
            acc[mt][nt][3] += d[3] * sc[mt][1];
        }
    }
}

// Epilogue. C element i of tile (mt, nt): row r0 + warp * 32 + mt * 16 + g + 8 * (i / 2), pair
// nt * 8 + 2t + i % 2. GM_GATE_UP: h [P, R / 2] bf16 (the clamped SwiGLU of the bias-added gate and
// up rows); GM_DOWN: y [P, R] f32 in pick order (order[start + p]), bias added.
template <int MODE, int NT>
__device__ __forceinline__ void grouped_store(const float (&acc)[2][NT][4], int r0, int R, int e, int start, int n, const int* order,
                                              const void* bias, int bdt, void* out, float limit, float alpha, int warp, int g, int t) {
    #pragma unroll
    for (int mt = 0; mt < 2; mt++) {
        const int rowA = r0 + warp * 32 + mt * 16 + g;
        #pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            if (nt * 8 >= n) break;  // warp-uniform, so the shuffles below see every lane
            const float* c = acc[mt][nt];
            if (MODE == GM_GATE_UP) {
                // Gate row 2j (even g) and up row 2j + 1 (odd g) sit in lanes 4 apart: each lane
                // hands the partner the pair it does not finish; even lanes finish pair 2t, odd 2t + 1.
                const int odd = g & 1;
                float o0 = __shfl_xor_sync(0xffffffffu, odd ? c[0] : c[1], 4);
                float o1 = __shfl_xor_sync(0xffffffffu, odd ? c[2] : c[3], 4);
                const int p = nt * 8 + 2 * t + odd, col = (rowA - odd) >> 1, I = R >> 1;
                float gate[2] = {odd ? o0 : c[0], odd ? o1 : c[2]};
                float up[2] = {odd ? c[1] : o0, odd ? c[3] : o1};
                unsigned short* h = (unsigned short*)out;
                #pragma unroll
                for (int u = 0; u < 2; u++) {
                    const int j = col + 4 * u;  // rows 2j, 2j + 1
                    if (p < n && j < I) {
                        float gv = gate[u] + load_w(bias, (long long)e * R + 2 * j, bdt);
                        float uv = up[u] + load_w(bias, (long long)e * R + 2 * j + 1, bdt);
                        h[(long long)(start + p) * I + j] = f32_to_bf16_rne(clamped_swiglu(gv, uv, limit, alpha));
                    }
                }
            } else {
                float* y = (float*)out;
                #pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int row = rowA + 8 * (i >> 1), p = nt * 8 + 2 * t + (i & 1);
                    if (p < n && row < R) y[(long long)order[start + p] * R + row] = c[i] + load_w(bias, (long long)e * R + row, bdt);
                }
            }
        }
    }
}
