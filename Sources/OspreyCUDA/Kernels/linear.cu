// Dense linear layers: out[t, o] = x[t, :] . W[o, :] + b[o], f32 activations, f32/f16/bf16
// weights, f32 accumulation. One warp per output row and tile of TILE tokens, so each weight row
// is read once per tile (decode reads every weight exactly once). `linear_bf16x8` is the fast
// path for bf16 weights with I % 8 == 0: each lane loads 8 weights (16 bytes) at a time;
// `linear_bf16_decode_nN` the one for 1-4 tokens: each lane issues all N of its 16-byte loads of
// the row before using any (N = ceil(I / 256), rows up to 4,096 inputs) while the block stages x
// in shared memory, so a warp waits for memory once (linear_bf16_decode_direct_nN: x read from
// global memory instead, for 4 tokens); `linear_bf16_resident_nN` the one for 1 token on sm_90
// when the whole matrix fits the SMs' shared memory (q/k/v, o_proj): each block copies its rows
// there with one bulk copy before it waits for the kernel ahead, so the attention and norm kernels
// ahead hide the read. Longer rows take linear_bf16x8. Prefill-sized
// inputs go through cuBLASLt instead (CUDABackend+GEMM.swift), with `to_bf16` and `add_bias`.
// Measured on the H200 (2026-11-29, 20b shape, engine batch 1 with graphs): staging x with 8 loads
// in flight per thread instead of a load-store loop took batch 1 from 331.5 to 343.7 tok/s and
// batch 4 from 615.5 to 656.6; a variant with one CTA of 8 warps per SM looping over rows (two
// rows in flight per warp, x staged once) was slower (328 vs 334 at batch 1) and was dropped.
// The resident kernels (benchmarks/kernels/resident_kernels.cu, H200, 2026-11-30): after 8 µs of
// other work a linear adds 5.1 / 5.0 µs (o_proj / q/k/v) instead of 9.8 / 11.8 with 1-CTA work
// ahead, 7.7 / 7.9 instead of 12.3 / 14.6 when attention-like work fills the SMs; engine batch 1
// +2.6% (20b), +3.1% (120b).
// Launcher: CUDABackend+Ops.swift.
#include "common.cuh"

#define TILE 8

extern "C" __global__ void linear(const float* x, const void* W, int wdt, const void* bias, int bdt, float* out,
                                  int T, int O, int I) {
    pdl_trigger(); pdl_wait();
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
    pdl_trigger(); pdl_wait();
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
        bf16x8_unpack(p, w);
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

// 8 bf16 weights (one 16-byte load) dotted with x[0:8] for each of the T <= DEC_T tokens.
#define DEC_T 4
__device__ __forceinline__ void bf16x8_dot(uint4 p, const float* x, long long I, int T, float* acc) {
    float w[8];
    bf16x8_unpack(p, w);
    #pragma unroll
    for (int j = 0; j < DEC_T; j++) {
        if (j < T) {
            const float4* xv = (const float4*)(x + j * I);
            float4 a = xv[0], b = xv[1];
            acc[j] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y + w[6] * b.z + w[7] * b.w;
        }
    }
}

// Copies x [n4 float4s] into shared memory with up to 8 loads in flight per thread: a plain
// load-then-store loop waits for L2 once per iteration (6-8 times for a 2,880-4,096 input row).
__device__ __forceinline__ void stage_x(float4* sx4, const float4* xg, int n4) {
    for (int base = threadIdx.x; base < n4; base += 8 * blockDim.x) {
        float4 v[8];
        #pragma unroll
        for (int k = 0; k < 8; k++) {
            int i = base + k * blockDim.x;
            if (i < n4) v[k] = xg[i];
        }
        #pragma unroll
        for (int k = 0; k < 8; k++) {
            int i = base + k * blockDim.x;
            if (i < n4) sx4[i] = v[k];
        }
    }
}

// One warp per output row of up to 3 matrices sharing the input (q, k and v: one launch). Rows
// [0, O0) are W0's, then W1's, then W2's. Each lane issues all NL of its 16-byte weight loads
// first; with STAGED the block stages x [T, I] in shared memory meanwhile, without it each lane
// reads its x chunks from global memory (L1 hits after an SM's first warp), no barrier.
template <int NL, bool STAGED>
__device__ __forceinline__ void linear_decode_preloaded(const float* x, const unsigned short* W0, const unsigned short* W1,
                                                        const unsigned short* W2, const void* b0, const void* b1, const void* b2,
                                                        int bdt, float* out0, float* out1, float* out2, int O0, int O1, int O2,
                                                        int T, int I) {
    extern __shared__ float4 sx4[];
    int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    bool live = r < O0 + O1 + O2;
    int o = r;
    const unsigned short* W = W0;
    const void* bias = b0;
    float* out = out0;
    int O = O0;
    if (r >= O0 + O1) { o = r - O0 - O1; W = W2; bias = b2; out = out2; O = O2; }
    else if (r >= O0) { o = r - O0; W = W1; bias = b1; out = out1; O = O1; }
    const uint4* row = (const uint4*)(W + (long long)(live ? o : 0) * I);
    int n8 = I / 8;
    uint4 p[NL];
    #pragma unroll
    for (int u = 0; u < NL; u++) {
        int c = lane + 32 * u;
        p[u] = live && c < n8 ? row[c] : make_uint4(0u, 0u, 0u, 0u);
    }
    pdl_wait();  // weights requested; x and the outputs belong to the kernels around this one
    if (STAGED) {
        stage_x(sx4, (const float4*)x, T * I / 4);
        __syncthreads();
    }
    if (!live) return;
    const float* sx = STAGED ? (const float*)sx4 : x;
    float acc[DEC_T];
    #pragma unroll
    for (int j = 0; j < DEC_T; j++) acc[j] = 0.f;
    #pragma unroll
    for (int u = 0; u < NL; u++) {
        int c = lane + 32 * u;
        if (c < n8) bf16x8_dot(p[u], sx + (long long)c * 8, I, T, acc);
    }
    float b = bias ? load_w(bias, o, bdt) : 0.f;
    #pragma unroll
    for (int j = 0; j < DEC_T; j++) {
        float s = warp_sum(acc[j]);
        if (lane == 0 && j < T) out[(long long)j * O + o] = s + b;
    }
}

#define LINEAR_DECODE_ARGS const float* x, const unsigned short* W0, const unsigned short* W1, const unsigned short* W2, \
    const void* b0, const void* b1, const void* b2, int bdt, float* out0, float* out1, float* out2, int O0, int O1, int O2, int T, int I
#define LINEAR_DECODE_PASS x, W0, W1, W2, b0, b1, b2, bdt, out0, out1, out2, O0, O1, O2, T, I
extern "C" __global__ void linear_bf16_decode_n4(LINEAR_DECODE_ARGS) { pdl_trigger(); linear_decode_preloaded<4, true>(LINEAR_DECODE_PASS); }
extern "C" __global__ void linear_bf16_decode_n8(LINEAR_DECODE_ARGS) { pdl_trigger(); linear_decode_preloaded<8, true>(LINEAR_DECODE_PASS); }
extern "C" __global__ void linear_bf16_decode_n12(LINEAR_DECODE_ARGS) { pdl_trigger(); linear_decode_preloaded<12, true>(LINEAR_DECODE_PASS); }
extern "C" __global__ void linear_bf16_decode_n16(LINEAR_DECODE_ARGS) { pdl_trigger(); linear_decode_preloaded<16, true>(LINEAR_DECODE_PASS); }
// x read from global memory: faster for 4 tokens over rows of up to 3,072 inputs (see the launcher).
extern "C" __global__ void linear_bf16_decode_direct_n4(LINEAR_DECODE_ARGS) { pdl_trigger(); linear_decode_preloaded<4, false>(LINEAR_DECODE_PASS); }
extern "C" __global__ void linear_bf16_decode_direct_n8(LINEAR_DECODE_ARGS) { pdl_trigger(); linear_decode_preloaded<8, false>(LINEAR_DECODE_PASS); }
extern "C" __global__ void linear_bf16_decode_direct_n12(LINEAR_DECODE_ARGS) { pdl_trigger(); linear_decode_preloaded<12, false>(LINEAR_DECODE_PASS); }

// One token, rows split over the grid: block b owns rows [b * R, b * R + R) of W0 | W1 | W2 (R * I
// * 2 bytes of dynamic shared memory, one bulk copy per matrix it touches, all requested before
// the wait); after it each lane loads its NL x chunks into registers at once (one L2 round trip),
// then each warp dots rows w, w + warps, w + 2 * warps (blockDim = 32 * ceil(R / 3)) from shared
// memory. The same sums in the same order as linear_decode_preloaded (equal outputs in
// benchmarks/kernels/resident_kernels.cu).
template <int NL>
__device__ __forceinline__ void linear_resident(LINEAR_DECODE_ARGS, int R) {
    extern __shared__ __align__(128) unsigned char srows[];
    __shared__ __align__(8) unsigned long long bar;
    int rows = O0 + O1 + O2, r0 = blockIdx.x * R, r1 = min(r0 + R, rows);
    long long rowBytes = (long long)I * 2;
    if (threadIdx.x == 0) {
        mbar_init(&bar, 1);
        mbar_init_fence();
        mbar_expect_tx(&bar, (unsigned)((r1 - r0) * rowBytes));
        int base[4] = {0, O0, O0 + O1, rows};
        const unsigned short* Ws[3] = {W0, W1, W2};
        for (int m = 0; m < 3; m++) {
            int a = max(r0, base[m]), b = min(r1, base[m + 1]);
            if (a < b) bulk_copy(srows + (a - r0) * rowBytes, Ws[m] + (long long)(a - base[m]) * I, (unsigned)((b - a) * rowBytes), &bar);
        }
    }
    __syncthreads();
    pdl_wait();  // weights requested; x and the outputs belong to the kernels around this one
    int warps = blockDim.x >> 5, w = threadIdx.x >> 5, lane = threadIdx.x & 31, n8 = I / 8;
    float4 xr[NL][2];
    #pragma unroll
    for (int u = 0; u < NL; u++) {
        int c = lane + 32 * u;
        if (c < n8) { xr[u][0] = ((const float4*)x)[2 * c]; xr[u][1] = ((const float4*)x)[2 * c + 1]; }
        else xr[u][0] = xr[u][1] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
    mbar_wait(&bar, 0);
    #pragma unroll
    for (int k = 0; k < 3; k++) {
        int r = r0 + w + k * warps;
        if (r >= r1) break;
        const uint4* row = (const uint4*)(srows + (r - r0) * rowBytes);
        float acc = 0.f;
        #pragma unroll
        for (int u = 0; u < NL; u++) {
            int c = lane + 32 * u;
            if (c < n8) {
                float wv[8];
                bf16x8_unpack(row[c], wv);
                float4 a = xr[u][0], b = xr[u][1];
                acc += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x + wv[5] * b.y + wv[6] * b.z + wv[7] * b.w;
            }
        }
        const void* bias = b0; float* out = out0; int o = r;
        if (r >= O0 + O1) { o = r - O0 - O1; bias = b2; out = out2; }
        else if (r >= O0) { o = r - O0; bias = b1; out = out1; }
        float b = bias ? load_w(bias, o, bdt) : 0.f;
        float s = warp_sum(acc);
        if (lane == 0) out[o] = s + b;
    }
}
extern "C" __global__ void linear_bf16_resident_n4(LINEAR_DECODE_ARGS, int R) { pdl_trigger(); linear_resident<4>(LINEAR_DECODE_PASS, R); }
extern "C" __global__ void linear_bf16_resident_n8(LINEAR_DECODE_ARGS, int R) { pdl_trigger(); linear_resident<8>(LINEAR_DECODE_PASS, R); }
extern "C" __global__ void linear_bf16_resident_n12(LINEAR_DECODE_ARGS, int R) { pdl_trigger(); linear_resident<12>(LINEAR_DECODE_PASS, R); }
extern "C" __global__ void linear_bf16_resident_n16(LINEAR_DECODE_ARGS, int R) { pdl_trigger(); linear_resident<16>(LINEAR_DECODE_PASS, R); }

// y = bf16(x), round to nearest even (NaN kept).
extern "C" __global__ void to_bf16(const float* x, unsigned short* y, long long n) {
    pdl_trigger(); pdl_wait();
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        y[i] = f32_to_bf16_rne(x[i]);
    }
}

// y[t, o] += b[o] over n = T * O elements.
extern "C" __global__ void add_bias(float* y, const void* b, int bdt, long long n, int O) {
    pdl_trigger(); pdl_wait();
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] += load_w(b, i % O, bdt);
}
