// Shared by the paged attention kernels (paged_attention.cu: f32 math; paged_attention_mma.cu: tensor
// cores): the cache element loads and stores (f32 or bf16 caches, widened to f32), the cache row
// of a position, the kernels' common arguments, and the end of a block that split its keys over
// its warps (merge_warps_store). Passed to NVRTC as a header, like common.cuh.
#pragma once
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

// MARK: - layout and arguments

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

#define ROWS_ARGS(T) PAGED_ARGS(T), int D, int splits, float* pm, float* pl, float* pacc
#define ROWS_PASS PAGED_PASS, D, splits, pm, pl, pacc
