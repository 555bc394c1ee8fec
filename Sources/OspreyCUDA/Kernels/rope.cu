// Rotary embedding, half-split: for i < D/2, (x1, x2) = (x[i], x[i + D/2]) rotates by
// angle = pos * inv_freq[i] (f32 product), with cos and sin scaled by `scaling` (YaRN's
// attention factor). x [T, heads, D]; one block per (token, head). Launcher: CUDABackend+Attention.swift.
#include "common.cuh"

extern "C" __global__ void rope(const float* x, float* out, const float* inv_freq, int heads, int D, int start, float scaling) {
    int t = blockIdx.x / heads;
    int half = D / 2;
    const float* xr = x + (long long)blockIdx.x * D;
    float* yr = out + (long long)blockIdx.x * D;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float angle = (float)(start + t) * inv_freq[i];
        float c = cosf(angle) * scaling, s = sinf(angle) * scaling;
        float x1 = xr[i], x2 = xr[half + i];
        yr[i] = x1 * c - x2 * s;
        yr[half + i] = x2 * c + x1 * s;
    }
}
