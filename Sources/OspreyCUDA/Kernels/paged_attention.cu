// Paged attention for continuous batching, f32 math throughout. The keys and values of every
// sequence sit in fixed-size blocks of one cache [rows, Hkv, D]: position p of sequence s is cache
// row table[s][p / bs] * bs + p % bs. Sequence s owns query rows qstart[s] ..< qstart[s + 1]; its
// row i (n rows) is at position ctx[s] - n + i and sees keys j <= p with p - j < window (window 0:
// no window). The sink adds exp(sink - M) to the softmax denominator only. Same math as attention.cu.
// A table entry a query can see must name a block inside the cache (the CPU oracle checks this);
// here an entry that does not (-1, or past the cache) is never read: paged_rows skips the key and
// paged_prefill stages it as zeros.
// The cache holds f32 or bf16, and each kernel that touches it comes in both: the name as listed
// for f32, with a _bf16 suffix for bf16, which rounds to nearest even as it writes (f32_to_bf16_rne, as
// OspreyCore's bf16Bits) and widens to f32 as it loads from global memory, so registers and
// shared memory hold f32 either way (attend_chunk serves both) and only the bytes read change.
//   write_kv, write_kv4  a step's f32 k/v rows into their cache slots; slot < 0 or past the cache: skipped.
//   paged_rows_dNN_hHB  decode, and sequences with few queries: one block of 4 warps per (query row,
//                  kv head, up to HB query heads of that kv head's group, key split), so each key
//                  and value row is read from global memory once for all those heads. Warps take
//                  chunks of 32 keys: lane j scores key j for every head (a full-length dot product
//                  against the scaled queries in shared memory, read as broadcasts), the warp keeps
//                  an online softmax per head, and each lane accumulates D/32 value dimensions with
//                  the chunk's probabilities read back from shared memory as broadcasts; the warps
//                  merge at the end. With splits > 1 (few sequences, long contexts: too few blocks
//                  for the GPU otherwise) a block takes one slice of the visible keys and writes an
//                  unnormalised partial (max, sum, values) that paged_merge combines with the sink.
//                  NN = 16/32/64/128 (vector key loads, accumulators in registers) or 0 (any D <= 256).
//   paged_prefill_dNN  sequences with many queries (head sizes 16/32/64): attention.cu's prefill
//                  scheme on the paged cache. One thread per query, a block per (128 queries of one
//                  sequence, head); chunks of 32 keys staged in shared memory with coalesced loads
//                  and read back as warp broadcasts (non-uniform shared addresses saturate L1).
//   paged_prefill_mma_d64_bf16  paged_prefill on tensor cores (bf16 cache, D 64): a warp per 16
//                  queries of one head, chunks of 32 keys through mma_chunk (as paged_mma).
// The launcher (CUDABackend+Paged.swift) sizes the grids from host upper bounds (max query count,
// sequences); sequences with at most `limit` queries are paged_rows' and the others
// paged_prefill's, and a block with nothing to do returns at once.
#include "common.cuh"

// MARK: - cache element loads and stores

typedef unsigned short bf16_t;

// Cache values widened to f32: one at element i, or 2 / 4 consecutive ones at p (aligned to
// their size). bf16 pairs are widened in registers: the low half of a 32-bit word is the first value.
__device__ __forceinline__ float kv_load(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float kv_load(const bf16_t* p, long long i) { return bf16_to_f32(p[i]); }
__device__ __forceinline__ float kv_lo(unsigned int u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float kv_hi(unsigned int u) { return __uint_as_float(u & 0xffff0000u); }
__device__ __forceinline__ float2 kv_load2(const float* p) { return *(const float2*)p; }
__device__ __forceinline__ float2 kv_load2(const bf16_t* p) {
    unsigned int u = *(const unsigned int*)p;
    return make_float2(kv_lo(u), kv_hi(u));
}
__device__ __forceinline__ float4 kv_load4(const float* p) { return *(const float4*)p; }
__device__ __forceinline__ float4 kv_load4(const bf16_t* p) {
    uint2 u = *(const uint2*)p;
    return make_float4(kv_lo(u.x), kv_hi(u.x), kv_lo(u.y), kv_hi(u.y));
}

// Two f32 values as one bf16 pair (nearest even; lo in the low half).
__device__ __forceinline__ unsigned int pack_bf16x2(float lo, float hi) {
    return (unsigned int)f32_to_bf16_rne(lo) | ((unsigned int)f32_to_bf16_rne(hi) << 16);
}

// f32 values to cache values: as they are, or rounded to bf16 (nearest even, as OspreyCore's bf16Bits).
__device__ __forceinline__ void kv_store(float* p, long long i, float x) { p[i] = x; }
__device__ __forceinline__ void kv_store(bf16_t* p, long long i, float x) { p[i] = f32_to_bf16_rne(x); }
__device__ __forceinline__ void kv_store4(float* p, long long i, float4 x) { ((float4*)p)[i] = x; }
__device__ __forceinline__ void kv_store4(bf16_t* p, long long i, float4 x) {
    ((uint2*)p)[i] = make_uint2(pack_bf16x2(x.x, x.y), pack_bf16x2(x.z, x.w));
}

// MARK: - write_kv

// Row t of k and v ([T, W] with W = Hkv * D) to row slots[t] of the caches; one thread per value
// (V = float), or per 4 values (V = float4, W counted in float4s, every pointer 16-byte aligned).
template <typename V, typename T>
__device__ __forceinline__ void write_kv_impl(const V* k, const V* v, T* kc, T* vc, const int* slots, int T_, int W, int rows) {
    long long total = (long long)T_ * W;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
        int slot = slots[e / W];
        if (slot < 0 || slot >= rows) continue;
        long long dst = (long long)slot * W + e % W;
        if constexpr (sizeof(V) == sizeof(float4)) {
            kv_store4(kc, dst, k[e]);
            kv_store4(vc, dst, v[e]);
        } else {
            kv_store(kc, dst, k[e]);
            kv_store(vc, dst, v[e]);
        }
    }
}

extern "C" __global__ void write_kv(const float* k, const float* v, float* kc, float* vc, const int* slots, int T, int W, int rows) {
    pdl_trigger(); pdl_wait();
    write_kv_impl<float, float>(k, v, kc, vc, slots, T, W, rows);
}
extern "C" __global__ void write_kv4(const float4* k, const float4* v, float* kc, float* vc, const int* slots, int T, int W4, int rows) {
    pdl_trigger(); pdl_wait();
    write_kv_impl<float4, float>(k, v, kc, vc, slots, T, W4, rows);
}
extern "C" __global__ void write_kv_bf16(const float* k, const float* v, bf16_t* kc, bf16_t* vc, const int* slots, int T, int W, int rows) {
    pdl_trigger(); pdl_wait();
    write_kv_impl<float, bf16_t>(k, v, kc, vc, slots, T, W, rows);
}
extern "C" __global__ void write_kv4_bf16(const float4* k, const float4* v, bf16_t* kc, bf16_t* vc, const int* slots, int T, int W4, int rows) {
    pdl_trigger(); pdl_wait();
    write_kv_impl<float4, bf16_t>(k, v, kc, vc, slots, T, W4, rows);
}

// MARK: - paged_rows

#define ROWS_WARPS 4
#define ROWS_MAX_D 256

// The cache row of position j of a sequence whose table row is tb, or -1 when it has none.
__device__ __forceinline__ int cache_row(const int* tb, int j, int bs, int rows) {
    int b = tb[j / bs];
    long long r = (long long)b * bs + j % bs;
    return b >= 0 && r < rows ? (int)r : -1;
}

#define PAGED_ARGS(T) const float* q, const T* kc, const T* vc, const void* sinks, int sdt, float* out, \
    const int* qstart, const int* ctxlen, const int* table, int maxBlocks, int bs, int rows, \
    int Hq, int Hkv, int window, float scale, int limit
#define PAGED_PASS q, kc, vc, sinks, sdt, out, qstart, ctxlen, table, maxBlocks, bs, rows, Hq, Hkv, window, scale, limit

// Value dimension i of a lane: contiguous runs for D 64/128 (one vector load per key), strided otherwise.
template <int DC, int DPL>
__device__ __forceinline__ int lane_dim(int lane, int i) { return DC == 64 || DC == 128 ? lane * DPL + i : lane + 32 * i; }

// The end of paged_rows and paged_mma: each warp has left its max wm, sum wl and unnormalised
// values wacc per head of the block's nh heads (h0 ..); per head and dimension, the warps' sums are
// rescaled to the block's max and merged. One split: normalised with the sink into out; several:
// the partial (max, sum, values) for paged_merge. Call after a __syncthreads.
template <int HB, int NA>
__device__ __forceinline__ void merge_warps_store(const float (&wm)[ROWS_WARPS][HB], const float (&wl)[ROWS_WARPS][HB],
                                                  const float (&wacc)[ROWS_WARPS][HB][NA], int nh, int D, int h0, int t, int Hq,
                                                  const void* sinks, int sdt, float* out, int splits, int split, float* pm, float* pl,
                                                  float* pacc) {
    for (int e = threadIdx.x; e < nh * D; e += blockDim.x) {
        int g = e / D, d = e % D, h = h0 + g;
        float M = -INFINITY, L = 0.f, o = 0.f;
        for (int w = 0; w < ROWS_WARPS; w++) M = fmaxf(M, wm[w][g]);
        for (int w = 0; w < ROWS_WARPS; w++) {
            float c = wm[w][g] == -INFINITY ? 0.f : expf(wm[w][g] - M);
            L += wl[w][g] * c;
            o += wacc[w][g][d] * c;
        }
        long long th = (long long)t * Hq + h;
        if (splits > 1) {  // paged_merge adds the sink and normalises
            long long z = th * splits + split;
            pacc[z * D + d] = o;
            if (d == 0) { pm[z] = M; pl[z] = L; }
            continue;
        }
        float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
        float Mx = fmaxf(M, sink);
        if (Mx == -INFINITY) { out[th * D + d] = 0.f; continue; }  // nothing visible and no sink
        float f = M == -INFINITY ? 0.f : expf(M - Mx);
        out[th * D + d] = o * f / (L * f + (sinks ? expf(sink - Mx) : 0.f));
    }
}

// grid (query row within its sequence, (kv head * head chunks + chunk) * splits + split, sequence); 128 threads.
// T: the cache's element type (float or bf16_t).
template <int DC, int HB, typename T>
__device__ __forceinline__ void paged_rows(PAGED_ARGS(T), int Darg, int splits, float* pm, float* pl, float* pacc) {
    constexpr int NA = DC > 0 ? DC : ROWS_MAX_D;
    constexpr int DPL = (NA + 31) / 32;
    const int D = DC > 0 ? DC : Darg;
    __shared__ __align__(16) float sq[HB][NA];           // this block's queries, times scale
    __shared__ __align__(16) float sp[ROWS_WARPS][32][HB];  // a chunk's probabilities, per key and head
    __shared__ int srow[ROWS_WARPS][32];                  // a chunk's cache rows
    __shared__ float wm[ROWS_WARPS][HB], wl[ROWS_WARPS][HB];
    __shared__ float wacc[ROWS_WARPS][HB][NA];
    // bf16 caches with D = 64: each lane fetches its key's value row together with the key row and
    // leaves it here, so the loop over a chunk's 32 values reads shared memory instead of waiting
    // for L2 every few keys. One batch-1 step's 24 launches, each timed alone on the H200: 0.626 ->
    // 0.358 ms (benchmarks/results/2026-11-29-h200-decode-launches.md).
    constexpr bool VS = DC == 64 && sizeof(T) == 2;
    __shared__ __align__(16) uint4 sv[VS ? ROWS_WARPS : 1][VS ? 32 : 1][VS ? DC / 8 : 1];

    int G = Hq / Hkv, chunks = (G + HB - 1) / HB;
    int y = blockIdx.y, split = y % splits;
    y /= splits;
    int chunk = y % chunks, kvh = y / chunks;
    int s = blockIdx.z, i = blockIdx.x;
    int q0 = qstart[s], n = qstart[s + 1] - q0;
    if (i >= n || n > limit) return;  // the whole block: no query here, or paged_prefill's sequence
    int t = q0 + i, p = ctxlen[s] - n + i;
    int h0 = kvh * G + chunk * HB, nh = min(HB, G - chunk * HB);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    for (int e = threadIdx.x; e < HB * D; e += blockDim.x) {
        int g = e / D, d = e % D;
        sq[g][d] = g < nh ? q[((long long)t * Hq + h0 + g) * D + d] * scale : 0.f;
    }
    __syncthreads();

    // This split's slice [klo, khi) of the visible keys [lo, p], in whole chunks of 32.
    int lo = window > 0 ? max(0, p - window + 1) : 0;
    int per = ((p + 1 - lo + splits - 1) / splits + 31) & ~31;
    int klo = lo + split * per, khi = min(p + 1, klo + per);
    const int* tb = table + (long long)s * maxBlocks;
    long long stride = (long long)Hkv * D;
    const T* kb = kc + (long long)kvh * D;
    const T* vb = vc + (long long)kvh * D;

    float m[HB], l[HB], acc[HB][DPL];  // l: this lane's share of the sum (added up across the warp at the end)
    #pragma unroll
    for (int g = 0; g < HB; g++) {
        m[g] = -INFINITY; l[g] = 0.f;
        #pragma unroll
        for (int k = 0; k < DPL; k++) acc[g][k] = 0.f;
    }
    for (int base = klo + warp * 32; base < khi; base += ROWS_WARPS * 32) {
        int j = base + lane;
        int row = j < khi ? cache_row(tb, j, bs, rows) : -1;
        float sc[HB];
        #pragma unroll
        for (int g = 0; g < HB; g++) sc[g] = 0.f;
        uint4 vrow[VS ? DC / 8 : 1];
        if (row >= 0) {
            const T* kr = kb + row * stride;
            if constexpr (VS) {
                #pragma unroll
                for (int c = 0; c < DC / 8; c++) vrow[c] = ((const uint4*)(vb + row * stride))[c];
            }
            if constexpr (DC > 0 && DC % 8 == 0 && sizeof(T) == 2) {
                // bf16: 8 values per 16-byte load.
                #pragma unroll
                for (int c = 0; c < DC / 8; c++) {
                    uint4 u = ((const uint4*)kr)[c];
                    float kk[8] = {kv_lo(u.x), kv_hi(u.x), kv_lo(u.y), kv_hi(u.y), kv_lo(u.z), kv_hi(u.z), kv_lo(u.w), kv_hi(u.w)};
                    #pragma unroll
                    for (int g = 0; g < HB; g++) {
                        float4 qa = ((const float4*)sq[g])[2 * c], qb = ((const float4*)sq[g])[2 * c + 1];
                        sc[g] += qa.x * kk[0] + qa.y * kk[1] + qa.z * kk[2] + qa.w * kk[3]
                               + qb.x * kk[4] + qb.y * kk[5] + qb.z * kk[6] + qb.w * kk[7];
                    }
                }
            } else if constexpr (DC > 0 && DC % 4 == 0) {
                #pragma unroll
                for (int c = 0; c < DC / 4; c++) {
                    float4 kk = kv_load4(kr + 4 * c);
                    #pragma unroll
                    for (int g = 0; g < HB; g++) {
                        float4 qq = ((const float4*)sq[g])[c];
                        sc[g] += qq.x * kk.x + qq.y * kk.y + qq.z * kk.z + qq.w * kk.w;
                    }
                }
            } else {
                for (int d = 0; d < D; d++) {
                    float kk = kv_load(kr, d);
                    #pragma unroll
                    for (int g = 0; g < HB; g++) sc[g] += sq[g][d] * kk;
                }
            }
        }
        #pragma unroll
        for (int g = 0; g < HB; g++) {
            float score = row >= 0 ? sc[g] : -INFINITY;
            float mn = fmaxf(m[g], warp_max(score));
            float corr = m[g] == -INFINITY ? 0.f : expf(m[g] - mn);  // nothing to rescale yet while m is -inf
            float pr = row >= 0 ? expf(score - mn) : 0.f;
            l[g] = l[g] * corr + pr;
            #pragma unroll
            for (int k = 0; k < DPL; k++) acc[g][k] *= corr;
            m[g] = mn;
            sp[warp][lane][g] = pr;
        }
        srow[warp][lane] = row;
        if constexpr (VS) {
            if (row >= 0) {
                #pragma unroll
                for (int c = 0; c < DC / 8; c++) sv[warp][lane][c] = vrow[c];
            }
        }
        __syncwarp();
        int count = min(32, khi - base);
        #pragma unroll 4
        for (int jj = 0; jj < count; jj++) {
            int r = srow[warp][jj];
            if (r < 0) continue;
            const T* vr = vb + r * stride;
            float vv[DPL];
            if constexpr (VS) {
                unsigned int x = ((const unsigned int*)sv[warp][jj])[lane];
                vv[0] = kv_lo(x); vv[1] = kv_hi(x);
            } else if constexpr (DC == 64) {
                float2 x = kv_load2(vr + 2 * lane);
                vv[0] = x.x; vv[1] = x.y;
            } else if constexpr (DC == 128) {
                float4 x = kv_load4(vr + 4 * lane);
                vv[0] = x.x; vv[1] = x.y; vv[2] = x.z; vv[3] = x.w;
            } else {
                #pragma unroll
                for (int k = 0; k < DPL; k++) {
                    int d = lane + 32 * k;
                    vv[k] = d < D ? kv_load(vr, d) : 0.f;
                }
            }
            float pj[HB];
            if constexpr (HB % 4 == 0) {
                #pragma unroll
                for (int c = 0; c < HB / 4; c++) {
                    float4 x = ((const float4*)sp[warp][jj])[c];
                    pj[4 * c] = x.x; pj[4 * c + 1] = x.y; pj[4 * c + 2] = x.z; pj[4 * c + 3] = x.w;
                }
            } else {
                #pragma unroll
                for (int g = 0; g < HB; g++) pj[g] = sp[warp][jj][g];
            }
            #pragma unroll
            for (int g = 0; g < HB; g++) {
                #pragma unroll
                for (int k = 0; k < DPL; k++) acc[g][k] += pj[g] * vv[k];
            }
        }
        __syncwarp();  // the chunk's sp and srow are consumed
    }

    // Merge the warps: per head, rescale each warp's sums to the block's max.
    #pragma unroll
    for (int g = 0; g < HB; g++) {
        float lw = warp_sum(l[g]);
        if (lane == 0) { wm[warp][g] = m[g]; wl[warp][g] = lw; }
        #pragma unroll
        for (int k = 0; k < DPL; k++) {
            int d = lane_dim<DC, DPL>(lane, k);
            if (d < D) wacc[warp][g][d] = acc[g][k];
        }
    }
    __syncthreads();
    merge_warps_store(wm, wl, wacc, nh, D, h0, t, Hq, sinks, sdt, out, splits, split, pm, pl, pacc);
}

#define ROWS_ARGS(T) PAGED_ARGS(T), int D, int splits, float* pm, float* pl, float* pacc
#define ROWS_PASS PAGED_PASS, D, splits, pm, pl, pacc
extern "C" __global__ void paged_rows_d0_h1(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<0, 1, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h2(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<0, 2, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h4(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<0, 4, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h8(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<0, 8, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h1(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<16, 1, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h2(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<16, 2, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h4(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<16, 4, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h8(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<16, 8, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h1(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<32, 1, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h2(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<32, 2, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h4(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<32, 4, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h8(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<32, 8, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h1(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<64, 1, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h2(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<64, 2, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h4(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<64, 4, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h8(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<64, 8, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h1(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<128, 1, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h2(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<128, 2, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h4(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<128, 4, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h8(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<128, 8, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h1_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<0, 1, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h2_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<0, 2, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h4_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<0, 4, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h8_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<0, 8, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h1_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<16, 1, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h2_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<16, 2, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h4_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<16, 4, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h8_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<16, 8, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h1_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<32, 1, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h2_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<32, 2, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h4_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<32, 4, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h8_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<32, 8, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h1_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<64, 1, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h2_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<64, 2, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h4_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<64, 4, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h8_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<64, 8, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h1_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<128, 1, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h2_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<128, 2, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h4_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<128, 4, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h8_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<128, 8, bf16_t>(ROWS_PASS); }

// MARK: - paged_mma (bf16 cache, D 64, up to 16 query heads per kv head)

// paged_rows' work on tensor cores: one block of 4 warps per (query row, kv head, key split), the
// group's query heads as the 16 rows of the MMAs (G of them real, the rest zeros). Per chunk of 32
// keys a warp computes S = Q K^T (4 key tiles x 4 steps of 16 dimensions: 16 mma.sync), keeps an
// online softmax per head in f32, and adds P V (2 steps of 16 keys x 8 tiles of 8 dimensions: 16
// mma.sync), with P rounded to bf16 in registers (the C fragments of S are the A fragments of P)
// and V read back from shared memory transposed by ldmatrix. Q is scaled and rounded to bf16 (as
// the checkpoint's bf16 attention does). Each lane loads 32 contiguous bytes of a key row: the sum
// over dimensions runs in another order than the fragments' nominal one, the same for Q and K.
#define MMA_VS 72  // bf16 per key row of a warp's V tile in shared memory: 64 + 8 (rows 16 bytes apart in the banks)

// ldmatrix .x4 .trans: four 8x8 bf16 tiles; lanes 8i..8i+7 give the row addresses of tile i, and
// lane 4g + t receives (row 2t, col g) and (row 2t + 1, col g) of each.
__device__ __forceinline__ void ldsm_x4_trans(unsigned int (&r)[4], const void* p) {
    unsigned int a = (unsigned int)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

// One chunk of 32 keys [base, base + 32) for a warp's 16 query rows (rows g and g + 8 of the A
// fragments qa): loads the keys' K and V rows (keys from khi on, and keys without a cache row, as
// zeros and masked), S = Q K^T, the online softmax per row (m, l: this lane's share of the sum),
// and O += P V through the warp's V tile sv, all in st. visible(r, key): whether row g + 8r sees `key` (the
// causal and window mask of a prefill; always true for decode, whose range [.., khi) is the mask).
// A warp's online softmax over its 16 query rows (this lane's rows g and g + 8): the running
// maxima, this lane's share of the sums, and the unnormalised outputs (C fragments of 8 tiles of
// 8 dimensions: o[c][0..1] row g, o[c][2..3] row g + 8).
struct MmaRows {
    float m[2], l[2], o[8][4];
    __device__ __forceinline__ MmaRows() {
        #pragma unroll
        for (int r = 0; r < 2; r++) { m[r] = -INFINITY; l[r] = 0.f; }
        #pragma unroll
        for (int c = 0; c < 8; c++)
            #pragma unroll
            for (int e = 0; e < 4; e++) o[c][e] = 0.f;
    }
};

template <class Visible>
__device__ __forceinline__ void mma_chunk(const unsigned int (&qa)[2][8], MmaRows& st, bf16_t (*sv)[MMA_VS], int base, int khi,
                                          const int* tb, int bs, int rows, const bf16_t* kb, const bf16_t* vb, long long stride,
                                          int lane, Visible visible) {
    const int g = lane >> 2, tq = lane & 3;
    float (&m)[2] = st.m, (&l)[2] = st.l, (&o)[8][4] = st.o;
    // Key tile j: lane (g, tq) loads key base + 8j + g, bytes 32 tq .. + 31 of its K and V rows.
    unsigned int kw[4][8], valid[4];
    #pragma unroll
    for (int j = 0; j < 4; j++) {
        const int key = base + 8 * j + g;
        const int row = key < khi ? cache_row(tb, key, bs, rows) : -1;
        uint4 k0 = make_uint4(0u, 0u, 0u, 0u), k1 = k0, v0 = k0, v1 = k0;
        if (row >= 0) {
            const uint4* kr = (const uint4*)(kb + row * stride) + 2 * tq;
            const uint4* vr = (const uint4*)(vb + row * stride) + 2 * tq;
            k0 = kr[0]; k1 = kr[1]; v0 = vr[0]; v1 = vr[1];
        }
        kw[j][0] = k0.x; kw[j][1] = k0.y; kw[j][2] = k0.z; kw[j][3] = k0.w;
        kw[j][4] = k1.x; kw[j][5] = k1.y; kw[j][6] = k1.z; kw[j][7] = k1.w;
        *(uint4*)&sv[8 * j + g][16 * tq] = v0;  // missing rows as zeros: P is 0 there, and 0 * 0 stays 0
        *(uint4*)&sv[8 * j + g][16 * tq + 8] = v1;
        valid[j] = __ballot_sync(0xffffffffu, row >= 0);  // key 8j + x: bit 4x
    }
    // S tile j: c0 c1 (row g, keys 8j + 2tq, + 1), c2 c3 (row g + 8, the same keys).
    float sc[4][4];
    #pragma unroll
    for (int j = 0; j < 4; j++) {
        float d[4] = {0.f, 0.f, 0.f, 0.f};
        #pragma unroll
        for (int kk = 0; kk < 4; kk++) mma_bf16(d, qa[0][2 * kk], qa[1][2 * kk], qa[0][2 * kk + 1], qa[1][2 * kk + 1], kw[j][2 * kk], kw[j][2 * kk + 1]);
        const bool va = (valid[j] >> (8 * tq)) & 1u, vb2 = (valid[j] >> (8 * tq + 4)) & 1u;
        const int key = base + 8 * j + 2 * tq;
        sc[j][0] = va && visible(0, key) ? d[0] : -INFINITY; sc[j][1] = vb2 && visible(0, key + 1) ? d[1] : -INFINITY;
        sc[j][2] = va && visible(1, key) ? d[2] : -INFINITY; sc[j][3] = vb2 && visible(1, key + 1) ? d[3] : -INFINITY;
    }
    // Online softmax per row (the 4 lanes of a row hold its 32 scores, 8 each).
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        float cm = -INFINITY;
        #pragma unroll
        for (int j = 0; j < 4; j++) cm = fmaxf(cm, fmaxf(sc[j][2 * r], sc[j][2 * r + 1]));
        cm = fmaxf(cm, __shfl_xor_sync(0xffffffffu, cm, 1));
        cm = fmaxf(cm, __shfl_xor_sync(0xffffffffu, cm, 2));
        const float mn = fmaxf(m[r], cm);
        const float corr = m[r] == -INFINITY ? 0.f : expf(m[r] - mn);  // nothing to rescale while m is -inf
        float sum = 0.f;
        #pragma unroll
        for (int j = 0; j < 4; j++) {
            #pragma unroll
            for (int e = 2 * r; e < 2 * r + 2; e++) {
                sc[j][e] = sc[j][e] == -INFINITY ? 0.f : expf(sc[j][e] - mn);
                sum += sc[j][e];
            }
        }
        l[r] = l[r] * corr + sum;
        #pragma unroll
        for (int c = 0; c < 8; c++) { o[c][2 * r] *= corr; o[c][2 * r + 1] *= corr; }
        m[r] = mn;
    }
    __syncwarp();  // the V tile is in shared memory
    // O += P V: step ks takes keys 16 ks .. + 15 (S tiles 2ks, 2ks + 1 as the A fragments).
    #pragma unroll
    for (int ks = 0; ks < 2; ks++) {
        const unsigned int a0 = pack_bf16x2(sc[2 * ks][0], sc[2 * ks][1]), a1 = pack_bf16x2(sc[2 * ks][2], sc[2 * ks][3]);
        const unsigned int a2 = pack_bf16x2(sc[2 * ks + 1][0], sc[2 * ks + 1][1]), a3 = pack_bf16x2(sc[2 * ks + 1][2], sc[2 * ks + 1][3]);
        #pragma unroll
        for (int cp = 0; cp < 4; cp++) {
            // Tiles (keys +0 / +8, dimensions 16 cp / 16 cp + 8): b0, b1 of dimension tiles 2cp and 2cp + 1.
            const int mi = lane >> 3, key = 16 * ks + (mi & 1) * 8 + (lane & 7), dim = 16 * cp + (mi >> 1) * 8;
            unsigned int bv[4];
            ldsm_x4_trans(bv, &sv[key][dim]);
            mma_bf16(o[2 * cp], a0, a1, a2, a3, bv[0], bv[1]);
            mma_bf16(o[2 * cp + 1], a0, a1, a2, a3, bv[2], bv[3]);
        }
    }
    __syncwarp();  // the V tile is consumed
}

__device__ __forceinline__ void paged_mma(PAGED_ARGS(bf16_t), int Darg, int splits, float* pm, float* pl, float* pacc) {
    constexpr int D = 64;
    __shared__ __align__(16) bf16_t sv[ROWS_WARPS][32][MMA_VS];
    __shared__ float wm[ROWS_WARPS][16], wl[ROWS_WARPS][16];
    __shared__ float wacc[ROWS_WARPS][16][D];

    const int G = Hq / Hkv;
    const int split = blockIdx.y % splits, kvh = blockIdx.y / splits;
    const int s = blockIdx.z, i = blockIdx.x;
    const int q0 = qstart[s], n = qstart[s + 1] - q0;
    if (i >= n || n > limit) return;  // the whole block: no query here, or paged_prefill's sequence
    const int t = q0 + i, p = ctxlen[s] - n + i, h0 = kvh * G;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;

    // Q as A fragments: rows g and g + 8 (heads h0 + g, h0 + g + 8), dimensions 16 tq .. + 15, word w
    // = dimensions 16 tq + 2w, + 1; step kk of the sum takes words 2kk (a0, a1) and 2kk + 1 (a2, a3).
    unsigned int qa[2][8];
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const int head = g + 8 * r;
        const float* qr = q + ((long long)t * Hq + h0 + min(head, G - 1)) * D + 16 * tq;
        #pragma unroll
        for (int w = 0; w < 8; w++) qa[r][w] = head < G ? pack_bf16x2(qr[2 * w] * scale, qr[2 * w + 1] * scale) : 0u;
    }

    const int lo = window > 0 ? max(0, p - window + 1) : 0;
    const int per = ((p + 1 - lo + splits - 1) / splits + 31) & ~31;
    const int klo = lo + split * per, khi = min(p + 1, klo + per);
    const int* tb = table + (long long)s * maxBlocks;
    const long long stride = (long long)Hkv * D;
    const bf16_t* kb = kc + (long long)kvh * D;
    const bf16_t* vb = vc + (long long)kvh * D;

    MmaRows st;
    for (int base = klo + warp * 32; base < khi; base += ROWS_WARPS * 32)
        mma_chunk(qa, st, sv[warp], base, khi, tb, bs, rows, kb, vb, stride, lane, [](int, int) { return true; });
    float (&m)[2] = st.m, (&l)[2] = st.l, (&o)[8][4] = st.o;

    // Merge the warps: per head, each warp's sums rescaled to the block's max (as paged_rows).
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        if (tq == 0) { wm[warp][g + 8 * r] = m[r]; wl[warp][g + 8 * r] = l[r]; }
        #pragma unroll
        for (int c = 0; c < 8; c++) {
            wacc[warp][g + 8 * r][8 * c + 2 * tq] = o[c][2 * r];
            wacc[warp][g + 8 * r][8 * c + 2 * tq + 1] = o[c][2 * r + 1];
        }
    }
    __syncthreads();
    merge_warps_store(wm, wl, wacc, G, D, h0, t, Hq, sinks, sdt, out, splits, split, pm, pl, pacc);
}

// Launched like paged_rows_d64_h16_bf16 would be: grid (query row, kv head * splits + split, sequence).
extern "C" __global__ void paged_mma_d64_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_mma(ROWS_PASS); }

// MARK: - paged_prefill_mma (bf16 cache, D 64)

// paged_prefill's sequences (more than `limit` queries) on tensor cores: each warp takes 16
// consecutive queries of one head as the MMA rows (where paged_mma takes one query's heads) and
// walks the keys they see, from the first one's window start to the last one, in chunks of 32
// (mma_chunk, masked per row: causal and window), then normalises each row with the sink; no
// merge, no shared memory but the warps' V tiles. Q and P rounded to bf16, as paged_mma. Measured
// on the H200 (2026-11-29, engine prefill step of 2,048 tokens, gpt-oss-20b shape): paged_prefill
// took 12.0 ms of the step's 24 launches, one thread per query in f32.
// grid (tile of 64 queries within its sequence, query head, sequence); 128 threads.
__device__ __forceinline__ void paged_prefill_mma(PAGED_ARGS(bf16_t)) {
    constexpr int D = 64;
    __shared__ __align__(16) bf16_t sv[ROWS_WARPS][32][MMA_VS];
    const int s = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
    const int q0 = qstart[s], n = qstart[s + 1] - q0;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const int i0 = blockIdx.x * 64 + warp * 16;  // the warp's first query
    if (n <= limit || i0 >= n) return;            // paged_rows' sequence, or no query for this warp
    const int first = ctxlen[s] - n;              // the position of query 0

    // Q as A fragments (as paged_mma): rows g and g + 8 are queries i0 + g, i0 + g + 8 (past n: the last one again).
    int pos[2];
    unsigned int qa[2][8];
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = min(i0 + g + 8 * r, n - 1);
        pos[r] = first + i;
        const float* qr = q + ((long long)(q0 + i) * Hq + h) * D + 16 * tq;
        #pragma unroll
        for (int w = 0; w < 8; w++) qa[r][w] = pack_bf16x2(qr[2 * w] * scale, qr[2 * w + 1] * scale);
    }
    const int lo = window > 0 ? max(0, first + i0 - window + 1) : 0, hi = first + min(i0 + 16, n);
    const int* tb = table + (long long)s * maxBlocks;
    const long long stride = (long long)Hkv * D;
    const bf16_t* kb = kc + (long long)kvh * D;
    const bf16_t* vb = vc + (long long)kvh * D;
    MmaRows st;
    for (int base = lo; base < hi; base += 32)
        mma_chunk(qa, st, sv[warp], base, hi, tb, bs, rows, kb, vb, stride, lane,
                  [&](int r, int key) { return key <= pos[r] && (window <= 0 || pos[r] - key < window); });
    float (&m)[2] = st.m, (&l)[2] = st.l, (&o)[8][4] = st.o;

    #pragma unroll
    for (int r = 0; r < 2; r++) {  // each row's sum over its 4 lanes
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    const float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = i0 + g + 8 * r;
        if (i >= n) continue;
        float* orow = out + ((long long)(q0 + i) * Hq + h) * D + 2 * tq;
        const float M = fmaxf(m[r], sink);
        const float f = M == -INFINITY || m[r] == -INFINITY ? 0.f : expf(m[r] - M);
        const float L = l[r] * f + (sinks && M != -INFINITY ? expf(sink - M) : 0.f);
        #pragma unroll
        for (int c = 0; c < 8; c++) {  // nothing visible and no sink: zeros
            orow[8 * c] = M == -INFINITY ? 0.f : o[c][2 * r] * f / L;
            orow[8 * c + 1] = M == -INFINITY ? 0.f : o[c][2 * r + 1] * f / L;
        }
    }
}

extern "C" __global__ void paged_prefill_mma_d64_bf16(PAGED_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_prefill_mma(PAGED_PASS); }

// out[th] from the splits' partials of row-head th = t * Hq + h: one block per row-head, threads over D.
extern "C" __global__ void paged_merge(const float* pm, const float* pl, const float* pacc, const void* sinks, int sdt,
                                       float* out, int Hq, int D, int splits) {
    pdl_trigger(); pdl_wait();
    long long th = blockIdx.x;
    int h = (int)(th % Hq);
    float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
    float M = sink;
    for (int z = 0; z < splits; z++) M = fmaxf(M, pm[th * splits + z]);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        if (M == -INFINITY) { out[th * D + d] = 0.f; continue; }
        float L = sinks ? expf(sink - M) : 0.f, o = 0.f;
        for (int z = 0; z < splits; z++) {
            float mz = pm[th * splits + z];
            float c = mz == -INFINITY ? 0.f : expf(mz - M);
            L += pl[th * splits + z] * c;
            o += pacc[(th * splits + z) * D + d] * c;
        }
        out[th * D + d] = o / L;
    }
}

// MARK: - paged_prefill

// grid (tile of 128 queries within its sequence, head, sequence); 128 threads. T: the cache's
// element type; a chunk is widened to f32 as it is staged.
template <int D, typename T>
__device__ __forceinline__ void paged_prefill(PAGED_ARGS(T)) {
    constexpr int D4 = D / 4;
    __shared__ float4 sK[32][D4];
    __shared__ float4 sV[32][D4];
    int s = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
    int q0 = qstart[s], n = qstart[s + 1] - q0;
    int i0 = blockIdx.x * blockDim.x;
    if (n <= limit || i0 >= n) return;  // the whole block: paged_rows' sequence, or no query here
    int i = i0 + threadIdx.x;
    bool active = i < n;
    int ctx = ctxlen[s];
    int qpos = ctx - n + (active ? i : n - 1);
    long long t = q0 + (active ? i : n - 1);
    float qr[D], acc[D];
    const float* qrow = q + (t * Hq + h) * D;
    #pragma unroll
    for (int d = 0; d < D; d++) { qr[d] = qrow[d] * scale; acc[d] = 0.f; }
    float m = -INFINITY, l = 0.f;
    // The tile sees keys [lo, hi): from the first query's window start to the last query.
    int hi = ctx - n + min(i0 + (int)blockDim.x, n);
    int lo = window > 0 ? max(0, ctx - n + i0 - window + 1) : 0;
    const int* tb = table + (long long)s * maxBlocks;
    long long stride = (long long)Hkv * D;
    for (int base = lo; base < hi; base += 32) {
        __syncthreads();  // the previous chunk is consumed
        for (int e = threadIdx.x; e < 32 * D4; e += blockDim.x) {
            int j = e / D4, c = e % D4, key = base + j;
            int row = key < hi ? cache_row(tb, key, bs, rows) : -1;
            float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
            sK[j][c] = row >= 0 ? kv_load4(kc + row * stride + (long long)kvh * D + 4 * c) : zero;
            sV[j][c] = row >= 0 ? kv_load4(vc + row * stride + (long long)kvh * D + 4 * c) : zero;
        }
        __syncthreads();
        // This query's visible keys in the chunk: [jlo, jhi).
        int jlo = window > 0 ? max(0, qpos - window + 1 - base) : 0;
        int jhi = min(min(32, hi - base), qpos - base + 1);
        if (!active || jlo >= jhi) continue;
        attend_chunk<D>(sK, sV, qr, jlo, jhi, m, l, acc);
    }
    if (!active) return;
    float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
    float M = fmaxf(m, sink);
    float* orow = out + (t * Hq + h) * D;
    if (M == -INFINITY) {
        #pragma unroll
        for (int d = 0; d < D; d++) orow[d] = 0.f;
        return;
    }
    float c = m == -INFINITY ? 0.f : expf(m - M);
    float L = l * c + (sinks ? expf(sink - M) : 0.f);
    #pragma unroll
    for (int d = 0; d < D; d++) orow[d] = acc[d] * c / L;
}

extern "C" __global__ void paged_prefill_d16(PAGED_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_prefill<16, float>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d32(PAGED_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_prefill<32, float>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d64(PAGED_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_prefill<64, float>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d16_bf16(PAGED_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_prefill<16, bf16_t>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d32_bf16(PAGED_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_prefill<32, bf16_t>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d64_bf16(PAGED_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_prefill<64, bf16_t>(PAGED_PASS); }
