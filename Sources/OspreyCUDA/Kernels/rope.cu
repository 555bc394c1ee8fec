// Rotary embedding, half-split: for i < D/2, (x1, x2) = (x[i], x[i + D/2]) rotates by
// angle = pos * inv_freq[i] (f32 product), with cos and sin scaled by `scaling` (YaRN's
// attention factor). x [T, heads, D]; one block per (token, head). rope: row t at position
// start + t; rope_positions: at positions[t] (a batch of sequences); rope_positions_qk: q and k
// at positions[t] in one launch. Launchers: CUDABackend+Ops.swift
// (rope) and CUDABackend+Paged.swift (rope_positions).
#include "common.cuh"

__device__ __forceinline__ void rope_row(const float* x, float* out, long long row, const float* inv_freq, int D, int pos, float scaling) {
    int half = D / 2;
    const float* xr = x + row * D;
    float* yr = out + row * D;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float angle = (float)pos * inv_freq[i];
        float c = cosf(angle) * scaling, s = sinf(angle) * scaling;
        float x1 = xr[i], x2 = xr[half + i];
        yr[i] = x1 * c - x2 * s;
        yr[half + i] = x2 * c + x1 * s;
    }
}

extern "C" __global__ void rope(const float* x, float* out, const float* inv_freq, int heads, int D, int start, float scaling) {
    pdl_trigger(); pdl_wait();
    rope_row(x, out, blockIdx.x, inv_freq, D, start + (int)blockIdx.x / heads, scaling);
}

extern "C" __global__ void rope_positions(const float* x, float* out, const float* inv_freq, int heads, int D, const int* positions, float scaling) {
    pdl_trigger(); pdl_wait();
    rope_row(x, out, blockIdx.x, inv_freq, D, positions[blockIdx.x / heads], scaling);
}

// rope_positions of q [T, hq, D] and k [T, hk, D] in one launch: blocks [0, T * hq) take q's rows,
// the rest k's.
extern "C" __global__ void rope_positions_qk(const float* q, const float* k, float* qout, float* kout, const float* inv_freq,
                                             int T, int hq, int hk, int D, const int* positions, float scaling) {
    pdl_trigger(); pdl_wait();
    int b = blockIdx.x, nq = T * hq;
    if (b < nq) rope_row(q, qout, b, inv_freq, D, positions[b / hq], scaling);
    else rope_row(k, kout, b - nq, inv_freq, D, positions[(b - nq) / hk], scaling);
}
