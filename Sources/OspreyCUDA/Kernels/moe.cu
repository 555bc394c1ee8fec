// Mixture of experts, gpt-oss style: routing and the generic paths. Routing: top-k of the router
// logits, softmax over the k. Then only the routed experts run, grouped by expert so each weight
// row is read once per tile of pairs that share it:
//   moe_sort     (token, pick) pairs ordered by expert (counting sort in one block)
//   moe_matvec   for each row r of each pair's expert: out[p, r] = in[p / div] . W[e, r] + b[e, r];
//                dense (f32/f16/bf16) or MXFP4 rows, decoded 32 values at a time in registers
//                (e2m1 x 2^(scale - 127)); used for gate_up (in = x, div = k) and down (in = h, div = 1)
//   moe_matvec_rows4  decode-sized batches of dense experts: one warp per 4 rows of one pair
//   moe_swiglu   clamped SwiGLU on the interleaved gate (even) / up (odd) columns
//   moe_combine  out[t] = sum_j w[t, j] * y[t*k + j], in pick order (deterministic)
//   add_rms_norm_route  decode: residual add + RMSNorm + router + top-k softmax in one launch, and the
//                  normed rows' int8 form for the decode experts
//   moe_combine_add_rms_norm  decode: moe_combine + residual add + RMSNorm in one launch
// The fast paths for MXFP4 experts are in moe_decode.cu (decode-sized batches) and
// moe_prefill.cu (around the cuBLASLt GEMMs). Launchers: CUDABackend+Ops.swift, CUDABackend+GEMM.swift.
#include "common.cuh"

#define PAIR_TILE 8

// One warp: k rounds of a warp-wide argmax over the experts of `row` not yet taken (ties to the
// lower index), then softmax over the k picked logits into ids[:k], w[:k].
__device__ __forceinline__ void topk_softmax_warp(const float* row, int E, int k, int* ids, float* w, int lane) {
    unsigned long long takenLo = 0ull, takenHi = 0ull;  // per lane: which of its experts are taken (E <= 32 * 128)
    float picked = 0.f;
    for (int j = 0; j < k; j++) {
        float best = -INFINITY;
        int bestIdx = 0x7fffffff;
        for (int e = lane, slot = 0; e < E; e += 32, slot++) {
            bool taken = slot < 64 ? (takenLo >> slot) & 1ull : (takenHi >> (slot - 64)) & 1ull;
            if (!taken && (row[e] > best || (row[e] == best && e < bestIdx))) { best = row[e]; bestIdx = e; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ob = __shfl_xor_sync(0xffffffffu, best, o);
            int oi = __shfl_xor_sync(0xffffffffu, bestIdx, o);
            if (ob > best || (ob == best && oi < bestIdx)) { best = ob; bestIdx = oi; }
        }
        if ((bestIdx & 31) == lane) {
            int slot = bestIdx >> 5;
            if (slot < 64) takenLo |= 1ull << slot; else takenHi |= 1ull << (slot - 64);
        }
        if (lane == j) picked = best;
        if (lane == 0) ids[j] = bestIdx;
    }
    // picked logits sit in lanes 0..k-1 (k <= 32), the first (largest) in lane 0.
    float m = __shfl_sync(0xffffffffu, picked, 0);
    float ex = lane < k ? expf(picked - m) : 0.f;
    float sum = warp_sum(ex);
    if (lane < k) w[lane] = ex / sum;
}

// One warp per token: ids[t, :k], w[t, :k] = the top k of logits[t, :E], softmaxed.
extern "C" __global__ void topk_softmax(const float* logits, int T, int E, int k, int* ids, float* w) {
    pdl_trigger(); pdl_wait();
    int t = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (t >= T) return;
    topk_softmax_warp(logits + (long long)t * E, E, k, ids + t * k, w + t * k, lane);
}

// 8 bf16 weights (one 16-byte load) dotted with x[8c, 8c + 8) (f32, shared memory), as
// linear_bf16_decode does it (same products, same order).
__device__ __forceinline__ float bf16x8_dot_shared(uint4 p, const float4* x4, int c) {
    float wv[8];
    bf16x8_unpack(p, wv);
    float4 a = x4[2 * c], b = x4[2 * c + 1];
    return wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x + wv[5] * b.y + wv[6] * b.z + wv[7] * b.w;
}

// The MoE routing of decode-sized batches in one launch instead of three (add_rms_norm, the router
// linear, topk_softmax), the same arithmetic in the same order: one 1024-thread CTA per token row
// (H <= 4096, H % 8 == 0) computes sum = a + b and out = RMSNorm(sum) * w, keeps out in shared
// memory, then one warp per expert takes the router's logit (bf16 rows R [E, H] + bias, each lane
// the 8-value chunks lane + 32u as linear_bf16_decode, ROUTE_BATCH loads in flight) and warp 0 the
// top-k softmax while the other warps, when q8 is given, quantize the normed row for the int8
// expert kernels as quantize_q8 does (q8 [T, H], d8 [T, H / 32]: one launch less per layer). Each
// warp's first batch of router weights is loaded, and the rest prefetched into L2, before the
// kernel waits for the one ahead.
#define ROUTE_BATCH 6
extern "C" __global__ void __launch_bounds__(1024) add_rms_norm_route(const float* a, const float* b, const void* w, int dt, float* sum, float* out,
                                              const unsigned short* R, const void* rbias, int rbdt, int* ids, float* weights,
                                              int H, int E, int k, float eps, signed char* q8, float* d8) {
    pdl_trigger();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n8 = H / 8, warps = blockDim.x >> 5;
    uint4 first[ROUTE_BATCH];
    #pragma unroll
    for (int u = 0; u < ROUTE_BATCH; u++) {
        int c = lane + 32 * u;
        first[u] = warp < E && c < n8 ? ((const uint4*)(R + (long long)warp * H))[c] : make_uint4(0u, 0u, 0u, 0u);
    }
    for (long long i = 128LL * threadIdx.x; i < 2LL * E * H; i += 128LL * blockDim.x)
        asm volatile("prefetch.global.L2 [%0];" ::"l"((const char*)R + i));
    pdl_wait();
    __shared__ float scratch[32];
    extern __shared__ float4 xs4[];  // the normed row [H], then the logits [E]
    float* xs = (float*)xs4;
    float* logits = xs + H;
    long long base = (long long)blockIdx.x * H;
    float v[NORM_VPT];
    add_row(a, b, sum, base, H, v);
    norm_row(v, H, w, dt, out + base, xs, eps, scratch);
    __syncthreads();
    for (int e = warp; e < E; e += warps) {
        const uint4* row = (const uint4*)(R + (long long)e * H);
        float acc = 0.f;
        for (int c0 = 0; c0 < n8; c0 += 32 * ROUTE_BATCH) {
            uint4 p[ROUTE_BATCH];
            #pragma unroll
            for (int u = 0; u < ROUTE_BATCH; u++) {
                int c = c0 + lane + 32 * u;
                p[u] = e == warp && c0 == 0 ? first[u] : c < n8 ? row[c] : make_uint4(0u, 0u, 0u, 0u);
            }
            #pragma unroll
            for (int u = 0; u < ROUTE_BATCH; u++) {
                int c = c0 + lane + 32 * u;
                if (c < n8) acc += bf16x8_dot_shared(p[u], xs4, c);
            }
        }
        float s = warp_sum(acc);
        if (lane == 0) logits[e] = s + (rbias ? load_w(rbias, e, rbdt) : 0.f);
    }
    __syncthreads();
    if (warp == 0) topk_softmax_warp(logits, E, k, ids + blockIdx.x * k, weights + blockIdx.x * k, lane);
    else if (q8)
        for (int c = warp - 1; c < H / 32; c += warps - 1) quantize_block_q8(xs[32 * c + lane], q8 + base + 32 * c, d8 + base / 32 + c, lane);
}

// order[0:P] = pair indices sorted by expert id. One block; shared memory 2 * E ints.
extern "C" __global__ void moe_sort(const int* ids, int P, int E, int* order) {
    pdl_trigger(); pdl_wait();
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

// 32 consecutive weights of row `r` of expert `e` (R rows each) starting at column 32 * c, widened
// to f32; MXFP4 blocks as stored or tiled (see mx_block).
__device__ __forceinline__ void load32(float* w, const void* W, int wdt, const unsigned char* blocks, int tiled,
                                       const unsigned char* scales, int e, int r, int R, int cols, int c) {
    long long row = (long long)e * R + r;
    if (blocks) {
        int nb = cols / 32;
        uint4 p = ((const uint4*)blocks)[mx_block(e, r, c, R, nb, tiled)];
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

// Grid: x over rows (one warp per row), y over tiles of `tile` (<= PAIR_TILE) sorted pairs: 1 for
// decode-sized batches (more warps in flight), PAIR_TILE when pairs share experts. MXFP4 needs cols % 32 == 0.
extern "C" __global__ void moe_matvec(const float* in, int div, const int* ids, const int* order, int P, int tile,
                                      const void* W, int wdt, const unsigned char* blocks, int tiled, const unsigned char* scales,
                                      const void* bias, int bdt, float* out, int rows, int cols) {
    pdl_trigger(); pdl_wait();
    int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (r >= rows) return;
    int begin = blockIdx.y * tile, end = min(begin + tile, P);
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
            load32(w, W, wdt, blocks, tiled, scales, e, r, rows, cols, c);
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
    pdl_trigger(); pdl_wait();
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        h[i] = clamped_swiglu(gu[2 * i], gu[2 * i + 1], limit, alpha);
    }
}

// out[t, o] = sum_j w[t, j] * y[t*k + j, o].
extern "C" __global__ void moe_combine(const float* y, const float* w, float* out, int T, int k, int H) {
    pdl_trigger(); pdl_wait();
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (long long)T * H; i += (long long)gridDim.x * blockDim.x) {
        int t = (int)(i / H), o = (int)(i % H);
        float s = 0.f;
        for (int j = 0; j < k; j++) s += w[t * k + j] * y[((long long)t * k + j) * H + o];
        out[i] = s;
    }
}

// moe_combine and the add_rms_norm after it in one launch (the same arithmetic in the same order):
// sum[t] = a[t] + sum_j w[t, j] * y[t*k + j], out[t] = RMSNorm(sum[t]) * nw; one 1024-thread CTA
// per token row, H <= 4096.
extern "C" __global__ void moe_combine_add_rms_norm(const float* y, const float* w, int k, const float* a, const void* nw, int dt,
                                                    float* sum, float* out, int H, float eps) {
    pdl_trigger(); pdl_wait();
    __shared__ float scratch[32];
    int t = blockIdx.x;
    long long base = (long long)t * H;
    float v[NORM_VPT];
    #pragma unroll
    for (int q = 0; q < NORM_VPT; q++) {
        int i = threadIdx.x + q * blockDim.x;
        v[q] = 0.f;
        if (i < H) {
            float s = 0.f;
            for (int j = 0; j < k; j++) s += w[t * k + j] * y[((long long)t * k + j) * H + i];
            v[q] = a[base + i] + s;
            sum[base + i] = v[q];
        }
    }
    norm_row(v, H, nw, dt, out + base, nullptr, eps, scratch);
}

// Decode-sized batches (cols % 32 == 0): one warp computes ROWS_PER_WARP consecutive rows of one
// pair's expert, holding its 32-value slices of the input in registers so the input is read
// once per 4 weight rows instead of once per row. Grid: x over row groups, y over pairs.
#define ROWS_PER_WARP 4
extern "C" __global__ void moe_matvec_rows4(const float* in, int div, const int* ids,
                                            const void* W, int wdt, const unsigned char* blocks, int tiled, const unsigned char* scales,
                                            const void* bias, int bdt, float* out, int rows, int cols) {
    pdl_trigger(); pdl_wait();
    int r0 = ((blockIdx.x * blockDim.x + threadIdx.x) >> 5) * ROWS_PER_WARP, lane = threadIdx.x & 31;
    if (r0 >= rows) return;
    int p = blockIdx.y;
    int e = ids[p];
    const float* xr = in + (long long)(p / div) * cols;
    float acc[ROWS_PER_WARP];
    #pragma unroll
    for (int i = 0; i < ROWS_PER_WARP; i++) acc[i] = 0.f;
    for (int c = lane; c < cols / 32; c += 32) {
        float x[32];
        const float4* xv = (const float4*)(xr + c * 32);
        #pragma unroll
        for (int q = 0; q < 8; q++) {
            float4 a = xv[q];
            x[4 * q] = a.x; x[4 * q + 1] = a.y; x[4 * q + 2] = a.z; x[4 * q + 3] = a.w;
        }
        #pragma unroll
        for (int i = 0; i < ROWS_PER_WARP; i++) {
            if (r0 + i < rows) {
                float w[32];
                load32(w, W, wdt, blocks, tiled, scales, e, r0 + i, rows, cols, c);
                float s = 0.f;
                #pragma unroll
                for (int k = 0; k < 32; k++) s += w[k] * x[k];
                acc[i] += s;
            }
        }
    }
    #pragma unroll
    for (int i = 0; i < ROWS_PER_WARP; i++) {
        float s = warp_sum(acc[i]);
        if (lane == 0 && r0 + i < rows) out[(long long)p * rows + r0 + i] = s + load_w(bias, (long long)e * rows + r0 + i, bdt);
    }
}
