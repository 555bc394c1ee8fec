// Candidate weight-streaming decode kernels (issue 6: batch-1 decode is bound by bytes read), measured
// against the production ones by decode_kernels.cu before any moves into Sources/OspreyCUDA/Kernels.
//   gemv_tma      bf16 y = x W^T for T <= 4 tokens: one CTA per SM streams a contiguous range of rows
//                 through a ring of shared-memory stages with 1-D bulk copies (cp.async.bulk, completed on
//                 mbarriers), so bytes stay in flight without registers and CTAs never run in lockstep waves.
//   gemv_regpipe  the same work split, with each warp prefetching its next row into registers
//                 while it computes the current one (no TMA).
//   moe_q8_stream the MXFP4 int8 expert matvec of decode (moe_decode.cu) as a bulk-copy ring.
// Measured on the H200 2026-11-29: none beat the production kernels at batch 1 (all ~2 TB/s on a
// ~30 MB matrix: launch, ramp-up and drain dominate); gemv_tma wins at 4 tokens.
// benchmarks/results/2026-11-29-h200-decode-launches.md has the table.
#pragma once
// The mbarrier and bulk-copy helpers of the production ring kernels (mbar_*, bulk_copy, smem_u32).
#include "../../Sources/OspreyCUDA/Kernels/moe_grouped_tma.cu"

__device__ __forceinline__ void mbar_fence_init() {
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// x [T, I] f32 into shared memory as two halves per 8-value chunk c: sxa[t][c] = x[t, 8c .. 8c+4),
// sxb[t][c] = x[t, 8c+4 .. 8c+8), so that lanes reading consecutive chunks read consecutive 16 bytes.
__device__ __forceinline__ void stage_x_split(float4* sxa, float4* sxb, const float* x, int T, int I, int tid, int nthreads) {
    int n8 = I / 8;
    for (int i = tid; i < T * n8; i += nthreads) {
        int t = i / n8, c = i - t * n8;
        const float4* src = (const float4*)(x + (long long)t * I + 8 * c);
        float4 a = src[0], b = src[1];
        sxa[i] = a;
        sxb[i] = b;
    }
}

__device__ __forceinline__ void bf16x8_dot_split(uint4 p, const float4* sxa, const float4* sxb, int n8, int c, int T, float* acc) {
    float w[8];
    bf16x8_unpack(p, w);
    #pragma unroll
    for (int j = 0; j < 4; j++) {
        if (j < T) {
            float4 a = sxa[j * n8 + c], b = sxb[j * n8 + c];
            acc[j] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y + w[6] * b.z + w[7] * b.w;
        }
    }
}

#define TMA_WARPS 8
// Shared memory: 2 * S mbarriers (128 bytes), x split (T * I * 4 bytes), S stages of 8 * RPW rows.
template <int RPW>
__global__ void __launch_bounds__(32 * (TMA_WARPS + 1), 1)
gemv_tma(const float* x, const unsigned short* W, const void* bias, int bdt, float* out, int O, int I, int T, int S) {
    extern __shared__ __align__(128) unsigned char smem[];
    constexpr int RS = TMA_WARPS * RPW;
    unsigned long long* full = (unsigned long long*)smem;
    unsigned long long* empty = full + S;
    int n8 = I / 8;
    float4* sxa = (float4*)(smem + 128);
    float4* sxb = sxa + T * n8;
    unsigned short* ring = (unsigned short*)(sxb + T * n8);
    int rb = (int)((long long)O * blockIdx.x / gridDim.x), re = (int)((long long)O * (blockIdx.x + 1) / gridDim.x);
    int nst = (re - rb + RS - 1) / RS;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int s = 0; s < S; s++) { mbar_init(&full[s], 1); mbar_init(&empty[s], TMA_WARPS); }
        mbar_fence_init();
    }
    __syncthreads();
    if (warp == TMA_WARPS) {
        if (lane == 0) {
            for (int k = 0; k < nst; k++) {
                int s = k % S;
                if (k >= S) mbar_wait(&empty[s], ((k / S) - 1) & 1);
                int r0 = rb + k * RS, nr = min(RS, re - r0);
                unsigned bytes = (unsigned)nr * I * 2;
                mbar_expect_tx(&full[s], bytes);
                bulk_copy(ring + (long long)s * RS * I, W + (long long)r0 * I, bytes, &full[s]);
            }
        }
        return;
    }
    pdl_wait();
    stage_x_split(sxa, sxb, x, T, I, threadIdx.x, 32 * TMA_WARPS);
    asm volatile("bar.sync 1, %0;" ::"r"(32 * TMA_WARPS) : "memory");
    for (int k = 0; k < nst; k++) {
        int s = k % S;
        mbar_wait(&full[s], (k / S) & 1);
        int r0 = rb + k * RS;
        float acc[RPW][4];
        #pragma unroll
        for (int q = 0; q < RPW; q++)
            #pragma unroll
            for (int j = 0; j < 4; j++) acc[q][j] = 0.f;
        const uint4* st = (const uint4*)(ring + (long long)s * RS * I);
        for (int c = lane; c < n8; c += 32) {
            #pragma unroll
            for (int q = 0; q < RPW; q++) {
                int row = warp + TMA_WARPS * q;
                if (r0 + row < re) bf16x8_dot_split(st[(long long)row * n8 + c], sxa, sxb, n8, c, T, acc[q]);
            }
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty[s]);
        #pragma unroll
        for (int q = 0; q < RPW; q++) {
            int r = r0 + warp + TMA_WARPS * q;
            #pragma unroll
            for (int j = 0; j < 4; j++) {
                float v = warp_sum(acc[q][j]);
                if (lane == 0 && j < T && r < re) out[(long long)j * O + r] = v + (bias ? load_w(bias, r, bdt) : 0.f);
            }
        }
    }
}

// Persistent, register-prefetching: warp g of G takes rows g, g + G, ...; row r + G's NL loads are
// issued before row r is computed. x staged once per CTA (split halves).
template <int NL>
__global__ void __launch_bounds__(256)
gemv_regpipe(const float* x, const unsigned short* W, const void* bias, int bdt, float* out, int O, int I, int T) {
    extern __shared__ __align__(128) unsigned char smem[];
    int n8 = I / 8;
    float4* sxa = (float4*)smem;
    float4* sxb = sxa + T * n8;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int G = gridDim.x * (blockDim.x >> 5), g = blockIdx.x * (blockDim.x >> 5) + warp;
    uint4 cur[NL], nxt[NL];
    #pragma unroll
    for (int u = 0; u < NL; u++) {
        int c = lane + 32 * u;
        cur[u] = g < O && c < n8 ? ((const uint4*)(W + (long long)g * I))[c] : make_uint4(0u, 0u, 0u, 0u);
    }
    pdl_wait();
    stage_x_split(sxa, sxb, x, T, I, threadIdx.x, blockDim.x);
    __syncthreads();
    for (int r = g; r < O; r += G) {
        int rn = r + G;
        #pragma unroll
        for (int u = 0; u < NL; u++) {
            int c = lane + 32 * u;
            nxt[u] = rn < O && c < n8 ? ((const uint4*)(W + (long long)rn * I))[c] : make_uint4(0u, 0u, 0u, 0u);
        }
        float acc[4] = {0.f, 0.f, 0.f, 0.f};
        #pragma unroll
        for (int u = 0; u < NL; u++) {
            int c = lane + 32 * u;
            if (c < n8) bf16x8_dot_split(cur[u], sxa, sxb, n8, c, T, acc);
        }
        #pragma unroll
        for (int j = 0; j < 4; j++) {
            float v = warp_sum(acc[j]);
            if (lane == 0 && j < T) out[(long long)j * O + r] = v + (bias ? load_w(bias, r, bdt) : 0.f);
        }
        #pragma unroll
        for (int u = 0; u < NL; u++) cur[u] = nxt[u];
    }
}

// ---- MXFP4 experts, decode (T = 1: P = k pairs), int8 inputs (quantize_q8), tiled blocks.
// Work: units of 32 rows of one pair's expert (all columns), P * R / 32 of them, split evenly over
// the CTAs (one per SM). A unit's weights are 2 * NB2 pieces of 512 bytes in the tiled layout
// (block pair j, half h: rows r0 .. r0 + 32 of [E, R/128, NB2, 2, 128, 16]) and its scales one run of
// 32 * nb bytes: the producer warp bulk-loads a whole unit per stage. Consumers: lane = row, warp w
// takes blocks w, w + 8, ...; the 8 partial sums of a row are added in a fixed order (deterministic).
#include "../../Sources/OspreyCUDA/Kernels/moe_decode.cu"

__global__ void __launch_bounds__(32 * (TMA_WARPS + 1), 1)
moe_q8_stream(const signed char* xq, const float* xd, int div, const int* ids, const unsigned char* blocks,
              const unsigned char* scales, const void* bias, int bdt, float* out, int P, int rows, int cols, int S) {
    extern __shared__ __align__(128) unsigned char smem[];
    int nb = cols / 32, NB2 = (nb + 1) / 2, RT = (rows + 127) / 128;
    int nin = P / div;
    unsigned long long* full = (unsigned long long*)smem;
    unsigned long long* empty = full + S;
    float* red = (float*)(smem + 128);                        // [2][8][32]
    float* sxd = red + 2 * 8 * 32;                            // [nin][nb]
    unsigned char* sxq = (unsigned char*)(sxd + ((nin * nb + 3) & ~3));  // [nin][cols], 16-aligned
    size_t wbytes = (size_t)NB2 * 2 * 512, sbytes = (size_t)32 * nb;
    size_t stage = (wbytes + sbytes + 127) & ~(size_t)127;
    unsigned char* ring = sxq + (((size_t)nin * cols + 127) & ~(size_t)127);
    int NU = rows / 32, U = P * NU;
    int ub = (int)((long long)U * blockIdx.x / gridDim.x), ue = (int)((long long)U * (blockIdx.x + 1) / gridDim.x);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int s = 0; s < S; s++) { mbar_init(&full[s], 1); mbar_init(&empty[s], TMA_WARPS); }
        mbar_fence_init();
    }
    __syncthreads();
    pdl_wait();  // ids come from the routing kernel ahead
    if (warp == TMA_WARPS) {
        for (int k = 0; k < ue - ub; k++) {
            int s = k % S, u = ub + k, p = u / NU, r0 = (u - p * NU) * 32, e = ids[p];
            if (k >= S) mbar_wait(&empty[s], ((k / S) - 1) & 1);
            unsigned char* dst = ring + (size_t)s * stage;
            if (lane == 0) mbar_expect_tx(&full[s], (unsigned)(wbytes + sbytes));
            __syncwarp();
            const unsigned char* tile = blocks + ((size_t)e * RT + (r0 >> 7)) * NB2 * 4096 + (size_t)(r0 & 127) * 16;
            for (int i = lane; i < 2 * NB2; i += 32) bulk_copy(dst + (size_t)i * 512, tile + (size_t)i * 2048, 512, &full[s]);
            if (lane == 0) bulk_copy(dst + wbytes, scales + ((size_t)e * rows + r0) * nb, (unsigned)sbytes, &full[s]);
        }
        return;
    }
    for (int i = threadIdx.x; i < nin * cols / 16; i += 32 * TMA_WARPS) ((uint4*)sxq)[i] = ((const uint4*)xq)[i];
    for (int i = threadIdx.x; i < nin * nb; i += 32 * TMA_WARPS) sxd[i] = xd[i];
    asm volatile("bar.sync 1, %0;" ::"r"(32 * TMA_WARPS) : "memory");
    for (int k = 0; k < ue - ub; k++) {
        int s = k % S, u = ub + k, p = u / NU, r0 = (u - p * NU) * 32;
        const uint4* xrow = (const uint4*)(sxq + (size_t)(p / div) * cols);
        const float* drow = sxd + (p / div) * nb;
        mbar_wait(&full[s], (k / S) & 1);
        const unsigned char* st = ring + (size_t)s * stage;
        const unsigned char* sc = st + wbytes;
        float acc = 0.f;
        for (int b = warp; b < nb; b += TMA_WARPS) {
            uint4 w = *(const uint4*)(st + (size_t)((b >> 1) * 2 + (b & 1)) * 512 + lane * 16);
            uint4 xa = xrow[2 * b], xb = xrow[2 * b + 1];
            int x8[8] = {(int)xa.x, (int)xa.y, (int)xa.z, (int)xa.w, (int)xb.x, (int)xb.y, (int)xb.z, (int)xb.w};
            acc += (float)mxfp4_dot32_q8(w, x8) * (e8m0_to_f32(sc[lane * nb + b]) * drow[b] * 0.5f);
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty[s]);
        float* rb = red + (k & 1) * 256;
        rb[warp * 32 + lane] = acc;
        asm volatile("bar.sync 1, %0;" ::"r"(32 * TMA_WARPS) : "memory");
        if (warp == 0) {
            float v = 0.f;
            #pragma unroll
            for (int w8 = 0; w8 < TMA_WARPS; w8++) v += rb[w8 * 32 + lane];
            int e = ids[p];
            out[(size_t)p * rows + r0 + lane] = v + (bias ? load_w(bias, (size_t)e * rows + r0 + lane, bdt) : 0.f);
        }
    }
}
