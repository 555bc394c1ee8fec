// Rotary embedding, half-split: for i < D/2, (x1, x2) = (x[i], x[i + D/2]) rotates by
// angle = pos * inv_freq[i] (f32 product), with cos and sin scaled by `scaling` (YaRN's
// attention factor). x [T, heads, D]; one block per token: its D/2 cosines and sines are computed
// once into shared memory (2 * D / 2 floats of dynamic shared memory), then every head's rows
// rotate with them. rope: row t at position start + t; rope_positions: at positions[t] (a batch
// of sequences); rope_positions_qk: q and k at positions[t] in one launch; rope_write_kv(_bf16):
// that, with the rotated k and the v row stored straight into their paged-cache slot (write_kv's
// job: one launch less per layer). Launchers: CUDABackend+Ops.swift (rope) and
// CUDABackend+Paged.swift (rope_positions, rope_write_kv).
// Measured on the H200 (2026-11-29, engine prefill step of 2,048 tokens, gpt-oss-20b shape): a
// block per (token, head), each computing its own cosf / sinf, took 4.4 ms of the step's 24
// rope_positions_qk launches — the trigonometry of 72 heads, not the 75 MB moved.
#include "paged_common.cuh"

// cs[i] = cos(pos * inv_freq[i]) * scaling, cs[half + i] = the sine, for i < half; then a barrier.
__device__ __forceinline__ void rope_table(float* cs, const float* inv_freq, int half, int pos, float scaling) {
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float angle = (float)pos * inv_freq[i];
        cs[i] = cosf(angle) * scaling;
        cs[half + i] = sinf(angle) * scaling;
    }
    __syncthreads();
}

// Rows src0 .. src0 + n - 1 of x ([*, D]) rotated with the table cs into rows dst0 .. of out
// (f32, or a bf16 cache rounded as write_kv rounds: kv_store).
template <typename C>
__device__ __forceinline__ void rope_rows(const float* x, long long src0, C* out, long long dst0, int n, const float* cs, int D) {
    int half = D / 2;
    for (int e = threadIdx.x; e < n * half; e += blockDim.x) {
        int r = e / half, i = e % half;
        const float* xr = x + (src0 + r) * D;
        long long y = (dst0 + r) * D;
        float c = cs[i], s = cs[half + i];
        float x1 = xr[i], x2 = xr[half + i];
        kv_store(out, y + i, x1 * c - x2 * s);
        kv_store(out, y + half + i, x2 * c + x1 * s);
    }
}

extern "C" __global__ void rope(const float* x, float* out, const float* inv_freq, int heads, int D, int start, float scaling) {
    pdl_trigger(); pdl_wait();
    extern __shared__ float cs[];
    int t = blockIdx.x;
    rope_table(cs, inv_freq, D / 2, start + t, scaling);
    rope_rows(x, (long long)t * heads, out, (long long)t * heads, heads, cs, D);
}

extern "C" __global__ void rope_positions(const float* x, float* out, const float* inv_freq, int heads, int D, const int* positions, float scaling) {
    pdl_trigger(); pdl_wait();
    extern __shared__ float cs[];
    int t = blockIdx.x;
    rope_table(cs, inv_freq, D / 2, positions[t], scaling);
    rope_rows(x, (long long)t * heads, out, (long long)t * heads, heads, cs, D);
}

// rope_positions of q [T, hq, D] and k [T, hk, D] in one launch, one block per token.
extern "C" __global__ void rope_positions_qk(const float* q, const float* k, float* qout, float* kout, const float* inv_freq,
                                             int T, int hq, int hk, int D, const int* positions, float scaling) {
    pdl_trigger(); pdl_wait();
    extern __shared__ float cs[];
    int t = blockIdx.x;
    rope_table(cs, inv_freq, D / 2, positions[t], scaling);
    rope_rows(q, (long long)t * hq, qout, (long long)t * hq, hq, cs, D);
    rope_rows(k, (long long)t * hk, kout, (long long)t * hk, hk, cs, D);
}

// rope_positions_qk, except that token t's rotated k rows and its v rows go to row slots[t] of the
// caches kc / vc ([rows, hk, D], f32 or bf16, rounded as write_kv rounds) instead of to an output;
// slot < 0 or past the cache: not stored. A block per token and `hpb` of its hq + hk heads (q's
// first): a decode step spreads one token over several blocks, each computing the D / 2 sines.
template <typename C>
__device__ __forceinline__ void rope_write_kv_impl(const float* q, const float* k, const float* v, float* qout, C* kc, C* vc,
                                                   const float* inv_freq, int hq, int hk, int D, int hpb, const int* positions,
                                                   const int* slots, int rows, float scaling) {
    extern __shared__ float cs[];
    int t = blockIdx.x, half = D / 2;
    int h0 = blockIdx.y * hpb, h1 = min(h0 + hpb, hq + hk);
    rope_table(cs, inv_freq, half, positions[t], scaling);
    if (h0 < hq) rope_rows(q, (long long)t * hq + h0, qout, (long long)t * hq + h0, min(h1, hq) - h0, cs, D);
    int slot = slots[t], k0 = max(h0, hq) - hq, nk = h1 - hq - k0;  // this block's k (and v) heads: k0 .. k0 + nk - 1
    if (slot < 0 || slot >= rows || nk <= 0) return;
    rope_rows(k, (long long)t * hk + k0, kc, (long long)slot * hk + k0, nk, cs, D);
    long long src = ((long long)t * hk + k0) * D, dst = ((long long)slot * hk + k0) * D;
    for (int e = threadIdx.x; e < nk * D; e += blockDim.x) kv_store(vc, dst + e, v[src + e]);
}

#define ROPE_WRITE_KV_ARGS(C) const float* q, const float* k, const float* v, float* qout, C* kc, C* vc, const float* inv_freq, \
    int hq, int hk, int D, int hpb, const int* positions, const int* slots, int rows, float scaling
#define ROPE_WRITE_KV_PASS q, k, v, qout, kc, vc, inv_freq, hq, hk, D, hpb, positions, slots, rows, scaling
extern "C" __global__ void rope_write_kv(ROPE_WRITE_KV_ARGS(float)) {
    pdl_trigger(); pdl_wait();
    rope_write_kv_impl<float>(ROPE_WRITE_KV_PASS);
}
extern "C" __global__ void rope_write_kv_bf16(ROPE_WRITE_KV_ARGS(bf16_t)) {
    pdl_trigger(); pdl_wait();
    rope_write_kv_impl<bf16_t>(ROPE_WRITE_KV_PASS);
}
