// The grouped MXFP4 expert GEMMs of moe_grouped.cu on sm_90 (issues 6 and 8): the same tiles
// (moe_grouped_route), the same per-block MMAs and epilogue (mxfp4_mma.cuh), with the tiled weights
// streamed by a producer warp through a ring of shared-memory stages filled by bulk copies
// (cp.async.bulk, completed on mbarriers) so that the four compute warps issue no copies and meet
// no CTA-wide barrier per stage, and a compute loop cut to the decode and the MMAs (tables kept in
// registers, each stage's 4 scale bytes per row read at once, no row bounds).
//   moe_mxfp4_tma{16,32,64}_gate_up  h = bf16(SwiGLU(xs . W_gate_up^T + b)), rows in expert order
//   moe_mxfp4_tma{16,32,64}_down     y[order[i]] = h[i] . W_down^T + b, back in pick order
// (16 / 32 / 64 pairs per tile). Tiled blocks only (MXFP4Tiling); launcher: CUDABackend+Grouped.swift.
// Why: the cp.async kernels were bound by the ALU pipe (ncu on an H200: 72% busy, 121 M warp
// instructions for gate_up at 64 tokens, ~190 per 32-value block per thread, of which ~25 rebuilt
// the decode tables and ~30 converted scales); these execute 74 M. Measured with
// benchmarks/kernels/grouped_kernels.cu on gpt-oss-20b's experts (E 32, top-4, H = I = 2,880),
// gate_up + down per layer: 288 -> 205 us at 16 tokens, 311 -> 243 at 64, 349 -> 296 at 128,
// 492 -> 429 at 256, 764 -> 728 at 512 (2026-11-29, benchmarks/results/2026-11-29-h200-grouped-kernels.md).
#include "mxfp4_mma.cuh"

#define GT_KS 128                 // inputs per stage: 4 blocks, two contiguous 4 KB runs of the tiled layout
#define GT_ROW (2 * GT_KS + 64)   // bytes per pair in a stage: 256 of inputs + 64 (pairs 16 banks apart)

// Row stride (bytes) of the CTA's scales in shared memory: at least nb, 4-byte reads of the 4
// blocks of a stage, and an odd number of words, so the reads of rows g = 0..7 hit 8 banks.
__device__ __forceinline__ int tma_scale_stride(int nb) { return ((nb + 3) & ~7) + 4; }

// One 32-value block of the warp's rows (packed bytes in `plane`, 16 per row) against the tile's
// pairs: acc[mt][nt] += sc[mt][u] * (W_block . act_block), sc for rows g, g + 8 of m tile mt.
// act_at(p, k): the bf16 input k (0..31, 16-byte aligned for k a multiple of 8) of pair p.
template <int NT, class ActAt>
__device__ __forceinline__ void tma_block(float (&acc)[2][NT][4], const unsigned char* plane, const float (&sc)[2][2], int n, int warp,
                                          int g, int t, const E2M1Tables& tb, ActAt act_at) {
    unsigned int wa[2][2][4];  // [m tile][row g, g + 8][byte j of the word]
    #pragma unroll
    for (int mt = 0; mt < 2; mt++) {
        #pragma unroll
        for (int u = 0; u < 2; u++) {
            const int row = warp * 32 + mt * 16 + g + 8 * u;
            e2m1x8_to_bf16x2(*(const unsigned int*)(plane + row * 16 + 4 * t), wa[mt][u], tb);
        }
    }
    mma_pairs<NT>(acc, wa, sc, n, g, t, act_at);
}

// One CTA (160 threads): rows blockIdx.y * 128 .. + 128 of the expert of tile blockIdx.x for its
// pairs; arguments as moe_grouped.cu's kernels (blocks tiled). Warp 4 is the producer: stage j
// (inputs 128 j .. + 128) is one bulk copy of the two 4 KB runs and one of each pair's 256 input
// bytes (GT_ROW apart), counted on full[j % S]; it reuses a slot once the 4 compute warps have
// released it on empty[j % S]. Pairs past n in the last 8-pair MMA tile read stale shared memory:
// they only reach their own output columns, which are never stored. Rows past R: zero blocks in
// memory and scale bytes written as 0 (2^-127), never stored.
// Shared memory: 128 bytes of mbarriers, S stages of 8 KB + NP * GT_ROW, then 128 rows of scales.
template <int MODE, int NP, int S>
__device__ __forceinline__ void grouped_tma(const unsigned short* act, const int4* tiles, const int* order, const unsigned char* blocks,
                                            const unsigned char* scales, const void* bias, int bdt, void* out, int R, int K,
                                            float limit, float alpha) {
#if SM90_ASYNC
    extern __shared__ __align__(16) unsigned char smem[];
    constexpr int STAGE_W = 2 * GM_STAGE_W, STAGE = STAGE_W + NP * GT_ROW, NT = NP / 8;
    const int4 tile = tiles[blockIdx.x];
    const int e = tile.x, start = tile.y, n = tile.z;
    if (e < 0) return;  // past the last tile: the grid covers the worst case
    const int r0 = blockIdx.y * GM_ROWS, rowsLeft = R - r0, nb = K / 32, nb2 = (nb + 1) >> 1, steps = (nb + 3) / 4;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned long long* full = (unsigned long long*)smem;
    unsigned long long* empty = full + S;
    unsigned char* ring = smem + 128;
    unsigned char* sScale = ring + S * STAGE;
    if (threadIdx.x == 0) {
        for (int s = 0; s < S; s++) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], 4);
        }
        mbar_init_fence();
    }
    __syncthreads();

    if (warp == 4) {
        const unsigned char* runs = blocks + ((long long)e * ((R + 127) >> 7) + blockIdx.y) * nb2 * GM_STAGE_W;
        for (int step = 0; step < steps; step++) {
            const int s = step % S;
            if (step >= S) mbar_wait(&empty[s], ((step / S) - 1) & 1);
            unsigned char* st = ring + s * STAGE;
            const int nr = min(2, nb2 - 2 * step), k0 = step * GT_KS, ab = 2 * min(GT_KS, K - k0);
            if (lane == 0) {
                mbar_expect_tx(&full[s], nr * GM_STAGE_W + n * ab);
                bulk_copy(st, runs + (long long)step * STAGE_W, nr * GM_STAGE_W, &full[s]);
            }
            __syncwarp();
            for (int p = lane; p < n; p += 32) bulk_copy(st + STAGE_W + p * GT_ROW, act + (long long)(start + p) * K + k0, ab, &full[s]);
        }
        return;
    }

    // Thread r copies row r's scale bytes (rows past R: 0) to sScale[r * SS ..].
    const int SS = tma_scale_stride(nb);
    {
        const int r = threadIdx.x;
        const unsigned char* src = scales + ((long long)e * R + r0 + r) * nb;  // read only for rows < R
        unsigned char* dst = sScale + r * SS;
        if (r < rowsLeft) {
            #pragma unroll 8
            for (int b = 0; b < nb; b++) dst[b] = src[b];
        } else {
            for (int b = 0; b < nb; b++) dst[b] = 0;
        }
    }
    asm volatile("bar.sync 1, 128;" ::: "memory");

    const int g = lane >> 2, t = lane & 3;
    const E2M1Tables tb = e2m1_register_tables();
    float acc[2][NT][4];
    zero_acc<NT>(acc);
    for (int step = 0; step < steps; step++) {
        const int s = step % S;
        unsigned int sw[2][2];  // scale bytes of blocks 4 step .. + 3 of rows g, g + 8 of each m tile
        #pragma unroll
        for (int mt = 0; mt < 2; mt++)
            #pragma unroll
            for (int u = 0; u < 2; u++) sw[mt][u] = *(const unsigned int*)(sScale + (warp * 32 + mt * 16 + g + 8 * u) * SS + 4 * step);
        mbar_wait(&full[s], (step / S) & 1);
        const unsigned char* sW = ring + s * STAGE;
        const unsigned char* sA = sW + STAGE_W;
        #pragma unroll
        for (int h = 0; h < 4; h++) {
            if (4 * step + h >= nb) break;
            float sc[2][2];
            #pragma unroll
            for (int mt = 0; mt < 2; mt++)
                #pragma unroll
                for (int u = 0; u < 2; u++) {
                    // 2^(s - 127) of byte h, exactly (s = 0: the subnormal 2^-127).
                    const unsigned int bits = (h == 3 ? sw[mt][u] >> 1 : sw[mt][u] << (23 - 8 * h)) & 0x7f800000u;
                    sc[mt][u] = __uint_as_float(max(bits, 0x00400000u));
                }
            tma_block<NT>(acc, sW + (h >> 1) * GM_STAGE_W + (h & 1) * GM_PLANE, sc, n, warp, g, t, tb,
                          [&](int p, int k) { return sA + p * GT_ROW + 64 * h + 2 * k; });
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty[s]);
    }
    grouped_store<MODE, NT>(acc, r0, R, e, start, n, order, bias, bdt, out, limit, alpha, warp, g, t);
#endif
}

#define TMA_ARGS const unsigned short* act, const int4* tiles, const int* order, const unsigned char* blocks, \
    const unsigned char* scales, const void* bias, int bdt, void* out, int R, int K, float limit, float alpha
#define TMA_PASS act, tiles, order, blocks, scales, bias, bdt, out, R, K, limit, alpha
// Tiles of 16 pairs, 3 stages (51 KB of shared memory at K = 2,880), 32 pairs, 3 stages (66 KB),
// and 64 pairs, 2 stages (68 KB): the stage counts measured best for each. 128-pair tiles (2 stages,
// 110 KB, 185 registers) ran at half the speed of 64-pair ones from 256 to 2,048 tokens (2026-11-29).
extern "C" __global__ void __launch_bounds__(160) moe_mxfp4_tma16_gate_up(TMA_ARGS) { pdl_trigger(); pdl_wait(); grouped_tma<GM_GATE_UP, 16, 3>(TMA_PASS); }
extern "C" __global__ void __launch_bounds__(160) moe_mxfp4_tma16_down(TMA_ARGS) { pdl_trigger(); pdl_wait(); grouped_tma<GM_DOWN, 16, 3>(TMA_PASS); }
extern "C" __global__ void __launch_bounds__(160) moe_mxfp4_tma32_gate_up(TMA_ARGS) { pdl_trigger(); pdl_wait(); grouped_tma<GM_GATE_UP, 32, 3>(TMA_PASS); }
extern "C" __global__ void __launch_bounds__(160) moe_mxfp4_tma32_down(TMA_ARGS) { pdl_trigger(); pdl_wait(); grouped_tma<GM_DOWN, 32, 3>(TMA_PASS); }
extern "C" __global__ void __launch_bounds__(160) moe_mxfp4_tma64_gate_up(TMA_ARGS) { pdl_trigger(); pdl_wait(); grouped_tma<GM_GATE_UP, 64, 2>(TMA_PASS); }
extern "C" __global__ void __launch_bounds__(160) moe_mxfp4_tma64_down(TMA_ARGS) { pdl_trigger(); pdl_wait(); grouped_tma<GM_DOWN, 64, 2>(TMA_PASS); }
