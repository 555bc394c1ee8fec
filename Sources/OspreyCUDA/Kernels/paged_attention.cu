// Paged attention for continuous batching, f32 throughout. The keys and values of every sequence
// sit in fixed-size blocks of one cache [rows, Hkv, D]: position p of sequence s is cache row
// table[s][p / bs] * bs + p % bs. Sequence s owns query rows qstart[s] ..< qstart[s + 1]; its row
// i (n rows) is at position ctx[s] - n + i and sees keys j <= p with p - j < window (window 0: no
// window). The sink adds exp(sink - M) to the softmax denominator only. Same math as attention.cu.
// A table entry a query can see must name a block inside the cache (the CPU oracle checks this);
// here an entry that does not (-1, or past the cache) is never read: paged_rows skips the key and
// paged_prefill stages it as zeros.
//   write_kv, write_kv4  a step's k/v rows into their cache slots; slot < 0 or past the cache: skipped.
//   paged_rows_dNN_hHB  decode, and sequences with few queries: one block of 4 warps per (query row,
//                  kv head, up to HB query heads of that kv head's group, key split), so each key
//                  and value row is read from global memory once for all those heads. Warps take
//                  chunks of 32 keys: lane j scores key j for every head (a full-length dot product
//                  against the scaled queries in shared memory, read as broadcasts), the warp keeps
//                  an online softmax per head, and each lane accumulates D/32 value dimensions with
//                  the chunk's probabilities read back from shared memory as broadcasts; the warps
//                  merge at the end. With splits > 1 (few sequences, long contexts: too few blocks
//                  for the GPU otherwise) a block takes one slice of the visible keys and writes an
//                  unnormalised partial (max, sum, values) that paged_merge combines with the sink.
//                  NN = 16/32/64/128 (float4 key loads, accumulators in registers) or 0 (any D <= 256).
//   paged_prefill_dNN  sequences with many queries (head sizes 16/32/64): attention.cu's prefill
//                  scheme on the paged cache. One thread per query, a block per (128 queries of one
//                  sequence, head); chunks of 32 keys staged in shared memory with coalesced loads
//                  and read back as warp broadcasts (non-uniform shared addresses saturate L1).
// The launcher (CUDABackend+Paged.swift) sizes the grids from host upper bounds (max query count,
// sequences); sequences with at most `limit` queries are paged_rows' and the others
// paged_prefill's, and a block with nothing to do returns at once.
#include "common.cuh"

// MARK: - write_kv

template <typename V>
__device__ __forceinline__ void write_kv_impl(const V* k, const V* v, V* kc, V* vc, const int* slots, int T, int W, int rows) {
    long long total = (long long)T * W;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
        int slot = slots[e / W];
        if (slot < 0 || slot >= rows) continue;
        long long dst = (long long)slot * W + e % W;
        kc[dst] = k[e];
        vc[dst] = v[e];
    }
}

// Row t of k and v ([T, W] with W = Hkv * D) to row slots[t] of the caches; one thread per value.
extern "C" __global__ void write_kv(const float* k, const float* v, float* kc, float* vc, const int* slots, int T, int W, int rows) {
    write_kv_impl<float>(k, v, kc, vc, slots, T, W, rows);
}

// The same with one thread per 4 values (W4 = W / 4; every pointer 16-byte aligned).
extern "C" __global__ void write_kv4(const float4* k, const float4* v, float4* kc, float4* vc, const int* slots, int T, int W4, int rows) {
    write_kv_impl<float4>(k, v, kc, vc, slots, T, W4, rows);
}

// MARK: - paged_rows

#define ROWS_WARPS 4
#define ROWS_MAX_D 256

// The cache row of position j of a sequence whose table row is tb, or -1 when it has none.
__device__ __forceinline__ int cache_row(const int* tb, int j, int bs, int rows) {
    int b = tb[j / bs];
    long long r = (long long)b * bs + j % bs;
    return b >= 0 && r < rows ? (int)r : -1;
}

#define PAGED_ARGS const float* q, const float* kc, const float* vc, const void* sinks, int sdt, float* out, \
    const int* qstart, const int* ctxlen, const int* table, int maxBlocks, int bs, int rows, \
    int Hq, int Hkv, int window, float scale, int limit
#define PAGED_PASS q, kc, vc, sinks, sdt, out, qstart, ctxlen, table, maxBlocks, bs, rows, Hq, Hkv, window, scale, limit

// Value dimension i of a lane: contiguous runs for D 64/128 (one vector load per key), strided otherwise.
template <int DC, int DPL>
__device__ __forceinline__ int lane_dim(int lane, int i) { return DC == 64 || DC == 128 ? lane * DPL + i : lane + 32 * i; }

// grid (query row within its sequence, (kv head * head chunks + chunk) * splits + split, sequence); 128 threads.
template <int DC, int HB>
__device__ __forceinline__ void paged_rows(PAGED_ARGS, int Darg, int splits, float* pm, float* pl, float* pacc) {
    constexpr int NA = DC > 0 ? DC : ROWS_MAX_D;
    constexpr int DPL = (NA + 31) / 32;
    const int D = DC > 0 ? DC : Darg;
    __shared__ __align__(16) float sq[HB][NA];           // this block's queries, times scale
    __shared__ __align__(16) float sp[ROWS_WARPS][32][HB];  // a chunk's probabilities, per key and head
    __shared__ int srow[ROWS_WARPS][32];                  // a chunk's cache rows
    __shared__ float wm[ROWS_WARPS][HB], wl[ROWS_WARPS][HB];
    __shared__ float wacc[ROWS_WARPS][HB][NA];

    int G = Hq / Hkv, chunks = (G + HB - 1) / HB;
    int y = blockIdx.y, split = y % splits;
    y /= splits;
    int chunk = y % chunks, kvh = y / chunks;
    int s = blockIdx.z, i = blockIdx.x;
    int q0 = qstart[s], n = qstart[s + 1] - q0;
    if (i >= n || n > limit) return;  // the whole block: no query here, or paged_prefill's sequence
    int t = q0 + i, p = ctxlen[s] - n + i;
    int h0 = kvh * G + chunk * HB, nh = min(HB, G - chunk * HB);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    for (int e = threadIdx.x; e < HB * D; e += blockDim.x) {
        int g = e / D, d = e % D;
        sq[g][d] = g < nh ? q[((long long)t * Hq + h0 + g) * D + d] * scale : 0.f;
    }
    __syncthreads();

    // This split's slice [klo, khi) of the visible keys [lo, p], in whole chunks of 32.
    int lo = window > 0 ? max(0, p - window + 1) : 0;
    int per = ((p + 1 - lo + splits - 1) / splits + 31) & ~31;
    int klo = lo + split * per, khi = min(p + 1, klo + per);
    const int* tb = table + (long long)s * maxBlocks;
    long long stride = (long long)Hkv * D;
    const float* kb = kc + (long long)kvh * D;
    const float* vb = vc + (long long)kvh * D;

    float m[HB], l[HB], acc[HB][DPL];  // l: this lane's share of the sum (added up across the warp at the end)
    #pragma unroll
    for (int g = 0; g < HB; g++) {
        m[g] = -INFINITY; l[g] = 0.f;
        #pragma unroll
        for (int k = 0; k < DPL; k++) acc[g][k] = 0.f;
    }
    for (int base = klo + warp * 32; base < khi; base += ROWS_WARPS * 32) {
        int j = base + lane;
        int row = j < khi ? cache_row(tb, j, bs, rows) : -1;
        float sc[HB];
        #pragma unroll
        for (int g = 0; g < HB; g++) sc[g] = 0.f;
        if (row >= 0) {
            const float* kr = kb + row * stride;
            if constexpr (DC > 0 && DC % 4 == 0) {
                #pragma unroll
                for (int c = 0; c < DC / 4; c++) {
                    float4 kk = ((const float4*)kr)[c];
                    #pragma unroll
                    for (int g = 0; g < HB; g++) {
                        float4 qq = ((const float4*)sq[g])[c];
                        sc[g] += qq.x * kk.x + qq.y * kk.y + qq.z * kk.z + qq.w * kk.w;
                    }
                }
            } else {
                for (int d = 0; d < D; d++) {
                    float kk = kr[d];
                    #pragma unroll
                    for (int g = 0; g < HB; g++) sc[g] += sq[g][d] * kk;
                }
            }
        }
        #pragma unroll
        for (int g = 0; g < HB; g++) {
            float score = row >= 0 ? sc[g] : -INFINITY;
            float mn = fmaxf(m[g], warp_max(score));
            float corr = m[g] == -INFINITY ? 0.f : expf(m[g] - mn);  // nothing to rescale yet while m is -inf
            float pr = row >= 0 ? expf(score - mn) : 0.f;
            l[g] = l[g] * corr + pr;
            #pragma unroll
            for (int k = 0; k < DPL; k++) acc[g][k] *= corr;
            m[g] = mn;
            sp[warp][lane][g] = pr;
        }
        srow[warp][lane] = row;
        __syncwarp();
        int count = min(32, khi - base);
        #pragma unroll 4
        for (int jj = 0; jj < count; jj++) {
            int r = srow[warp][jj];
            if (r < 0) continue;
            const float* vr = vb + r * stride;
            float vv[DPL];
            if constexpr (DC == 64) {
                float2 x = ((const float2*)vr)[lane];
                vv[0] = x.x; vv[1] = x.y;
            } else if constexpr (DC == 128) {
                float4 x = ((const float4*)vr)[lane];
                vv[0] = x.x; vv[1] = x.y; vv[2] = x.z; vv[3] = x.w;
            } else {
                #pragma unroll
                for (int k = 0; k < DPL; k++) {
                    int d = lane + 32 * k;
                    vv[k] = d < D ? vr[d] : 0.f;
                }
            }
            float pj[HB];
            if constexpr (HB % 4 == 0) {
                #pragma unroll
                for (int c = 0; c < HB / 4; c++) {
                    float4 x = ((const float4*)sp[warp][jj])[c];
                    pj[4 * c] = x.x; pj[4 * c + 1] = x.y; pj[4 * c + 2] = x.z; pj[4 * c + 3] = x.w;
                }
            } else {
                #pragma unroll
                for (int g = 0; g < HB; g++) pj[g] = sp[warp][jj][g];
            }
            #pragma unroll
            for (int g = 0; g < HB; g++) {
                #pragma unroll
                for (int k = 0; k < DPL; k++) acc[g][k] += pj[g] * vv[k];
            }
        }
        __syncwarp();  // the chunk's sp and srow are consumed
    }

    // Merge the warps: per head, rescale each warp's sums to the block's max.
    #pragma unroll
    for (int g = 0; g < HB; g++) {
        float lw = warp_sum(l[g]);
        if (lane == 0) { wm[warp][g] = m[g]; wl[warp][g] = lw; }
        #pragma unroll
        for (int k = 0; k < DPL; k++) {
            int d = lane_dim<DC, DPL>(lane, k);
            if (d < D) wacc[warp][g][d] = acc[g][k];
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < nh * D; e += blockDim.x) {
        int g = e / D, d = e % D, h = h0 + g;
        float M = -INFINITY, L = 0.f, o = 0.f;
        for (int w = 0; w < ROWS_WARPS; w++) M = fmaxf(M, wm[w][g]);
        for (int w = 0; w < ROWS_WARPS; w++) {
            float c = wm[w][g] == -INFINITY ? 0.f : expf(wm[w][g] - M);
            L += wl[w][g] * c;
            o += wacc[w][g][d] * c;
        }
        long long th = (long long)t * Hq + h;
        if (splits > 1) {  // paged_merge adds the sink and normalises
            long long z = th * splits + split;
            pacc[z * D + d] = o;
            if (d == 0) { pm[z] = M; pl[z] = L; }
            continue;
        }
        float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
        float Mx = fmaxf(M, sink);
        if (Mx == -INFINITY) { out[th * D + d] = 0.f; continue; }  // nothing visible and no sink
        float f = M == -INFINITY ? 0.f : expf(M - Mx);
        out[th * D + d] = o * f / (L * f + (sinks ? expf(sink - Mx) : 0.f));
    }
}

#define ROWS_ARGS PAGED_ARGS, int D, int splits, float* pm, float* pl, float* pacc
#define ROWS_PASS PAGED_PASS, D, splits, pm, pl, pacc
extern "C" __global__ void paged_rows_d0_h1(ROWS_ARGS) { paged_rows<0, 1>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h2(ROWS_ARGS) { paged_rows<0, 2>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h4(ROWS_ARGS) { paged_rows<0, 4>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h8(ROWS_ARGS) { paged_rows<0, 8>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h1(ROWS_ARGS) { paged_rows<16, 1>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h2(ROWS_ARGS) { paged_rows<16, 2>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h4(ROWS_ARGS) { paged_rows<16, 4>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h8(ROWS_ARGS) { paged_rows<16, 8>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h1(ROWS_ARGS) { paged_rows<32, 1>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h2(ROWS_ARGS) { paged_rows<32, 2>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h4(ROWS_ARGS) { paged_rows<32, 4>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h8(ROWS_ARGS) { paged_rows<32, 8>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h1(ROWS_ARGS) { paged_rows<64, 1>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h2(ROWS_ARGS) { paged_rows<64, 2>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h4(ROWS_ARGS) { paged_rows<64, 4>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h8(ROWS_ARGS) { paged_rows<64, 8>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h1(ROWS_ARGS) { paged_rows<128, 1>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h2(ROWS_ARGS) { paged_rows<128, 2>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h4(ROWS_ARGS) { paged_rows<128, 4>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h8(ROWS_ARGS) { paged_rows<128, 8>(ROWS_PASS); }

// out[th] from the splits' partials of row-head th = t * Hq + h: one block per row-head, threads over D.
extern "C" __global__ void paged_merge(const float* pm, const float* pl, const float* pacc, const void* sinks, int sdt,
                                       float* out, int Hq, int D, int splits) {
    long long th = blockIdx.x;
    int h = (int)(th % Hq);
    float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
    float M = sink;
    for (int z = 0; z < splits; z++) M = fmaxf(M, pm[th * splits + z]);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        if (M == -INFINITY) { out[th * D + d] = 0.f; continue; }
        float L = sinks ? expf(sink - M) : 0.f, o = 0.f;
        for (int z = 0; z < splits; z++) {
            float mz = pm[th * splits + z];
            float c = mz == -INFINITY ? 0.f : expf(mz - M);
            L += pl[th * splits + z] * c;
            o += pacc[(th * splits + z) * D + d] * c;
        }
        out[th * D + d] = o / L;
    }
}

// MARK: - paged_prefill

// grid (tile of 128 queries within its sequence, head, sequence); 128 threads.
template <int D>
__device__ __forceinline__ void paged_prefill(PAGED_ARGS) {
    constexpr int D4 = D / 4;
    __shared__ float4 sK[32][D4];
    __shared__ float4 sV[32][D4];
    int s = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
    int q0 = qstart[s], n = qstart[s + 1] - q0;
    int i0 = blockIdx.x * blockDim.x;
    if (n <= limit || i0 >= n) return;  // the whole block: paged_rows' sequence, or no query here
    int i = i0 + threadIdx.x;
    bool active = i < n;
    int ctx = ctxlen[s];
    int qpos = ctx - n + (active ? i : n - 1);
    long long t = q0 + (active ? i : n - 1);
    float qr[D], acc[D];
    const float* qrow = q + (t * Hq + h) * D;
    #pragma unroll
    for (int d = 0; d < D; d++) { qr[d] = qrow[d] * scale; acc[d] = 0.f; }
    float m = -INFINITY, l = 0.f;
    // The tile sees keys [lo, hi): from the first query's window start to the last query.
    int hi = ctx - n + min(i0 + (int)blockDim.x, n);
    int lo = window > 0 ? max(0, ctx - n + i0 - window + 1) : 0;
    const int* tb = table + (long long)s * maxBlocks;
    long long stride = (long long)Hkv * D;
    for (int base = lo; base < hi; base += 32) {
        __syncthreads();  // the previous chunk is consumed
        for (int e = threadIdx.x; e < 32 * D4; e += blockDim.x) {
            int j = e / D4, c = e % D4, key = base + j;
            int row = key < hi ? cache_row(tb, key, bs, rows) : -1;
            float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
            sK[j][c] = row >= 0 ? ((const float4*)(kc + row * stride + (long long)kvh * D))[c] : zero;
            sV[j][c] = row >= 0 ? ((const float4*)(vc + row * stride + (long long)kvh * D))[c] : zero;
        }
        __syncthreads();
        // This query's visible keys in the chunk: [jlo, jhi).
        int jlo = window > 0 ? max(0, qpos - window + 1 - base) : 0;
        int jhi = min(min(32, hi - base), qpos - base + 1);
        if (!active || jlo >= jhi) continue;
        attend_chunk<D>(sK, sV, qr, jlo, jhi, m, l, acc);
    }
    if (!active) return;
    float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
    float M = fmaxf(m, sink);
    float* orow = out + (t * Hq + h) * D;
    if (M == -INFINITY) {
        #pragma unroll
        for (int d = 0; d < D; d++) orow[d] = 0.f;
        return;
    }
    float c = m == -INFINITY ? 0.f : expf(m - M);
    float L = l * c + (sinks ? expf(sink - M) : 0.f);
    #pragma unroll
    for (int d = 0; d < D; d++) orow[d] = acc[d] * c / L;
}

extern "C" __global__ void paged_prefill_d16(PAGED_ARGS) { paged_prefill<16>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d32(PAGED_ARGS) { paged_prefill<32>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d64(PAGED_ARGS) { paged_prefill<64>(PAGED_PASS); }
