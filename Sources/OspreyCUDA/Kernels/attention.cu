// Attention with learned sinks, GQA and an optional sliding window, f32 throughout.
// One block per (query row, head). Each thread walks a strided subset of the keys with an online
// softmax (running max m, denominator l, weighted values acc); the block then merges the
// threads' states. The sink adds exp(sink - M) to the denominator and nothing to the values.
// Key j (position kstart + j) is visible to query i (position qstart + i) iff j <= i and, when
// window > 0, i - j < window. Launcher: CUDABackend+Attention.swift.
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

extern "C" __global__ void attention(ATTENTION_ARGS) { attention_impl<0>(ATTENTION_PASS); }
extern "C" __global__ void attention_d16(ATTENTION_ARGS) { attention_impl<16>(ATTENTION_PASS); }
extern "C" __global__ void attention_d32(ATTENTION_ARGS) { attention_impl<32>(ATTENTION_PASS); }
extern "C" __global__ void attention_d64(ATTENTION_ARGS) { attention_impl<64>(ATTENTION_PASS); }
extern "C" __global__ void attention_d128(ATTENTION_ARGS) { attention_impl<128>(ATTENTION_PASS); }
