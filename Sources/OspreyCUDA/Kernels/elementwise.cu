// Embedding gather, residual add and RMSNorm (f32 math). rms_norm_rows / add_rms_norm: one block
// of 1024 threads per row holding up to 4 values each in registers (rows up to 4,096), so x is
// read once and no thread walks a long serial loop; rms_norm is the generic fallback.
// Launchers: CUDABackend+Ops.swift.
#include "common.cuh"

// out[t, :] = table[ids[t], :]; one block per token. An id outside [0, V) gives a zero row (ids
// staged from the host are checked there; ids made on the device come from argmax).
extern "C" __global__ void embedding(const void* table, int dt, const int* ids, float* out, int H, int V) {
    pdl_trigger(); pdl_wait();
    long long row = ids[blockIdx.x];
    bool ok = row >= 0 && row < V;
    for (int i = threadIdx.x; i < H; i += blockDim.x) out[(long long)blockIdx.x * H + i] = ok ? load_w(table, row * H + i, dt) : 0.f;
}

// out = a + b over n elements.
extern "C" __global__ void add(const float* a, const float* b, float* out, long long n) {
    pdl_trigger(); pdl_wait();
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

// out[t] = w * (x[t] * rsqrt(mean(x[t]^2) + eps)); one block per row.
extern "C" __global__ void rms_norm(const float* x, const void* w, int dt, float* out, int H, float eps) {
    pdl_trigger(); pdl_wait();
    __shared__ float scratch[32];
    const float* xr = x + (long long)blockIdx.x * H;
    float ss = 0.f;
    for (int i = threadIdx.x; i < H; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, scratch);
    float r = 1.f / sqrtf(ss / (float)H + eps);
    for (int i = threadIdx.x; i < H; i += blockDim.x) out[(long long)blockIdx.x * H + i] = load_w(w, i, dt) * (xr[i] * r);
}

// out[t] = w * (x[t] * rsqrt(mean(x[t]^2) + eps)); one 1024-thread block per row, H <= 4096.
extern "C" __global__ void rms_norm_rows(const float* x, const void* w, int dt, float* out, int H, float eps) {
    pdl_trigger(); pdl_wait();
    __shared__ float scratch[32];
    const float* xr = x + (long long)blockIdx.x * H;
    float v[NORM_VPT];
    #pragma unroll
    for (int k = 0; k < NORM_VPT; k++) {
        int i = threadIdx.x + k * blockDim.x;
        v[k] = i < H ? xr[i] : 0.f;
    }
    norm_row(v, H, w, dt, out + (long long)blockIdx.x * H, nullptr, eps, scratch);
}

// sum[t] = a[t] + b[t]; out[t] = RMSNorm(sum[t]) * w; one 1024-thread block per row, H <= 4096.
extern "C" __global__ void add_rms_norm(const float* a, const float* b, const void* w, int dt, float* sum, float* out, int H, float eps) {
    pdl_trigger(); pdl_wait();
    __shared__ float scratch[32];
    long long base = (long long)blockIdx.x * H;
    float v[NORM_VPT];
    add_row(a, b, sum, base, H, v);
    norm_row(v, H, w, dt, out + base, nullptr, eps, scratch);
}
