// Dense linear layers: out[t, o] = x[t, :] . W[o, :] + b[o], f32 activations, f32/f16/bf16
// weights, f32 accumulation. One warp per output row and tile of TILE tokens, so each weight row
// is read once per tile (decode reads every weight exactly once). `linear_bf16x8` is the fast
// path for bf16 weights with I % 8 == 0: each lane loads 8 weights (16 bytes) at a time.
// Launcher: CUDABackend+Ops.swift.
#include "common.cuh"

#define TILE 8

extern "C" __global__ void linear(const float* x, const void* W, int wdt, const void* bias, int bdt, float* out,
                                  int T, int O, int I) {
    int o = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (o >= O) return;
    int t0 = blockIdx.y * TILE;
    int n = min(TILE, T - t0);
    float acc[TILE];
    #pragma unroll
    for (int j = 0; j < TILE; j++) acc[j] = 0.f;
    for (int i = lane; i < I; i += 32) {
        float w = load_w(W, (long long)o * I + i, wdt);
        #pragma unroll
        for (int j = 0; j < TILE; j++) if (j < n) acc[j] += w * x[(long long)(t0 + j) * I + i];
    }
    float b = bias ? load_w(bias, o, bdt) : 0.f;
    #pragma unroll
    for (int j = 0; j < TILE; j++) {
        float s = warp_sum(acc[j]);
        if (lane == 0 && j < n) out[(long long)(t0 + j) * O + o] = s + b;
    }
}

extern "C" __global__ void linear_bf16x8(const float* x, const unsigned short* W, const void* bias, int bdt, float* out,
                                         int T, int O, int I) {
    int o = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (o >= O) return;
    int t0 = blockIdx.y * TILE;
    int n = min(TILE, T - t0);
    float acc[TILE];
    #pragma unroll
    for (int j = 0; j < TILE; j++) acc[j] = 0.f;
    const uint4* row = (const uint4*)(W + (long long)o * I);
    for (int c = lane; c < I / 8; c += 32) {
        uint4 p = row[c];
        float w[8];
        unsigned int words[4] = {p.x, p.y, p.z, p.w};
        #pragma unroll
        for (int q = 0; q < 4; q++) {
            w[2 * q] = __uint_as_float(words[q] << 16);
            w[2 * q + 1] = __uint_as_float(words[q] & 0xffff0000u);
        }
        #pragma unroll
        for (int j = 0; j < TILE; j++) {
            if (j < n) {
                const float4* xv = (const float4*)(x + (long long)(t0 + j) * I + c * 8);
                float4 a = xv[0], b = xv[1];
                acc[j] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y + w[6] * b.z + w[7] * b.w;
            }
        }
    }
    float b = bias ? load_w(bias, o, bdt) : 0.f;
    #pragma unroll
    for (int j = 0; j < TILE; j++) {
        float s = warp_sum(acc[j]);
        if (lane == 0 && j < n) out[(long long)(t0 + j) * O + o] = s + b;
    }
}
