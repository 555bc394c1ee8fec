// Embedding gather, residual add and RMSNorm (f32 math). Launchers: CUDABackend+Elementwise.swift.
#include "common.cuh"

// out[t, :] = table[ids[t], :]; one block per token.
extern "C" __global__ void embedding(const void* table, int dt, const int* ids, float* out, int H) {
    long long row = ids[blockIdx.x];
    for (int i = threadIdx.x; i < H; i += blockDim.x) out[(long long)blockIdx.x * H + i] = load_w(table, row * H + i, dt);
}

// out = a + b over n elements.
extern "C" __global__ void add(const float* a, const float* b, float* out, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

// out[t] = w * (x[t] * rsqrt(mean(x[t]^2) + eps)); one block per row.
extern "C" __global__ void rms_norm(const float* x, const void* w, int dt, float* out, int H, float eps) {
    __shared__ float scratch[32];
    const float* xr = x + (long long)blockIdx.x * H;
    float ss = 0.f;
    for (int i = threadIdx.x; i < H; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, scratch);
    float r = 1.f / sqrtf(ss / (float)H + eps);
    for (int i = threadIdx.x; i < H; i += blockDim.x) out[(long long)blockIdx.x * H + i] = load_w(w, i, dt) * (xr[i] * r);
}
