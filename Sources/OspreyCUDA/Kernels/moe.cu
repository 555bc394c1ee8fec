// Mixture of experts, gpt-oss style. Routing: top-k of the router logits, softmax over the k.
// Then only the routed experts run, grouped by expert so each weight row is read once per tile
// of pairs that share it:
//   moe_sort     (token, pick) pairs ordered by expert (counting sort in one block)
//   moe_matvec   for each row r of each pair's expert: out[p, r] = in[p / div] . W[e, r] + b[e, r];
//                dense (f32/f16/bf16) or MXFP4 rows, decoded 32 values at a time in registers
//                (e2m1 x 2^(scale - 127)); used for gate_up (in = x, div = k) and down (in = h, div = 1)
//   moe_swiglu   clamped SwiGLU on the interleaved gate (even) / up (odd) columns
//   moe_combine  out[t] = sum_j w[t, j] * y[t*k + j], in pick order (deterministic)
// Decode-sized batches take moe_mxfp4_rows (packed experts) or moe_matvec_rows4 (dense experts):
// one warp per 4 rows of one pair, the input slice in registers; the down projection can apply the
// clamped SwiGLU while loading its input, so h never exists. Prefill-sized batches go through
// cuBLASLt (CUDABackend+GEMM.swift) with the helpers at the end of this file: gather the routed
// rows in expert order as bf16, expand one expert's MXFP4 weights to bf16, bias + SwiGLU, and
// bias + scatter back to pick order.
// Launchers: CUDABackend+Ops.swift, CUDABackend+GEMM.swift.
#include "common.cuh"

#define PAIR_TILE 8

// One warp per token: k rounds of a warp-wide argmax over the experts not yet taken (ties to
// the lower index), then softmax over the k picked logits. ids[t, :k], w[t, :k].
extern "C" __global__ void topk_softmax(const float* logits, int T, int E, int k, int* ids, float* w) {
    int t = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (t >= T) return;
    const float* row = logits + (long long)t * E;
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
        if (lane == 0) ids[t * k + j] = bestIdx;
    }
    // picked logits sit in lanes 0..k-1 (k <= 32), the first (largest) in lane 0.
    float m = __shfl_sync(0xffffffffu, picked, 0);
    float ex = lane < k ? expf(picked - m) : 0.f;
    float sum = warp_sum(ex);
    if (lane < k) w[t * k + lane] = ex / sum;
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

// Grid: x over rows (one warp per row), y over tiles of `tile` (<= PAIR_TILE) sorted pairs: 1 for
// decode-sized batches (more warps in flight), PAIR_TILE when pairs share experts. MXFP4 needs cols % 32 == 0.
extern "C" __global__ void moe_matvec(const float* in, int div, const int* ids, const int* order, int P, int tile,
                                      const void* W, int wdt, const unsigned char* blocks, const unsigned char* scales,
                                      const void* bias, int bdt, float* out, int rows, int cols) {
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

// Decode-sized batches (cols % 32 == 0): one warp computes ROWS_PER_WARP consecutive rows of one
// pair's expert, holding its 32-value slices of the input in registers so the input is read
// once per 4 weight rows instead of once per row. Grid: x over row groups, y over pairs.
#define ROWS_PER_WARP 4
extern "C" __global__ void moe_matvec_rows4(const float* in, int div, const int* ids,
                                            const void* W, int wdt, const unsigned char* blocks, const unsigned char* scales,
                                            const void* bias, int bdt, float* out, int rows, int cols) {
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
                load32(w, W, wdt, blocks, scales, (long long)e * rows + r0 + i, cols, c);
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

// 32 MXFP4 values of one block (16 bytes, low nibble first) dotted with x[0:32], without the block
// scale. Each e2m1 code is placed in an f32 as a subnormal (magnitude bits at 22..24, sign at 31:
// exactly value * 2^-126) and rescaled exactly by 2^126: no table, no branch.
__device__ __forceinline__ float mxfp4_dot32(uint4 b, const float* x) {
    const float two126 = __uint_as_float(0x7e800000u);
    unsigned int words[4] = {b.x, b.y, b.z, b.w};
    float s0 = 0.f, s1 = 0.f;
    #pragma unroll
    for (int q = 0; q < 4; q++) {
        unsigned int w = words[q];
        #pragma unroll
        for (int n = 0; n < 8; n++) {
            // Constant shifts: nibble n's magnitude bits to 22..24 and its sign bit to 31, merged by one LOP3.
            unsigned int mag = 4 * n <= 22 ? w << (22 - 4 * n) : w >> (4 * n - 22);
            unsigned int sgn = w << (28 - 4 * n);
            float v = __uint_as_float((mag & 0x01c00000u) | (sgn & 0x80000000u)) * two126;
            if (n & 1) s1 += v * x[8 * q + n]; else s0 += v * x[8 * q + n];
        }
    }
    return s0 + s1;
}

__device__ __forceinline__ float clamped_swiglu(float g, float u, float limit, float alpha) {
    g = fminf(g, limit);
    u = fminf(fmaxf(u, -limit), limit);
    return g / (1.f + expf(-alpha * g)) * (u + 1.f);
}

// MXFP4 experts, decode-sized batches: one warp computes 4 consecutive rows of pair p's expert
// (grid x over row groups, y over pairs). Each lane owns the 32-value blocks c = lane + 32u of the
// rows (u < NC, NC = ceil(cols / 1024)) and issues all 4 x NC of their 16-byte loads before using
// any, so the warp waits for memory once. With swiglu_in the input is gu [P, 2 * cols] (gate even,
// up odd) and h = clamped SwiGLU is computed while loading it.
#define MX_ROWS 4
template <int NC>
__device__ __forceinline__ void mxfp4_rows(const float* in, int div, int swiglu_in, float limit, float alpha, const int* ids,
                                           const unsigned char* blocks, const unsigned char* scales,
                                           const void* bias, int bdt, float* out, int rows, int cols) {
    int r0 = ((blockIdx.x * blockDim.x + threadIdx.x) >> 5) * MX_ROWS, lane = threadIdx.x & 31;
    if (r0 >= rows) return;
    int p = blockIdx.y, e = ids[p], nb = cols / 32;
    int nr = min(MX_ROWS, rows - r0);
    long long row0 = (long long)e * rows + r0;
    const uint4* wb = (const uint4*)blocks + row0 * nb;
    const unsigned char* sb = scales + row0 * nb;
    uint4 w[NC][MX_ROWS];
    unsigned char sc[NC][MX_ROWS];
    #pragma unroll
    for (int u = 0; u < NC; u++) {
        int c = lane + 32 * u;
        #pragma unroll
        for (int i = 0; i < MX_ROWS; i++) {
            int ri = i < nr ? i : 0;  // rows past the end re-read row 0 and are dropped
            bool ok = c < nb;
            w[u][i] = ok ? wb[(long long)ri * nb + c] : make_uint4(0u, 0u, 0u, 0u);
            sc[u][i] = ok ? sb[(long long)ri * nb + c] : (unsigned char)0;
        }
    }
    float acc[MX_ROWS];
    #pragma unroll
    for (int i = 0; i < MX_ROWS; i++) acc[i] = 0.f;
    #pragma unroll
    for (int u = 0; u < NC; u++) {
        int c = lane + 32 * u;
        if (c >= nb) break;
        float x[32];
        if (swiglu_in) {
            const float4* g = (const float4*)(in + (long long)(p / div) * 2 * cols + c * 64);
            #pragma unroll
            for (int q = 0; q < 16; q++) {
                float4 a = g[q];
                x[2 * q] = clamped_swiglu(a.x, a.y, limit, alpha);
                x[2 * q + 1] = clamped_swiglu(a.z, a.w, limit, alpha);
            }
        } else {
            const float4* xv = (const float4*)(in + (long long)(p / div) * cols + c * 32);
            #pragma unroll
            for (int q = 0; q < 8; q++) {
                float4 a = xv[q];
                x[4 * q] = a.x; x[4 * q + 1] = a.y; x[4 * q + 2] = a.z; x[4 * q + 3] = a.w;
            }
        }
        #pragma unroll
        for (int i = 0; i < MX_ROWS; i++) acc[i] += mxfp4_dot32(w[u][i], x) * e8m0_to_f32(sc[u][i]);
    }
    #pragma unroll
    for (int i = 0; i < MX_ROWS; i++) {
        float s = warp_sum(acc[i]);
        if (lane == 0 && i < nr) out[(long long)p * rows + r0 + i] = s + load_w(bias, row0 + i, bdt);
    }
}

#define MXFP4_ROWS_ARGS const float* in, int div, int swiglu_in, float limit, float alpha, const int* ids, \
    const unsigned char* blocks, const unsigned char* scales, const void* bias, int bdt, float* out, int rows, int cols
#define MXFP4_ROWS_PASS in, div, swiglu_in, limit, alpha, ids, blocks, scales, bias, bdt, out, rows, cols
extern "C" __global__ void moe_mxfp4_rows_c1(MXFP4_ROWS_ARGS) { mxfp4_rows<1>(MXFP4_ROWS_PASS); }
extern "C" __global__ void moe_mxfp4_rows_c2(MXFP4_ROWS_ARGS) { mxfp4_rows<2>(MXFP4_ROWS_PASS); }
extern "C" __global__ void moe_mxfp4_rows_c3(MXFP4_ROWS_ARGS) { mxfp4_rows<3>(MXFP4_ROWS_PASS); }
extern "C" __global__ void moe_mxfp4_rows_c4(MXFP4_ROWS_ARGS) { mxfp4_rows<4>(MXFP4_ROWS_PASS); }

// ---- Decode with 8-bit activations (as llama.cpp's MXFP4 path): the expert input is quantized
// once per 32 values to int8 with an f32 scale (quantize_q8, which can apply the clamped SwiGLU
// first), and each 32-value block of weights is multiplied with dp4a: the e2m1 codes become
// doubled integers {0, 1, 2, 3, 4, 6, 8, 12} through a prmt byte-table lookup (magnitude), and the
// sign is applied by subtracting twice the dot of the negative ones (a second prmt, in its
// sign-replicating mode, makes their byte mask). ~1.6 integer ops per weight instead of ~5 f32
// ops, and a quarter of the input bytes.

__device__ __forceinline__ unsigned int prmt(unsigned int a, unsigned int b, unsigned int c) {
    unsigned int d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

// sum_i 2 * e2m1(code_i) * xq_i over one 32-value block; xq holds the block's 32 int8 inputs.
__device__ __forceinline__ int mxfp4_dot32_q8(uint4 b, const int* xq) {
    const unsigned int T0 = 0x03020100u, T1 = 0x0c080604u, K = 0x80808080u;
    unsigned int words[4] = {b.x, b.y, b.z, b.w};
    int pos = 0, neg = 0;
    #pragma unroll
    for (int q = 0; q < 4; q++) {
        unsigned int w = words[q], m = w & 0x77777777u;
        unsigned int mlo = prmt(T0, T1, m), mhi = prmt(T0, T1, m >> 16);       // magnitudes of values 0-3, 4-7
        unsigned int slo = prmt(K, K, w), shi = prmt(K, K, w >> 16);           // 0xff where negative, 0x80 where not
        unsigned int nlo = mlo & slo & 0x7f7f7f7fu, nhi = mhi & shi & 0x7f7f7f7fu;  // magnitudes of the negative ones
        pos = __dp4a((int)mlo, xq[2 * q], pos);
        pos = __dp4a((int)mhi, xq[2 * q + 1], pos);
        neg = __dp4a((int)nlo, xq[2 * q], neg);
        neg = __dp4a((int)nhi, xq[2 * q + 1], neg);
    }
    return pos - 2 * neg;
}

// q[r, :] = round(v / d), d[r, c] = max |v| / 127 over each 32 values of v = x[r, :] (or, with
// swiglu_in, v = clamped SwiGLU of x[r, 2j], x[r, 2j + 1]). One warp per 32 values.
extern "C" __global__ void quantize_q8(const float* x, int swiglu_in, float limit, float alpha, signed char* q, float* d,
                                       long long nblocks, int cols) {
    long long b = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (b >= nblocks) return;
    int per = cols / 32;
    long long row = b / per;
    int c = (int)(b % per);
    int j = c * 32 + lane;
    float v = swiglu_in ? clamped_swiglu(x[row * 2 * cols + 2 * j], x[row * 2 * cols + 2 * j + 1], limit, alpha) : x[row * cols + j];
    float amax = warp_max(fabsf(v));
    float inv = amax > 0.f ? 127.f / amax : 0.f;
    q[row * cols + j] = (signed char)__float2int_rn(v * inv);
    if (lane == 0) d[b] = amax / 127.f;
}

template <int NC>
__device__ __forceinline__ void mxfp4_rows_q8(const signed char* xq, const float* xd, int div, const int* ids,
                                              const unsigned char* blocks, const unsigned char* scales,
                                              const void* bias, int bdt, float* out, int rows, int cols) {
    int r0 = ((blockIdx.x * blockDim.x + threadIdx.x) >> 5) * MX_ROWS, lane = threadIdx.x & 31;
    if (r0 >= rows) return;
    int p = blockIdx.y, e = ids[p], nb = cols / 32;
    int nr = min(MX_ROWS, rows - r0);
    long long row0 = (long long)e * rows + r0;
    const uint4* wb = (const uint4*)blocks + row0 * nb;
    const unsigned char* sb = scales + row0 * nb;
    const uint4* xrow = (const uint4*)(xq + (long long)(p / div) * cols);
    const float* drow = xd + (long long)(p / div) * nb;
    uint4 w[NC][MX_ROWS];
    unsigned char sc[NC][MX_ROWS];
    #pragma unroll
    for (int u = 0; u < NC; u++) {
        int c = lane + 32 * u;
        #pragma unroll
        for (int i = 0; i < MX_ROWS; i++) {
            int ri = i < nr ? i : 0;
            bool ok = c < nb;
            w[u][i] = ok ? wb[(long long)ri * nb + c] : make_uint4(0u, 0u, 0u, 0u);
            sc[u][i] = ok ? sb[(long long)ri * nb + c] : (unsigned char)0;
        }
    }
    float acc[MX_ROWS];
    #pragma unroll
    for (int i = 0; i < MX_ROWS; i++) acc[i] = 0.f;
    #pragma unroll
    for (int u = 0; u < NC; u++) {
        int c = lane + 32 * u;
        if (c >= nb) break;
        uint4 xa = xrow[2 * c], xb = xrow[2 * c + 1];
        int x8[8] = {(int)xa.x, (int)xa.y, (int)xa.z, (int)xa.w, (int)xb.x, (int)xb.y, (int)xb.z, (int)xb.w};
        float dx = drow[c] * 0.5f;  // the table holds doubled e2m1 values
        #pragma unroll
        for (int i = 0; i < MX_ROWS; i++) acc[i] += (float)mxfp4_dot32_q8(w[u][i], x8) * (e8m0_to_f32(sc[u][i]) * dx);
    }
    #pragma unroll
    for (int i = 0; i < MX_ROWS; i++) {
        float s = warp_sum(acc[i]);
        if (lane == 0 && i < nr) out[(long long)p * rows + r0 + i] = s + load_w(bias, row0 + i, bdt);
    }
}

#define MXFP4_Q8_ARGS const signed char* xq, const float* xd, int div, const int* ids, const unsigned char* blocks, \
    const unsigned char* scales, const void* bias, int bdt, float* out, int rows, int cols
#define MXFP4_Q8_PASS xq, xd, div, ids, blocks, scales, bias, bdt, out, rows, cols
extern "C" __global__ void moe_mxfp4_q8_c1(MXFP4_Q8_ARGS) { mxfp4_rows_q8<1>(MXFP4_Q8_PASS); }
extern "C" __global__ void moe_mxfp4_q8_c2(MXFP4_Q8_ARGS) { mxfp4_rows_q8<2>(MXFP4_Q8_PASS); }
extern "C" __global__ void moe_mxfp4_q8_c3(MXFP4_Q8_ARGS) { mxfp4_rows_q8<3>(MXFP4_Q8_PASS); }
extern "C" __global__ void moe_mxfp4_q8_c4(MXFP4_Q8_ARGS) { mxfp4_rows_q8<4>(MXFP4_Q8_PASS); }

// ---- Prefill helpers around the cuBLASLt GEMMs --------------------------------------------------

__device__ __forceinline__ unsigned short f32_to_bf16_rne(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);  // NaN stays NaN
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// xs[slot[i], :] = bf16(x[order[i] / div, :]) for the P routed pairs in expert order; one block
// per pair. slot maps a sorted position to its row in the padded per-expert segments.
extern "C" __global__ void moe_gather_bf16(const float* x, const int* order, const int* slot, int div,
                                           unsigned short* xs, int H) {
    int i = blockIdx.x;
    const float* src = x + (long long)(order[i] / div) * H;
    unsigned short* dst = xs + (long long)slot[i] * H;
    for (int c = threadIdx.x; c < H; c += blockDim.x) dst[c] = f32_to_bf16_rne(src[c]);
}

// Expands MXFP4 blocks to bf16 (exact: an e2m1 value times a power of two has at most two
// significant bits). One thread per 4 packed bytes (8 values): reads and writes are contiguous
// across a warp. `nwords` = packed bytes / 4; every 4 words share one scale.
// bf16 bits of an e2m1 code times 2^(s - 127), built directly: magnitude codes m >= 2 are
// 2^((m >> 1) - 1) * (1 + (m & 1) / 2), so their bits are (m << 6) + ((s - 1) << 7); code 1 is
// 2^(s - 128) = (s - 1) << 7; code 0 is zero. Valid for 2 <= s <= 250 (no subnormal or overflow);
// other scales take the exact float path.
__device__ __forceinline__ unsigned int e2m1_to_bf16_bits(unsigned int nibble, unsigned int base /* (s - 1) << 7 */) {
    unsigned int m = nibble & 7u;
    unsigned int mag = m >= 2u ? (m << 6) + base : (m == 1u ? base : 0u);
    return mag | ((nibble & 8u) << 12);
}

__device__ __forceinline__ unsigned int e2m1_pair_to_bf16(unsigned int byte, unsigned int scale) {
    if (scale >= 2u && scale <= 250u) {
        unsigned int base = (scale - 1u) << 7;
        return e2m1_to_bf16_bits(byte & 15u, base) | (e2m1_to_bf16_bits(byte >> 4, base) << 16);
    }
    float s = e8m0_to_f32((unsigned char)scale);
    unsigned int lo = f32_to_bf16_rne(e2m1_to_f32(byte & 15u) * s);
    unsigned int hi = f32_to_bf16_rne(e2m1_to_f32(byte >> 4) * s);
    return lo | (hi << 16);
}

extern "C" __global__ void mxfp4_to_bf16(const unsigned char* blocks, const unsigned char* scales, unsigned short* W, long long nwords) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < nwords; i += (long long)gridDim.x * blockDim.x) {
        unsigned int word = ((const unsigned int*)blocks)[i];
        unsigned int s = scales[i >> 2];
        uint4 o;
        o.x = e2m1_pair_to_bf16(word & 0xffu, s);
        o.y = e2m1_pair_to_bf16((word >> 8) & 0xffu, s);
        o.z = e2m1_pair_to_bf16((word >> 16) & 0xffu, s);
        o.w = e2m1_pair_to_bf16(word >> 24, s);
        ((uint4*)W)[i] = o;
    }
}

// h[slot, c] = bf16(SwiGLU(gu[slot, 2c] + b[e, 2c], gu[slot, 2c + 1] + b[e, 2c + 1])) for each
// routed pair (e its expert); one block per pair.
extern "C" __global__ void moe_bias_swiglu_bf16(const float* gu, const int* order, const int* slot, const int* ids,
                                                const void* bias, int bdt, unsigned short* h, int I, float limit, float alpha) {
    int i = blockIdx.x;
    long long row = slot[i];
    long long e = ids[order[i]];
    for (int c = threadIdx.x; c < I; c += blockDim.x) {
        float g = gu[row * 2 * I + 2 * c] + load_w(bias, e * 2 * I + 2 * c, bdt);
        float u = gu[row * 2 * I + 2 * c + 1] + load_w(bias, e * 2 * I + 2 * c + 1, bdt);
        h[row * I + c] = f32_to_bf16_rne(clamped_swiglu(g, u, limit, alpha));
    }
}

// y[order[i], :] = ys[slot[i], :] + b[e, :]: back to pick order for moe_combine; one block per pair.
extern "C" __global__ void moe_bias_scatter(const float* ys, const int* order, const int* slot, const int* ids,
                                            const void* bias, int bdt, float* y, int H) {
    int i = blockIdx.x;
    int p = order[i];
    long long e = ids[p];
    const float* src = ys + (long long)slot[i] * H;
    for (int c = threadIdx.x; c < H; c += blockDim.x) y[(long long)p * H + c] = src[c] + load_w(bias, e * H + c, bdt);
}
