// MXFP4 experts of batches of 16 tokens and more as one grouped GEMM on tensor cores (issue 6):
// the packed weights are read once per tile of pairs that share an expert and dequantized in
// registers, never expanded to bf16 in device memory. No host synchronisation: the routing is
// turned into a tile list on the device, and the GEMM grid covers the worst case.
//   moe_grouped_route   pairs sorted by expert (order), and tiles of <= 16, 32 or 64 pairs of one expert
//   moe_grouped_gather  xs[i] = bf16(x[order[i] / k]): the routed rows in expert order
//   moe_mxfp4_{mma,mma64,fma}_gate_up  h = bf16(SwiGLU(xs . W_gate_up^T + b)), rows in expert order
//   moe_mxfp4_{mma,mma64,fma}_down     y[order[i]] = h[i] . W_down^T + b, back in pick order
// then moe_combine (moe.cu). These GEMMs stage weights and inputs with cp.async; on sm_90 with
// tiled blocks the engine runs moe_grouped_tma.cu's instead (a producer warp, bulk copies, a leaner
// loop: 15-30% faster). The fma kernels are the same tiling with scalar FMAs and a naive decode: a
// check that passes with fma and fails with mma points at the fragment mapping. Tiling, fragment
// layout, decode and epilogue: mxfp4_mma.cuh.
// Limits: K (inputs) a multiple of 32 and at most 4064 (the CTA's scales sit in shared memory),
// gate_up's rows interleaved gate (even) / up (odd). Launcher: CUDABackend+Grouped.swift.
// Speed on an H200, gpt-oss-20b's experts (E 32, top-4, H = I = 2880), both GEMMs, tiled blocks:
// 0.29 ms at 16 tokens, 0.31 at 64, 0.35 at 128, 0.49 at 256, 0.76 at 512 (2026-11-29,
// benchmarks/kernels/grouped_kernels.cu), about 1.3 TB/s of weights at 64 tokens where HBM gives 4.
// ncu there: the ALU pipe 72% busy (the e2m1 decode: prmt), 121 M warp instructions for gate_up at
// 64 tokens, i.e. bound by instructions per weight byte, not by DRAM or occupancy (the largest
// shared-memory carveout changed nothing).
#include "mxfp4_mma.cuh"

// Byte offset of input k (0..63 of the stage) of pair p in a stage's input tile.
__device__ __forceinline__ int act_offset(int p, int k) { return p * 128 + ((((k >> 3) ^ ((p & 1) << 2))) << 4) + (k & 7) * 2; }

// Queues stage `step` (blocks 2 step, 2 step + 1 of the CTA's rows; inputs 64 step .. + 64 of its
// NP pairs) into buffer `buf`; rows, blocks and pairs out of range are zero-filled. With tiled
// weights (`tiles4k` = the CTA's first 4 KB run, see mx_block) the stage's weights are one
// contiguous 4 KB run, already laid out as the two planes (padding is zeros in memory).
template <int NP>
__device__ __forceinline__ void load_stage(unsigned char* smem, int buf, int step, const unsigned short* act, int start, int n,
                                           const unsigned char* wrows, const unsigned char* tiles4k, const unsigned char* blocks,
                                           int rowsLeft, int nb, int K) {
    unsigned char* sW = smem + buf * (GM_STAGE_W + NP * 128);
    unsigned char* sA = sW + GM_STAGE_W;
    if (tiles4k) {
        const unsigned char* run = tiles4k + (long long)step * GM_STAGE_W;
        #pragma unroll
        for (int i = threadIdx.x; i < 2 * GM_ROWS; i += GM_THREADS) cp_async16(sW + 16 * i, run + 16 * i, 16);
    } else {
        #pragma unroll
        for (int i = threadIdx.x; i < 2 * GM_ROWS; i += GM_THREADS) {
            int row = i >> 1, h = i & 1, b = 2 * step + h;
            bool ok = row < rowsLeft && b < nb;
            cp_async16(sW + h * GM_PLANE + row * 16, ok ? wrows + ((long long)row * nb + b) * 16 : blocks, ok ? 16 : 0);
        }
    }
    #pragma unroll
    for (int i = threadIdx.x; i < NP * 8; i += GM_THREADS) {
        int p = i >> 3, c = i & 7, k = step * 64 + c * 8;
        bool ok = p < n && k < K;
        cp_async16(sA + act_offset(p, c * 8), ok ? act + (long long)(start + p) * K + k : act, ok ? 16 : 0);
    }
}

// One 32-value block (b of each of the CTA's rows, packed bytes in `plane`: 16 per row) against
// the tile's pairs: acc[mt][nt] += 2^(scale - 127) * (W_block . act_block). sScale: the CTA's scales
// (row r, block b at r * nb + b); act_at(p, k): the bf16 input k (0..31) of pair p of this block in
// shared memory (16-byte aligned for k a multiple of 8).
template <bool MMA, int NT, class ActAt>
__device__ __forceinline__ void block_mma(float (&acc)[2][NT][4], const unsigned char* plane, const unsigned char* sScale, int b, int nb,
                                          int rowsLeft, int n, int warp, int g, int t, ActAt act_at) {
    float sc[2][2];
    unsigned int wq[2][2];
    #pragma unroll
    for (int mt = 0; mt < 2; mt++) {
        #pragma unroll
        for (int u = 0; u < 2; u++) {
            int row = warp * 32 + mt * 16 + g + 8 * u;
            wq[mt][u] = *(const unsigned int*)(plane + row * 16 + 4 * t);
            sc[mt][u] = row < rowsLeft ? e8m0_to_f32(sScale[row * nb + b]) : 0.f;
        }
    }
    if (MMA) {
        unsigned int wa[2][2][4];  // [m tile][row g, g + 8][byte j of the word]
        #pragma unroll
        for (int mt = 0; mt < 2; mt++) {
            e2m1x8_to_bf16x2(wq[mt][0], wa[mt][0]);
            e2m1x8_to_bf16x2(wq[mt][1], wa[mt][1]);
        }
        mma_pairs<NT>(acc, wa, sc, n, g, t, act_at);
    } else {
        // The same outputs as the C fragments, each a plain dot product over the block.
        #pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            if (nt * 8 >= n) break;
            #pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                #pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int row = warp * 32 + mt * 16 + g + 8 * (i >> 1), p = nt * 8 + 2 * t + (i & 1);
                    float s = 0.f;
                    #pragma unroll 4
                    for (int k = 0; k < 32; k++) {
                        unsigned int nib = (plane[row * 16 + (k >> 1)] >> (4 * (k & 1))) & 15u;
                        float xv = bf16_to_f32(*(const unsigned short*)(act_at(p, k)));
                        s += e2m1_to_f32(nib) * xv;
                    }
                    acc[mt][nt][i] += s * sc[mt][i >> 1];
                }
            }
        }
    }
}


// One CTA: rows blockIdx.y * 128 .. + 128 of the expert of tile blockIdx.x, for its pairs.
// act [P, K] bf16 in expert order; tiles[j] = (expert or -1, first sorted position, pairs, 0);
// blocks [E, R, K / 32, 16] and scales [E, R, K / 32]; bias [E, R] of dtype bdt.
// GM_GATE_UP: out = h [P, R / 2] bf16 (expert order); GM_DOWN: out = y [P, R] f32 (pick order).
// NP pairs per CTA (32 or 64), STAGES cp.async stages. Shared memory: STAGES * (4096 + NP * 128)
// bytes of stages, then 128 * K / 32 + 32 of scales.
template <int MODE, bool MMA, int NP, int STAGES>
__device__ __forceinline__ void grouped_mxfp4(const unsigned short* act, const int4* tiles, const int* order,
                                              const unsigned char* blocks, int tiled, const unsigned char* scales, const void* bias, int bdt,
                                              void* out, int R, int K, float limit, float alpha) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int4 tile = tiles[blockIdx.x];
    const int e = tile.x, start = tile.y, n = tile.z;
    if (e < 0) return;  // past the last tile: the grid covers the worst case
    const int r0 = blockIdx.y * GM_ROWS, rowsLeft = R - r0, nb = K / 32, steps = (nb + 1) / 2;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const long long rowBase = (long long)e * R + r0;
    const unsigned char* wrows = blocks + rowBase * nb * 16;
    const unsigned char* tiles4k = tiled ? blocks + (((long long)e * ((R + 127) >> 7) + blockIdx.y) * ((nb + 1) >> 1)) * GM_STAGE_W : nullptr;
    constexpr int NT = NP / 8, STAGE = GM_STAGE_W + NP * 128;

    // The CTA's scales, rows r0 .. r0 + 127 of expert e: one contiguous run of bytes [s0, s1),
    // copied in 16-byte pieces from s0 rounded down (the last piece cut at s1); all in flight
    // with the first stage. Scale of row r, block b: sScale[soff + r * nb + b]; rows past R are not read.
    unsigned char* sScale = smem + STAGES * STAGE;
    const long long s0 = rowBase * nb, s1 = s0 + (long long)min(GM_ROWS, rowsLeft) * nb, a0 = s0 & ~15ll;
    const int soff = (int)(s0 - a0);
    for (int i = threadIdx.x; 16ll * i < s1 - a0; i += GM_THREADS) {
        cp_async16(sScale + 16 * i, scales + a0 + 16ll * i, (int)min(16ll, s1 - a0 - 16ll * i));
    }
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < steps) load_stage<NP>(smem, s, s, act, start, n, wrows, tiles4k, blocks, rowsLeft, nb, K);
        cp_async_commit();
    }

    float acc[2][NT][4];
    zero_acc<NT>(acc);

    for (int step = 0; step < steps; step++) {
        cp_async_wait<STAGES - 2>();  // this thread's copies of stage `step` (and of the scales) have landed
        __syncthreads();              // everyone's have, and everyone is done with stage step - 1
        int next = step + STAGES - 1;
        if (next < steps) load_stage<NP>(smem, next % STAGES, next, act, start, n, wrows, tiles4k, blocks, rowsLeft, nb, K);
        cp_async_commit();

        const unsigned char* sW = smem + (step % STAGES) * STAGE;
        const unsigned char* sA = sW + GM_STAGE_W;
        #pragma unroll
        for (int h = 0; h < 2; h++) {
            const int b = 2 * step + h;
            if (b >= nb) break;
            block_mma<MMA, NT>(acc, sW + h * GM_PLANE, sScale + soff, b, nb, rowsLeft, n, warp, g, t,
                               [&](int p, int k) { return sA + act_offset(p, 32 * h + k); });
        }
    }
    grouped_store<MODE, NT>(acc, r0, R, e, start, n, order, bias, bdt, out, limit, alpha, warp, g, t);
}

#define GROUPED_ARGS const unsigned short* act, const int4* tiles, const int* order, const unsigned char* blocks, int tiled, \
    const unsigned char* scales, const void* bias, int bdt, void* out, int R, int K, float limit, float alpha
#define GROUPED_PASS act, tiles, order, blocks, tiled, scales, bias, bdt, out, R, K, limit, alpha
// Tiles of 32 pairs, 4 stages (44 KB of shared memory at K = 2,880), and of 64 pairs, 3 stages
// (48 KB), for batches averaging 32+ pairs per expert (half the weight and input traffic per FLOP).
extern "C" __global__ void moe_mxfp4_mma_gate_up(GROUPED_ARGS) { pdl_trigger(); pdl_wait(); grouped_mxfp4<GM_GATE_UP, true, 32, 4>(GROUPED_PASS); }
extern "C" __global__ void moe_mxfp4_mma_down(GROUPED_ARGS) { pdl_trigger(); pdl_wait(); grouped_mxfp4<GM_DOWN, true, 32, 4>(GROUPED_PASS); }
extern "C" __global__ void moe_mxfp4_mma64_gate_up(GROUPED_ARGS) { pdl_trigger(); pdl_wait(); grouped_mxfp4<GM_GATE_UP, true, 64, 3>(GROUPED_PASS); }
extern "C" __global__ void moe_mxfp4_mma64_down(GROUPED_ARGS) { pdl_trigger(); pdl_wait(); grouped_mxfp4<GM_DOWN, true, 64, 3>(GROUPED_PASS); }
extern "C" __global__ void moe_mxfp4_fma_gate_up(GROUPED_ARGS) { pdl_trigger(); pdl_wait(); grouped_mxfp4<GM_GATE_UP, false, 32, 4>(GROUPED_PASS); }
extern "C" __global__ void moe_mxfp4_fma_down(GROUPED_ARGS) { pdl_trigger(); pdl_wait(); grouped_mxfp4<GM_DOWN, false, 32, 4>(GROUPED_PASS); }


// One block (1024 threads): counting sort of the P pairs by expert (order[sorted position] = pair;
// positions past the routed pairs -1), and the tile list: each expert's sorted run cut into
// tiles of `tileRows` pairs, tiles[j] = (expert, first position, pairs, 0) for j < the tile count,
// (-1, 0, 0, 0) up to maxTiles. Ids outside 0..<E are dropped, their y rows zeroed.
// Shared memory: 4 E + 2 ints.
extern "C" __global__ void moe_grouped_route(const int* ids, int P, int E, int tileRows, int maxTiles, int* order, int4* tiles,
                                             float* y, int H) {
    pdl_trigger(); pdl_wait();
    extern __shared__ int sh[];
    int *count = sh, *base = sh + E, *cursor = sh + 2 * E, *firstTile = sh + 3 * E;  // firstTile[E + 1], then the routed total
    for (int i = threadIdx.x; i < E; i += blockDim.x) count[i] = 0;
    __syncthreads();
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
        int e = ids[p];
        if (e >= 0 && e < E) atomicAdd(&count[e], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int run = 0, ntiles = 0;
        for (int i = 0; i < E; i++) {
            base[i] = cursor[i] = run;
            firstTile[i] = ntiles;
            run += count[i];
            ntiles += (count[i] + tileRows - 1) / tileRows;
        }
        firstTile[E] = ntiles;
        firstTile[E + 1] = run;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
        int e = ids[p];
        if (e >= 0 && e < E) {
            order[atomicAdd(&cursor[e], 1)] = p;
        } else {
            for (int c = 0; c < H; c++) y[(long long)p * H + c] = 0.f;
        }
    }
    for (int i = firstTile[E + 1] + threadIdx.x; i < P; i += blockDim.x) order[i] = -1;
    for (int j = threadIdx.x; j < maxTiles; j += blockDim.x) {
        if (j >= firstTile[E]) { tiles[j] = make_int4(-1, 0, 0, 0); continue; }
        int lo = 0, hi = E - 1;  // the last expert whose first tile is <= j: it owns tile j
        while (lo < hi) {
            int mid = (lo + hi + 1) >> 1;
            if (firstTile[mid] <= j) lo = mid; else hi = mid - 1;
        }
        int local = j - firstTile[lo];
        tiles[j] = make_int4(lo, base[lo] + local * tileRows, min(tileRows, count[lo] - local * tileRows), 0);
    }
}

// xs[i, :] = bf16(x[order[i] / div, :]) for the sorted positions i (skipping -1); one block per position.
extern "C" __global__ void moe_grouped_gather(const float* x, const int* order, int div, unsigned short* xs, int H) {
    pdl_trigger(); pdl_wait();
    int i = blockIdx.x, p = order[i];
    if (p < 0) return;
    const float* src = x + (long long)(p / div) * H;
    unsigned short* dst = xs + (long long)i * H;
    for (int c = threadIdx.x; c < H; c += blockDim.x) dst[c] = f32_to_bf16_rne(src[c]);
}
