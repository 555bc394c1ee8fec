// Attention with learned sinks, GQA and an optional sliding window, f32 throughout.
// One block per (query row, head). Each thread walks a strided subset of the keys with an online
// softmax (running max m, denominator l, weighted values acc); the block then merges the
// threads' states. The sink adds exp(sink - M) to the denominator and nothing to the values.
// Key j (position kstart + j) is visible to query i (position qstart + i) iff j <= i and, when
// window > 0, i - j < window. Launcher: CUDABackend+Attention.swift.
#include "common.cuh"

#define MAX_D 256

extern "C" __global__ void attention(const float* q, const float* k, const float* v, const void* sinks, int sdt,
                                     float* out, int Hq, int Hkv, int S, int D, int qstart, int kstart,
                                     int window, float scale) {
    __shared__ float scratch[32];
    int t = blockIdx.x / Hq, h = blockIdx.x % Hq;
    int kvh = h / (Hq / Hkv);
    int qpos = qstart + t;
    const float* qr = q + ((long long)t * Hq + h) * D;
    float m = -INFINITY, l = 0.f;
    float acc[MAX_D];
    for (int d = 0; d < D; d++) acc[d] = 0.f;
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
        int kpos = kstart + s;
        if (kpos > qpos || (window > 0 && qpos - kpos >= window)) continue;
        const float* kr = k + ((long long)s * Hkv + kvh) * D;
        const float* vr = v + ((long long)s * Hkv + kvh) * D;
        float dot = 0.f;
        for (int d = 0; d < D; d++) dot += qr[d] * kr[d];
        dot *= scale;
        float mn = fmaxf(m, dot);
        float c = m == -INFINITY ? 0.f : expf(m - mn);
        float p = expf(dot - mn);
        l = l * c + p;
        for (int d = 0; d < D; d++) acc[d] = acc[d] * c + p * vr[d];
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
    for (int d = 0; d < D; d++) {
        float s = block_sum(acc[d] * c, scratch);
        if (threadIdx.x == 0) orow[d] = s / L;
    }
}
