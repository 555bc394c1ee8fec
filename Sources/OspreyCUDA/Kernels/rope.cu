// Rotary embedding, half-split: for i < D/2, (x1, x2) = (x[i], x[i + D/2]) rotates by
// angle = pos * inv_freq[i] (f32 product), with cos and sin scaled by `scaling` (YaRN's
// attention factor). x [T, heads, D]; one block per token: its D/2 cosines and sines are computed
// once into shared memory (2 * D / 2 floats of dynamic shared memory), then every head's rows
// rotate with them. rope: row t at position start + t; rope_positions: at positions[t] (a batch
// of sequences); rope_positions_qk: q and k at positions[t] in one launch. Launchers:
// CUDABackend+Ops.swift (rope) and CUDABackend+Paged.swift (rope_positions).
// Measured on the H200 (2026-11-29, engine prefill step of 2,048 tokens, gpt-oss-20b shape): a
// block per (token, head), each computing its own cosf / sinf, took 4.4 ms of the step's 24
// rope_positions_qk launches — the trigonometry of 72 heads, not the 75 MB moved.
#include "common.cuh"

// cs[i] = cos(pos * inv_freq[i]) * scaling, cs[half + i] = the sine, for i < half; then a barrier.
__device__ __forceinline__ void rope_table(float* cs, const float* inv_freq, int half, int pos, float scaling) {
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float angle = (float)pos * inv_freq[i];
        cs[i] = cosf(angle) * scaling;
        cs[half + i] = sinf(angle) * scaling;
    }
    __syncthreads();
}

// Rows row0 .. row0 + n - 1 of x ([*, D]) rotated into out with the table cs.
__device__ __forceinline__ void rope_rows(const float* x, float* out, long long row0, int n, const float* cs, int D) {
    int half = D / 2;
    for (int e = threadIdx.x; e < n * half; e += blockDim.x) {
        int r = e / half, i = e % half;
        const float* xr = x + (row0 + r) * D;
        float* yr = out + (row0 + r) * D;
        float c = cs[i], s = cs[half + i];
        float x1 = xr[i], x2 = xr[half + i];
        yr[i] = x1 * c - x2 * s;
        yr[half + i] = x2 * c + x1 * s;
    }
}

extern "C" __global__ void rope(const float* x, float* out, const float* inv_freq, int heads, int D, int start, float scaling) {
    pdl_trigger(); pdl_wait();
    extern __shared__ float cs[];
    int t = blockIdx.x;
    rope_table(cs, inv_freq, D / 2, start + t, scaling);
    rope_rows(x, out, (long long)t * heads, heads, cs, D);
}

extern "C" __global__ void rope_positions(const float* x, float* out, const float* inv_freq, int heads, int D, const int* positions, float scaling) {
    pdl_trigger(); pdl_wait();
    extern __shared__ float cs[];
    int t = blockIdx.x;
    rope_table(cs, inv_freq, D / 2, positions[t], scaling);
    rope_rows(x, out, (long long)t * heads, heads, cs, D);
}

// rope_positions of q [T, hq, D] and k [T, hk, D] in one launch, one block per token.
extern "C" __global__ void rope_positions_qk(const float* q, const float* k, float* qout, float* kout, const float* inv_freq,
                                             int T, int hq, int hk, int D, const int* positions, float scaling) {
    pdl_trigger(); pdl_wait();
    extern __shared__ float cs[];
    int t = blockIdx.x;
    rope_table(cs, inv_freq, D / 2, positions[t], scaling);
    rope_rows(q, qout, (long long)t * hq, hq, cs, D);
    rope_rows(k, kout, (long long)t * hk, hk, cs, D);
}
