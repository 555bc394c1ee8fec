// Attention with learned sinks, GQA and an optional sliding window, f32 throughout.
// Key j (position kstart + j) is visible to query i (position qstart + i) iff j <= i and, when
// window > 0, i - j < window; the visible keys of a query are one contiguous range [lo, hi).
// The sink adds exp(sink - M) to the softmax denominator and nothing to the values.
//   attention_prefill_dNN  prefill (head sizes 16/32/64): one thread per query, a block per 128
//                  consecutive queries of one head; chunks of 32 keys and values are staged in shared
//                  memory with coalesced loads and read back as broadcasts, each thread keeping its
//                  query, its online softmax and its output row in registers.
//   attention_dNN  decode (head sizes 16/32/64/128): one block of up to 16 warps per (query row,
//                  head). Each warp takes chunks of 32 keys (lane j scores key j of the chunk with
//                  a full-length dot product, so a key costs one lane, not a warp reduction), keeps
//                  an online softmax (running max m, denominator l) and accumulates the values with
//                  each lane owning D/32 output dimensions; the warps' states merge at the end.
//   attention      any head size <= 256: one thread per key, the block merging per dimension (slow;
//                  only for odd head sizes).
// Launcher: CUDABackend+Ops.swift.
#include "common.cuh"

#define MAX_D 256

// D is a compile-time constant for the common head sizes (accumulators stay in registers) and
// 0 for the generic path (D from the argument, accumulators in local memory).
template <int DC>
__device__ __forceinline__ void attention_impl(const float* q, const float* k, const float* v, const void* sinks, int sdt,
                                               float* out, int Hq, int Hkv, int S, int Darg, int qstart, int kstart,
                                               int window, float scale) {
    constexpr int NA = DC > 0 ? DC : MAX_D;
    const int D = DC > 0 ? DC : Darg;
    __shared__ float scratch[32];
    int t = blockIdx.x / Hq, h = blockIdx.x % Hq;
    int kvh = h / (Hq / Hkv);
    int qpos = qstart + t;
    const float* qr = q + ((long long)t * Hq + h) * D;
    float m = -INFINITY, l = 0.f;
    float acc[NA];
    #pragma unroll
    for (int d = 0; d < NA; d++) acc[d] = 0.f;
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
        int kpos = kstart + s;
        if (kpos > qpos || (window > 0 && qpos - kpos >= window)) continue;
        const float* kr = k + ((long long)s * Hkv + kvh) * D;
        const float* vr = v + ((long long)s * Hkv + kvh) * D;
        float dot = 0.f;
        #pragma unroll
        for (int d = 0; d < NA; d++) if (d < D) dot += qr[d] * kr[d];
        dot *= scale;
        float mn = fmaxf(m, dot);
        float c = m == -INFINITY ? 0.f : expf(m - mn);
        float p = expf(dot - mn);
        l = l * c + p;
        #pragma unroll
        for (int d = 0; d < NA; d++) if (d < D) acc[d] = acc[d] * c + p * vr[d];
        m = mn;
    }
    float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
    float M = fmaxf(block_max(m, scratch), sink);
    float* orow = out + ((long long)t * Hq + h) * D;
    if (M == -INFINITY) {  // nothing visible and no sink
        for (int d = threadIdx.x; d < D; d += blockDim.x) orow[d] = 0.f;
        return;
    }
    float c = m == -INFINITY ? 0.f : expf(m - M);
    float L = block_sum(l * c, scratch) + (sinks ? expf(sink - M) : 0.f);
    #pragma unroll
    for (int d = 0; d < NA; d++) {
        if (d < D) {
            float s = block_sum(acc[d] * c, scratch);
            if (threadIdx.x == 0) orow[d] = s / L;
        }
    }
}

#define ATTENTION_ARGS const float* q, const float* k, const float* v, const void* sinks, int sdt, float* out, \
    int Hq, int Hkv, int S, int D, int qstart, int kstart, int window, float scale
#define ATTENTION_PASS q, k, v, sinks, sdt, out, Hq, Hkv, S, D, qstart, kstart, window, scale

#define MAX_WARPS 16

template <int D>
__device__ __forceinline__ void attention_chunked(const float* q, const float* k, const float* v, const void* sinks, int sdt,
                                                  float* out, int Hq, int Hkv, int S, int qstart, int kstart,
                                                  int window, float scale) {
    constexpr int DPL = (D + 31) / 32;  // output dimensions per lane
    __shared__ float sq[D];
    __shared__ float wm[MAX_WARPS], wl[MAX_WARPS];
    __shared__ float wacc[MAX_WARPS][D];
    int t = blockIdx.x / Hq, h = blockIdx.x % Hq, kvh = h / (Hq / Hkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    int qpos = qstart + t;
    const float* qr = q + ((long long)t * Hq + h) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) sq[d] = qr[d] * scale;
    __syncthreads();
    int hi = min(S, qpos - kstart + 1);
    int lo = window > 0 ? max(0, qpos - window + 1 - kstart) : 0;
    long long stride = (long long)Hkv * D;
    const float* kb = k + (long long)kvh * D;
    const float* vb = v + (long long)kvh * D;
    float m = -INFINITY, l = 0.f, acc[DPL];
    #pragma unroll
    for (int i = 0; i < DPL; i++) acc[i] = 0.f;
    for (int base = lo + warp * 32; base < hi; base += warps * 32) {
        int j = base + lane;
        float s = -INFINITY;
        if (j < hi) {
            const float4* kr = (const float4*)(kb + j * stride);
            float dot = 0.f;
            #pragma unroll
            for (int d4 = 0; d4 < D / 4; d4++) {
                float4 kv = kr[d4];
                dot += sq[4 * d4] * kv.x + sq[4 * d4 + 1] * kv.y + sq[4 * d4 + 2] * kv.z + sq[4 * d4 + 3] * kv.w;
            }
            s = dot;
        }
        float mn = fmaxf(m, warp_max(s));  // finite: lane 0's key (base < hi) is visible
        float corr = expf(m - mn);         // 0 while m is -inf
        float p = j < hi ? expf(s - mn) : 0.f;
        l = l * corr + warp_sum(p);
        #pragma unroll
        for (int i = 0; i < DPL; i++) acc[i] *= corr;
        int n = min(32, hi - base);
        for (int jj = 0; jj < n; jj++) {
            float pj = __shfl_sync(0xffffffffu, p, jj);
            const float* vr = vb + (base + jj) * stride;
            #pragma unroll
            for (int i = 0; i < DPL; i++) {
                int d = lane + 32 * i;
                if (d < D) acc[i] += pj * vr[d];
            }
        }
        m = mn;
    }
    if (lane == 0) { wm[warp] = m; wl[warp] = l; }
    #pragma unroll
    for (int i = 0; i < DPL; i++) {
        int d = lane + 32 * i;
        if (d < D) wacc[warp][d] = acc[i];
    }
    __syncthreads();
    float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
    float M = sink;
    for (int w = 0; w < warps; w++) M = fmaxf(M, wm[w]);
    float* orow = out + ((long long)t * Hq + h) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        if (M == -INFINITY) { orow[d] = 0.f; continue; }  // nothing visible and no sink
        float L = sinks ? expf(sink - M) : 0.f, o = 0.f;
        for (int w = 0; w < warps; w++) {
            float c = wm[w] == -INFINITY ? 0.f : expf(wm[w] - M);
            L += wl[w] * c;
            o += wacc[w][d] * c;
        }
        orow[d] = o / L;
    }
}

template <int D>
__device__ __forceinline__ void attention_prefill(const float* q, const float* k, const float* v, const void* sinks, int sdt,
                                                  float* out, int T, int Hq, int Hkv, int S, int qstart, int kstart,
                                                  int window, float scale) {
    constexpr int D4 = D / 4;
    __shared__ float4 sK[32][D4];
    __shared__ float4 sV[32][D4];
    int h = blockIdx.y, kvh = h / (Hq / Hkv);
    int t0 = blockIdx.x * blockDim.x, t = t0 + threadIdx.x;
    bool active = t < T;
    int qpos = qstart + (active ? t : T - 1);
    float qr[D], acc[D];
    const float* qrow = q + ((long long)(active ? t : T - 1) * Hq + h) * D;
    #pragma unroll
    for (int d = 0; d < D; d++) { qr[d] = qrow[d] * scale; acc[d] = 0.f; }
    float m = -INFINITY, l = 0.f;
    int tLast = min(t0 + (int)blockDim.x, T) - 1;
    int hi = min(S, qstart + tLast - kstart + 1);
    int lo = window > 0 ? max(0, qstart + t0 - window + 1 - kstart) : 0;
    long long stride = (long long)Hkv * D;
    for (int base = lo; base < hi; base += 32) {
        __syncthreads();  // the previous chunk is consumed
        for (int i = threadIdx.x; i < 32 * D4; i += blockDim.x) {
            int j = i / D4, c = i % D4, key = base + j;
            bool ok = key < hi;
            sK[j][c] = ok ? ((const float4*)(k + key * stride + (long long)kvh * D))[c] : make_float4(0.f, 0.f, 0.f, 0.f);
            sV[j][c] = ok ? ((const float4*)(v + key * stride + (long long)kvh * D))[c] : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        __syncthreads();
        // This query's visible keys in the chunk: [jlo, jhi).
        int jlo = window > 0 ? max(0, qpos - window + 1 - kstart - base) : 0;
        int jhi = min(min(32, hi - base), qpos - kstart - base + 1);
        if (!active || jlo >= jhi) continue;
        attend_chunk<D>(sK, sV, qr, jlo, jhi, m, l, acc);
    }
    if (!active) return;
    float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
    float M = fmaxf(m, sink);
    float* orow = out + ((long long)t * Hq + h) * D;
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

#define PREFILL_ARGS const float* q, const float* k, const float* v, const void* sinks, int sdt, float* out, \
    int T, int Hq, int Hkv, int S, int qstart, int kstart, int window, float scale
#define PREFILL_PASS q, k, v, sinks, sdt, out, T, Hq, Hkv, S, qstart, kstart, window, scale
extern "C" __global__ void attention_prefill_d16(PREFILL_ARGS) { pdl_trigger(); pdl_wait(); attention_prefill<16>(PREFILL_PASS); }
extern "C" __global__ void attention_prefill_d32(PREFILL_ARGS) { pdl_trigger(); pdl_wait(); attention_prefill<32>(PREFILL_PASS); }
extern "C" __global__ void attention_prefill_d64(PREFILL_ARGS) { pdl_trigger(); pdl_wait(); attention_prefill<64>(PREFILL_PASS); }

#define CHUNKED_PASS q, k, v, sinks, sdt, out, Hq, Hkv, S, qstart, kstart, window, scale

extern "C" __global__ void attention(ATTENTION_ARGS) { pdl_trigger(); pdl_wait(); attention_impl<0>(ATTENTION_PASS); }
extern "C" __global__ void attention_d16(ATTENTION_ARGS) { pdl_trigger(); pdl_wait(); attention_chunked<16>(CHUNKED_PASS); }
extern "C" __global__ void attention_d32(ATTENTION_ARGS) { pdl_trigger(); pdl_wait(); attention_chunked<32>(CHUNKED_PASS); }
extern "C" __global__ void attention_d64(ATTENTION_ARGS) { pdl_trigger(); pdl_wait(); attention_chunked<64>(CHUNKED_PASS); }
extern "C" __global__ void attention_d128(ATTENTION_ARGS) { pdl_trigger(); pdl_wait(); attention_chunked<128>(CHUNKED_PASS); }
