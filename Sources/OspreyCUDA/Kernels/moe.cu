// Mixture of experts, gpt-oss style. Routing: top-k of the router logits, softmax over the k.
// Then only the routed experts run, grouped by expert so each weight row is read once per tile
// of pairs that share it:
//   moe_sort     (token, pick) pairs ordered by expert (counting sort in one block)
//   moe_matvec   for each row r of each pair's expert: out[p, r] = in[p / div] . W[e, r] + b[e, r];
//                dense (f32/f16/bf16) or MXFP4 rows, decoded 32 values at a time in registers
//                (e2m1 x 2^(scale - 127)); used for gate_up (in = x, div = k) and down (in = h, div = 1)
//   moe_swiglu   clamped SwiGLU on the interleaved gate (even) / up (odd) columns
//   moe_combine  out[t] = sum_j w[t, j] * y[t*k + j], in pick order (deterministic)
// Launcher: CUDABackend+Ops.swift.
#include "common.cuh"

#define PAIR_TILE 8

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

// order[0:P] = pair indices sorted by expert id. One block; shared memory 2 * E ints.
extern "C" __global__ void moe_sort(const int* ids, int P, int E, int* order) {
    extern __shared__ int counts[];  // counts[E], then cursors[E]
    int* cursor = counts + E;
    for (int e = threadIdx.x; e < E; e += blockDim.x) counts[e] = 0;
    __syncthreads();
    for (int p = threadIdx.x; p < P; p += blockDim.x) atomicAdd(&counts[ids[p]], 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        int run = 0;
        for (int e = 0; e < E; e++) { cursor[e] = run; run += counts[e]; }
    }
    __syncthreads();
    for (int p = threadIdx.x; p < P; p += blockDim.x) order[atomicAdd(&cursor[ids[p]], 1)] = p;
}

// 32 consecutive weights of row `row` starting at column 32 * c, widened to f32.
__device__ __forceinline__ void load32(float* w, const void* W, int wdt, const unsigned char* blocks,
                                       const unsigned char* scales, long long row, int cols, int c) {
    if (blocks) {
        int nb = cols / 32;
        uint4 p = *(const uint4*)(blocks + (row * nb + c) * 16);
        float s = e8m0_to_f32(scales[row * nb + c]);
        unsigned int words[4] = {p.x, p.y, p.z, p.w};
        #pragma unroll
        for (int q = 0; q < 4; q++) {
            #pragma unroll
            for (int b = 0; b < 4; b++) {
                unsigned int byte = (words[q] >> (8 * b)) & 0xffu;
                w[8 * q + 2 * b] = e2m1_to_f32(byte & 15u) * s;
                w[8 * q + 2 * b + 1] = e2m1_to_f32(byte >> 4) * s;
            }
        }
    } else if (wdt == DT_BF16) {
        const uint4* p = (const uint4*)((const unsigned short*)W + row * cols + (long long)c * 32);
        #pragma unroll
        for (int q = 0; q < 4; q++) {
            uint4 v = p[q];
            unsigned int words[4] = {v.x, v.y, v.z, v.w};
            #pragma unroll
            for (int h = 0; h < 4; h++) {
                w[8 * q + 2 * h] = __uint_as_float(words[h] << 16);
                w[8 * q + 2 * h + 1] = __uint_as_float(words[h] & 0xffff0000u);
            }
        }
    } else {
        #pragma unroll
        for (int i = 0; i < 32; i++) w[i] = load_w(W, row * cols + (long long)c * 32 + i, wdt);
    }
}

// Grid: x over rows (one warp per row), y over tiles of PAIR_TILE sorted pairs. MXFP4 needs cols % 32 == 0.
extern "C" __global__ void moe_matvec(const float* in, int div, const int* ids, const int* order, int P,
                                      const void* W, int wdt, const unsigned char* blocks, const unsigned char* scales,
                                      const void* bias, int bdt, float* out, int rows, int cols) {
    int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (r >= rows) return;
    int begin = blockIdx.y * PAIR_TILE, end = min(begin + PAIR_TILE, P);
    int pos = begin;
    while (pos < end) {
        int e = ids[order[pos]];
        int runEnd = pos + 1;
        while (runEnd < end && ids[order[runEnd]] == e) runEnd++;
        int n = runEnd - pos;
        long long row = (long long)e * rows + r;
        float acc[PAIR_TILE];
        #pragma unroll
        for (int j = 0; j < PAIR_TILE; j++) acc[j] = 0.f;
        if (cols % 32 != 0) {  // dense rows of odd length: one weight per lane at a time
            for (int i = lane; i < cols; i += 32) {
                float wv = load_w(W, row * cols + i, wdt);
                #pragma unroll
                for (int j = 0; j < PAIR_TILE; j++)
                    if (j < n) acc[j] += wv * in[(long long)(order[pos + j] / div) * cols + i];
            }
        }
        for (int c = lane; cols % 32 == 0 && c < cols / 32; c += 32) {
            float w[32];
            load32(w, W, wdt, blocks, scales, row, cols, c);
            #pragma unroll
            for (int j = 0; j < PAIR_TILE; j++) {
                if (j < n) {
                    const float4* xv = (const float4*)(in + (long long)(order[pos + j] / div) * cols + c * 32);
                    float s = 0.f;
                    #pragma unroll
                    for (int q = 0; q < 8; q++) {
                        float4 a = xv[q];
                        s += w[4 * q] * a.x + w[4 * q + 1] * a.y + w[4 * q + 2] * a.z + w[4 * q + 3] * a.w;
                    }
                    acc[j] += s;
                }
            }
        }
        float b = load_w(bias, row, bdt);
        #pragma unroll
        for (int j = 0; j < PAIR_TILE; j++) {
            float s = warp_sum(acc[j]);
            if (lane == 0 && j < n) out[(long long)order[pos + j] * rows + r] = s + b;
        }
        pos = runEnd;
    }
}

// h[p, c] = min(g, limit) * sigmoid(alpha * min(g, limit)) * (clamp(u, -limit, limit) + 1), g = gu[p, 2c], u = gu[p, 2c + 1].
extern "C" __global__ void moe_swiglu(const float* gu, float* h, long long n /* P * I */, float limit, float alpha) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float g = fminf(gu[2 * i], limit);
        float u = fminf(fmaxf(gu[2 * i + 1], -limit), limit);
        h[i] = g / (1.f + expf(-alpha * g)) * (u + 1.f);
    }
}

// out[t, o] = sum_j w[t, j] * y[t*k + j, o].
extern "C" __global__ void moe_combine(const float* y, const float* w, float* out, int T, int k, int H) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (long long)T * H; i += (long long)gridDim.x * blockDim.x) {
        int t = (int)(i / H), o = (int)(i % H);
        float s = 0.f;
        for (int j = 0; j < k; j++) s += w[t * k + j] * y[((long long)t * k + j) * H + o];
        out[i] = s;
    }
}
