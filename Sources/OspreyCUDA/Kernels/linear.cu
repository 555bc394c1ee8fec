// Dense linear layers: out[t, o] = x[t, :] . W[o, :] + b[o], f32 activations, f32/f16/bf16
// weights, f32 accumulation. One warp per output row and tile of TILE tokens, so each weight row
// is read once per tile (decode reads every weight exactly once). Launcher: CUDABackend+Linear.swift.
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
