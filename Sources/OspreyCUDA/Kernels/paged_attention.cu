// Paged attention for continuous batching, f32 math throughout. The keys and values of every
// sequence sit in fixed-size blocks of one cache [rows, Hkv, D]: position p of sequence s is cache
// row table[s][p / bs] * bs + p % bs. Sequence s owns query rows qstart[s] ..< qstart[s + 1]; its
// row i (n rows) is at position ctx[s] - n + i and sees keys j <= p with p - j < window (window 0:
// no window). The sink adds exp(sink - M) to the softmax denominator only. Same math as attention.cu.
// A table entry a query can see must name a block inside the cache (the CPU oracle checks this);
// here an entry that does not (-1, or past the cache) is never read: paged_rows skips the key and
// paged_prefill stages it as zeros.
// The cache holds f32 or bf16, and each kernel that touches it comes in both: the name as listed
// for f32, with a _bf16 suffix for bf16, which rounds to nearest even as it writes (f32_to_bf16_rne, as
// OspreyCore's bf16Bits) and widens to f32 as it loads from global memory, so registers and
// shared memory hold f32 either way (attend_chunk serves both) and only the bytes read change.
//   write_kv, write_kv4  a step's f32 k/v rows into their cache slots; slot < 0 or past the cache: skipped.
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
//                  NN = 16/32/64/128 (vector key loads, accumulators in registers) or 0 (any D <= 256).
//   paged_prefill_dNN  sequences with many queries (head sizes 16/32/64): attention.cu's prefill
//                  scheme on the paged cache. One thread per query, a block per (128 queries of one
//                  sequence, head); chunks of 32 keys staged in shared memory with coalesced loads
//                  and read back as warp broadcasts (non-uniform shared addresses saturate L1).
// Their tensor-core twins for bf16 caches with D 64 (paged_mma, paged_prefill_mma) are in
// paged_attention_mma.cu; the cache loads and stores, the arguments and the warps' merge shared
// with them in paged_common.cuh.
// The launcher (CUDABackend+Paged.swift) sizes the grids from host upper bounds (max query count,
// sequences); sequences with at most `limit` queries are paged_rows' and the others
// paged_prefill's, and a block with nothing to do returns at once.
#include "paged_common.cuh"

// MARK: - write_kv

// Row t of k and v ([T, W] with W = Hkv * D) to row slots[t] of the caches; one thread per value
// (V = float), or per 4 values (V = float4, W counted in float4s, every pointer 16-byte aligned).
template <typename V, typename T>
__device__ __forceinline__ void write_kv_impl(const V* k, const V* v, T* kc, T* vc, const int* slots, int T_, int W, int rows) {
    long long total = (long long)T_ * W;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
        int slot = slots[e / W];
        if (slot < 0 || slot >= rows) continue;
        long long dst = (long long)slot * W + e % W;
        if constexpr (sizeof(V) == sizeof(float4)) {
            kv_store4(kc, dst, k[e]);
            kv_store4(vc, dst, v[e]);
        } else {
            kv_store(kc, dst, k[e]);
            kv_store(vc, dst, v[e]);
        }
    }
}

extern "C" __global__ void write_kv(const float* k, const float* v, float* kc, float* vc, const int* slots, int T, int W, int rows) {
    pdl_trigger(); pdl_wait();
    write_kv_impl<float, float>(k, v, kc, vc, slots, T, W, rows);
}
extern "C" __global__ void write_kv4(const float4* k, const float4* v, float* kc, float* vc, const int* slots, int T, int W4, int rows) {
    pdl_trigger(); pdl_wait();
    write_kv_impl<float4, float>(k, v, kc, vc, slots, T, W4, rows);
}
extern "C" __global__ void write_kv_bf16(const float* k, const float* v, bf16_t* kc, bf16_t* vc, const int* slots, int T, int W, int rows) {
    pdl_trigger(); pdl_wait();
    write_kv_impl<float, bf16_t>(k, v, kc, vc, slots, T, W, rows);
}
extern "C" __global__ void write_kv4_bf16(const float4* k, const float4* v, bf16_t* kc, bf16_t* vc, const int* slots, int T, int W4, int rows) {
    pdl_trigger(); pdl_wait();
    write_kv_impl<float4, bf16_t>(k, v, kc, vc, slots, T, W4, rows);
}

// MARK: - paged_rows

// Value dimension i of a lane: contiguous runs for D 64/128 (one vector load per key), strided otherwise.
template <int DC, int DPL>
__device__ __forceinline__ int lane_dim(int lane, int i) { return DC == 64 || DC == 128 ? lane * DPL + i : lane + 32 * i; }

// grid (query row within its sequence, (kv head * head chunks + chunk) * splits + split, sequence); 128 threads.
// T: the cache's element type (float or bf16_t).
template <int DC, int HB, typename T>
__device__ __forceinline__ void paged_rows(PAGED_ARGS(T), int Darg, int splits, float* pm, float* pl, float* pacc) {
    constexpr int NA = DC > 0 ? DC : ROWS_MAX_D;
    constexpr int DPL = (NA + 31) / 32;
    const int D = DC > 0 ? DC : Darg;
    __shared__ __align__(16) float sq[HB][NA];           // this block's queries, times scale
    __shared__ __align__(16) float sp[ROWS_WARPS][32][HB];  // a chunk's probabilities, per key and head
    __shared__ int srow[ROWS_WARPS][32];                  // a chunk's cache rows
    __shared__ float wm[ROWS_WARPS][HB], wl[ROWS_WARPS][HB];
    __shared__ float wacc[ROWS_WARPS][HB][NA];
    // bf16 caches with D = 64: each lane fetches its key's value row together with the key row and
    // leaves it here, so the loop over a chunk's 32 values reads shared memory instead of waiting
    // for L2 every few keys. One batch-1 step's 24 launches, each timed alone on the H200: 0.626 ->
    // 0.358 ms (benchmarks/results/2026-11-29-h200-decode-launches.md).
    constexpr bool VS = DC == 64 && sizeof(T) == 2;
    __shared__ __align__(16) uint4 sv[VS ? ROWS_WARPS : 1][VS ? 32 : 1][VS ? DC / 8 : 1];

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
    const T* kb = kc + (long long)kvh * D;
    const T* vb = vc + (long long)kvh * D;

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
        uint4 vrow[VS ? DC / 8 : 1];
        if (row >= 0) {
            const T* kr = kb + row * stride;
            if constexpr (VS) {
                #pragma unroll
                for (int c = 0; c < DC / 8; c++) vrow[c] = ((const uint4*)(vb + row * stride))[c];
            }
            if constexpr (DC > 0 && DC % 8 == 0 && sizeof(T) == 2) {
                // bf16: 8 values per 16-byte load.
                #pragma unroll
                for (int c = 0; c < DC / 8; c++) {
                    uint4 u = ((const uint4*)kr)[c];
                    float kk[8] = {kv_lo(u.x), kv_hi(u.x), kv_lo(u.y), kv_hi(u.y), kv_lo(u.z), kv_hi(u.z), kv_lo(u.w), kv_hi(u.w)};
                    #pragma unroll
                    for (int g = 0; g < HB; g++) {
                        float4 qa = ((const float4*)sq[g])[2 * c], qb = ((const float4*)sq[g])[2 * c + 1];
                        sc[g] += qa.x * kk[0] + qa.y * kk[1] + qa.z * kk[2] + qa.w * kk[3]
                               + qb.x * kk[4] + qb.y * kk[5] + qb.z * kk[6] + qb.w * kk[7];
                    }
                }
            } else if constexpr (DC > 0 && DC % 4 == 0) {
                #pragma unroll
                for (int c = 0; c < DC / 4; c++) {
                    float4 kk = kv_load4(kr + 4 * c);
                    #pragma unroll
                    for (int g = 0; g < HB; g++) {
                        float4 qq = ((const float4*)sq[g])[c];
                        sc[g] += qq.x * kk.x + qq.y * kk.y + qq.z * kk.z + qq.w * kk.w;
                    }
                }
            } else {
                for (int d = 0; d < D; d++) {
                    float kk = kv_load(kr, d);
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
        if constexpr (VS) {
            if (row >= 0) {
                #pragma unroll
                for (int c = 0; c < DC / 8; c++) sv[warp][lane][c] = vrow[c];
            }
        }
        __syncwarp();
        int count = min(32, khi - base);
        #pragma unroll 4
        for (int jj = 0; jj < count; jj++) {
            int r = srow[warp][jj];
            if (r < 0) continue;
            const T* vr = vb + r * stride;
            float vv[DPL];
            if constexpr (VS) {
                unsigned int x = ((const unsigned int*)sv[warp][jj])[lane];
                vv[0] = kv_lo(x); vv[1] = kv_hi(x);
            } else if constexpr (DC == 64) {
                float2 x = kv_load2(vr + 2 * lane);
                vv[0] = x.x; vv[1] = x.y;
            } else if constexpr (DC == 128) {
                float4 x = kv_load4(vr + 4 * lane);
                vv[0] = x.x; vv[1] = x.y; vv[2] = x.z; vv[3] = x.w;
            } else {
                #pragma unroll
                for (int k = 0; k < DPL; k++) {
                    int d = lane + 32 * k;
                    vv[k] = d < D ? kv_load(vr, d) : 0.f;
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
    merge_warps_store(wm, wl, wacc, nh, D, h0, t, Hq, sinks, sdt, out, splits, split, pm, pl, pacc);
}

extern "C" __global__ void paged_rows_d0_h1(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<0, 1, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h2(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<0, 2, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h4(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<0, 4, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h8(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<0, 8, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h1(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<16, 1, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h2(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<16, 2, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h4(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<16, 4, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h8(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<16, 8, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h1(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<32, 1, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h2(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<32, 2, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h4(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<32, 4, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h8(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<32, 8, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h1(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<64, 1, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h2(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<64, 2, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h4(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<64, 4, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h8(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<64, 8, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h1(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<128, 1, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h2(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<128, 2, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h4(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<128, 4, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h8(ROWS_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_rows<128, 8, float>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h1_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<0, 1, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h2_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<0, 2, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h4_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<0, 4, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d0_h8_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<0, 8, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h1_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<16, 1, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h2_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<16, 2, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h4_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<16, 4, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d16_h8_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<16, 8, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h1_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<32, 1, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h2_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<32, 2, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h4_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<32, 4, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d32_h8_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<32, 8, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h1_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<64, 1, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h2_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<64, 2, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h4_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<64, 4, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d64_h8_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<64, 8, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h1_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<128, 1, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h2_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<128, 2, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h4_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<128, 4, bf16_t>(ROWS_PASS); }
extern "C" __global__ void paged_rows_d128_h8_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_rows<128, 8, bf16_t>(ROWS_PASS); }

// out[th] from the splits' partials of row-head th = t * Hq + h: one block per row-head, threads over D.
extern "C" __global__ void paged_merge(const float* pm, const float* pl, const float* pacc, const void* sinks, int sdt,
                                       float* out, int Hq, int D, int splits) {
    pdl_trigger(); pdl_wait();
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

// grid (tile of 128 queries within its sequence, head, sequence); 128 threads. T: the cache's
// element type; a chunk is widened to f32 as it is staged.
template <int D, typename T>
__device__ __forceinline__ void paged_prefill(PAGED_ARGS(T)) {
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
            sK[j][c] = row >= 0 ? kv_load4(kc + row * stride + (long long)kvh * D + 4 * c) : zero;
            sV[j][c] = row >= 0 ? kv_load4(vc + row * stride + (long long)kvh * D + 4 * c) : zero;
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

extern "C" __global__ void paged_prefill_d16(PAGED_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_prefill<16, float>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d32(PAGED_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_prefill<32, float>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d64(PAGED_ARGS(float)) { pdl_trigger(); pdl_wait(); paged_prefill<64, float>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d16_bf16(PAGED_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_prefill<16, bf16_t>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d32_bf16(PAGED_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_prefill<32, bf16_t>(PAGED_PASS); }
extern "C" __global__ void paged_prefill_d64_bf16(PAGED_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_prefill<64, bf16_t>(PAGED_PASS); }
