// MXFP4 experts of batches of 16 tokens and more as one grouped GEMM on tensor cores (issue 6):
// the packed weights are read once per tile of pairs that share an expert and dequantized in
// registers, never expanded to bf16 in device memory. No host synchronisation: the routing is
// turned into a tile list on the device, and the GEMM grid covers the worst case.
//   moe_grouped_route   pairs sorted by expert (order), and tiles of <= 32 (or 64) pairs of one expert
//   moe_grouped_gather  xs[i] = bf16(x[order[i] / k]): the routed rows in expert order
//   moe_mxfp4_{mma,mma64,fma}_gate_up  h = bf16(SwiGLU(xs . W_gate_up^T + b)), rows in expert order
//   moe_mxfp4_{mma,mma64,fma}_down     y[order[i]] = h[i] . W_down^T + b, back in pick order
// then moe_combine (moe.cu). The fma kernels are the same tiling with scalar FMAs and a naive
// decode: a check that passes with fma and fails with mma points at the fragment mapping.
// Limits: K (inputs) a multiple of 32 and at most 4064 (the CTA's scales sit in shared memory),
// gate_up's rows interleaved gate (even) / up (odd). Launcher: CUDABackend+Grouped.swift.
// Speed on an H200, gpt-oss-20b's experts (E 32, top-4, H = I = 2880), both GEMMs: 0.29 ms at 16
// tokens, 0.35 at 64, 0.52 at 256, 0.79 at 512, 1.34 at 1024 (150 TFLOP/s) with blocks as stored:
// about 1.2 TB/s of weights where it should stream at 4. Measured since (2026-11-29): blocks in the
// tiled layout (mx_block; each stage one contiguous 4 KB run instead of 32 bytes from each of 128
// rows) took a 64-sequence decode step's GEMMs from 5.49 + 3.33 to 4.83 + 3.06 ms (decode at batch
// 32 / 64: +9%); the largest shared-memory carveout (5 CTAs per SM) changed nothing. So neither the
// DRAM pattern nor occupancy is the limit; the per-stage wait + barrier of 4 warps over 64 values is
// the next suspect (more k per stage, or a warp-specialised producer). Also waves: at 64 sequences
// (~8 pairs per expert, 32 tiles) gate_up has 32 x 45 = 1,440 CTAs and down 32 x 23 = 736 for
// 132 SMs x 5 = 660 slots, i.e. 3 rounds for 2.2 rounds of work and 2 for 1.1; the measured
// gate_up / down ratio, 4.83 / 3.06 = 1.58, is what 3 / 2 rounds predicts (work alone: 2.0), so a
// round is ~65 us per layer, ~1.4 us per 4 KB stage per CTA. Split-K for down (f32 partial sums
// added into y), 64-row tiles or a persistent tile loop would fill the last round; ncu's view of
// these kernels: WITH_NCU_GROUPED=1 scripts/gpu-check run.
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

// d += A · B for one m16n8k16 tile (fragments as in the NOTE above).
__device__ __forceinline__ void mma_bf16(float (&d)[4], unsigned int a0, unsigned int a1, unsigned int a2, unsigned int a3,
                                         unsigned int b0, unsigned int b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// The 8 e2m1 values of one packed word (nibble i = value i, low nibble first), unscaled, as 4
// bf16 pairs: r[j] = (value 2j in the low half, value 2j + 1 in the high half), i.e. byte j.
// Magnitudes through two prmt byte tables (low and high byte of the bf16 of 0, 0.5, 1, 1.5, 2,
// 3, 4, 6); signs merged into the high bytes: a prmt of 0x80 bytes in sign-replicate mode gives
// 0xff for a nibble with bit 3 set and 0x80 otherwise, so bit 6 of each byte is the sign (bit 7
// never tells them apart), moved to bit 7 by a shift; then the bytes interleaved. ~17 ops / 8 values.
__device__ __forceinline__ void e2m1x8_to_bf16x2(unsigned int w, unsigned int (&r)[4]) {
    const unsigned int L0 = 0xC0800000u, L1 = 0xC0804000u;  // low bytes:  00 00 80 C0 | 00 40 80 C0
    const unsigned int H0 = 0x3F3F3F00u, H1 = 0x40404040u;  // high bytes: 00 3F 3F 3F | 40 40 40 40
    const unsigned int K = 0x80808080u;
    unsigned int m = w & 0x77777777u, mh = m >> 16, wh = w >> 16;
    unsigned int lo = prmt_b32(L0, L1, m), loh = prmt_b32(L0, L1, mh);
    unsigned int hi = prmt_b32(H0, H1, m) | ((prmt_b32(K, K, w) << 1) & 0x80808080u);
    unsigned int hih = prmt_b32(H0, H1, mh) | ((prmt_b32(K, K, wh) << 1) & 0x80808080u);
    r[0] = prmt_b32(lo, hi, 0x5140u);   // values 0, 1
    r[1] = prmt_b32(lo, hi, 0x7362u);   // values 2, 3
    r[2] = prmt_b32(loh, hih, 0x5140u); // values 4, 5
    r[3] = prmt_b32(loh, hih, 0x7362u); // values 6, 7
}

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
    #pragma unroll
    for (int mt = 0; mt < 2; mt++)
        #pragma unroll
        for (int nt = 0; nt < NT; nt++)
            #pragma unroll
            for (int i = 0; i < 4; i++) acc[mt][nt][i] = 0.f;

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
            const unsigned char* plane = sW + h * GM_PLANE;
            float sc[2][2];
            unsigned int wq[2][2];
            #pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                #pragma unroll
                for (int u = 0; u < 2; u++) {
                    int row = warp * 32 + mt * 16 + g + 8 * u;
                    wq[mt][u] = *(const unsigned int*)(plane + row * 16 + 4 * t);
                    sc[mt][u] = row < rowsLeft ? e8m0_to_f32(sScale[soff + row * nb + b]) : 0.f;
                }
            }
            if (MMA) {
                unsigned int wa[2][2][4];  // [m tile][row g, g + 8][byte j of the word]
                #pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    e2m1x8_to_bf16x2(wq[mt][0], wa[mt][0]);
                    e2m1x8_to_bf16x2(wq[mt][1], wa[mt][1]);
                }
                #pragma unroll
                for (int nt = 0; nt < NT; nt++) {
                    if (nt * 8 >= n) break;  // warp-uniform
                    const int p = nt * 8 + g;
                    const uint4 x = *(const uint4*)(sA + act_offset(p, 32 * h + 8 * t));
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
                                float xv = bf16_to_f32(*(const unsigned short*)(sA + act_offset(p, 32 * h + k)));
                                s += e2m1_to_f32(nib) * xv;
                            }
                            acc[mt][nt][i] += s * sc[mt][i >> 1];
                        }
                    }
                }
            }
        }
    }

    // Epilogue. C element i of tile (mt, nt): row r0 + warp * 32 + mt * 16 + g + 8 * (i / 2),
    // pair nt * 8 + 2t + i % 2.
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
