// Mixture of experts, gpt-oss style: routing (top-k of the router logits, softmax over the k),
// then only the routed experts. For each (token, pick) pair: gate_up row dots (dense or MXFP4,
// decoded in registers: e2m1 x 2^(scale-127)), clamped SwiGLU on the interleaved gate/up
// columns, then the down projection weighted and summed over a token's picks with the expert
// biases. One warp per output element. Launcher: CUDABackend+MoE.swift.
#include "common.cuh"

// One thread per token: ids[t, :k] and w[t, :k].
extern "C" __global__ void topk_softmax(const float* logits, int T, int E, int k, int* ids, float* w) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T) return;
    const float* row = logits + (long long)t * E;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int p = 0; p < j; p++) taken |= ids[t * k + p] == e;
            if (!taken && (best < 0 || row[e] > row[best])) best = e;
        }
        ids[t * k + j] = best;
    }
    float m = row[ids[t * k]];
    for (int j = 1; j < k; j++) m = fmaxf(m, row[ids[t * k + j]]);
    float sum = 0.f;
    for (int j = 0; j < k; j++) { float e = expf(row[ids[t * k + j]] - m); w[t * k + j] = e; sum += e; }
    for (int j = 0; j < k; j++) w[t * k + j] /= sum;
}

// Warp dot of x[0:cols] with row `row` of a dense [rows, cols] matrix of dtype dt.
__device__ __forceinline__ float dot_dense(const float* x, const void* W, int dt, long long row, int cols, int lane) {
    float acc = 0.f;
    for (int i = lane; i < cols; i += 32) acc += load_w(W, row * cols + i, dt) * x[i];
    return warp_sum(acc);
}

// Warp dot of x[0:cols] with row `row` of MXFP4 blocks [rows, cols/32, 16] and scales [rows, cols/32].
__device__ __forceinline__ float dot_mxfp4(const float* x, const unsigned char* blocks, const unsigned char* scales,
                                           long long row, int cols, int lane) {
    int nb = cols / 32;
    float acc = 0.f;
    for (int b = lane; b < nb; b += 32) {
        const unsigned char* bytes = blocks + (row * nb + b) * 16;
        float s = e8m0_to_f32(scales[row * nb + b]);
        const float* xb = x + b * 32;
        #pragma unroll
        for (int i = 0; i < 16; i++) {
            unsigned int byte = bytes[i];
            acc += e2m1_to_f32(byte & 15u) * s * xb[2 * i] + e2m1_to_f32(byte >> 4) * s * xb[2 * i + 1];
        }
    }
    return warp_sum(acc);
}

// gu[p, r] = x[p / k] . Wgu[ids[p], r] + bgu[ids[p], r] for pairs p < P and rows r < twoI.
// blocks == 0 selects the dense weights W (dtype wdt).
extern "C" __global__ void moe_gate_up(const float* x, const int* ids, const void* W, int wdt,
                                       const unsigned char* blocks, const unsigned char* scales,
                                       const void* bias, int bdt, float* gu, int P, int k, int H, int twoI) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (warp >= (long long)P * twoI) return;
    int p = (int)(warp / twoI), r = (int)(warp % twoI);
    int e = ids[p];
    const float* xr = x + (long long)(p / k) * H;
    long long row = (long long)e * twoI + r;
    float s = blocks ? dot_mxfp4(xr, blocks, scales, row, H, lane) : dot_dense(xr, W, wdt, row, H, lane);
    if (lane == 0) gu[(long long)p * twoI + r] = s + load_w(bias, row, bdt);
}

// h[p, c] = min(g, limit) * sigmoid(alpha * min(g, limit)) * (clamp(u, -limit, limit) + 1), g = gu[p, 2c], u = gu[p, 2c + 1].
extern "C" __global__ void moe_swiglu(const float* gu, float* h, long long n /* P * I */, float limit, float alpha) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float g = fminf(gu[2 * i], limit);
        float u = fminf(fmaxf(gu[2 * i + 1], -limit), limit);
        h[i] = g / (1.f + expf(-alpha * g)) * (u + 1.f);
    }
}

// out[t, o] = sum_j w[t, j] * (h[t*k + j] . Wd[ids[t, j], o] + bd[ids[t, j], o]).
extern "C" __global__ void moe_down(const float* h, const int* ids, const float* w, const void* W, int wdt,
                                    const unsigned char* blocks, const unsigned char* scales,
                                    const void* bias, int bdt, float* out, int T, int k, int I, int H) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (warp >= (long long)T * H) return;
    int t = (int)(warp / H), o = (int)(warp % H);
    float total = 0.f;
    for (int j = 0; j < k; j++) {
        int p = t * k + j, e = ids[p];
        long long row = (long long)e * H + o;
        const float* hr = h + (long long)p * I;
        float s = blocks ? dot_mxfp4(hr, blocks, scales, row, I, lane) : dot_dense(hr, W, wdt, row, I, lane);
        total += w[p] * (s + load_w(bias, row, bdt));
    }
    if (lane == 0) out[(long long)t * H + o] = total;
}
