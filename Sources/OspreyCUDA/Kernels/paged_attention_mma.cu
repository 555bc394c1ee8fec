// Paged attention on tensor cores (bf16 cache, 64-dimension heads), the kernels of
// paged_attention.cu's layout and arguments (paged_common.cuh) with mma.sync:
//   paged_mma_d64_bf16          decode and short query runs: one block per (query row, kv head, key
//                               split), the group's query heads as the MMA rows
//   paged_prefill_mma_d64_bf16  chunked prefill: a warp per 16 queries of one head
// Both walk keys in chunks of 32 through mma_chunk (S = QK^T, online softmax, O += PV). Launcher:
// CUDABackend+Paged.swift (layer "PagedAttentionMMA"), which picks them over paged_rows /
// paged_prefill for bf16 caches with D 64 unless CUDAContext.pagedTensorCores is off.
#include "paged_common.cuh"

// MARK: - paged_mma (bf16 cache, D 64, up to 16 query heads per kv head)

// paged_rows' work on tensor cores: one block of 4 warps per (query row, kv head, key split), the
// group's query heads as the 16 rows of the MMAs (G of them real, the rest zeros). Per chunk of 32
// keys a warp computes S = Q K^T (4 key tiles x 4 steps of 16 dimensions: 16 mma.sync), keeps an
// online softmax per head in f32, and adds P V (2 steps of 16 keys x 8 tiles of 8 dimensions: 16
// mma.sync), with P rounded to bf16 in registers (the C fragments of S are the A fragments of P)
// and V read back from shared memory transposed by ldmatrix. Q is scaled and rounded to bf16 (as
// the checkpoint's bf16 attention does). Each lane loads 32 contiguous bytes of a key row: the sum
// over dimensions runs in another order than the fragments' nominal one, the same for Q and K.
#define MMA_VS 72  // bf16 per key row of a warp's V tile in shared memory: 64 + 8 (rows 16 bytes apart in the banks)

// ldmatrix .x4 .trans: four 8x8 bf16 tiles; lanes 8i..8i+7 give the row addresses of tile i, and
// lane 4g + t receives (row 2t, col g) and (row 2t + 1, col g) of each.
__device__ __forceinline__ void ldsm_x4_trans(unsigned int (&r)[4], const void* p) {
    unsigned int a = (unsigned int)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

// One chunk of 32 keys [base, base + 32) for a warp's 16 query rows (rows g and g + 8 of the A
// fragments qa): loads the keys' K and V rows (keys from khi on, and keys without a cache row, as
// zeros and masked), S = Q K^T, the online softmax per row (m, l: this lane's share of the sum),
// and O += P V through the warp's V tile sv, all in st. visible(r, key): whether row g + 8r sees `key` (the
// causal and window mask of a prefill; always true for decode, whose range [.., khi) is the mask).
// A warp's online softmax over its 16 query rows (this lane's rows g and g + 8): the running
// maxima, this lane's share of the sums, and the unnormalised outputs (C fragments of 8 tiles of
// 8 dimensions: o[c][0..1] row g, o[c][2..3] row g + 8).
struct MmaRows {
    float m[2], l[2], o[8][4];
    __device__ __forceinline__ MmaRows() {
        #pragma unroll
        for (int r = 0; r < 2; r++) { m[r] = -INFINITY; l[r] = 0.f; }
        #pragma unroll
        for (int c = 0; c < 8; c++)
            #pragma unroll
            for (int e = 0; e < 4; e++) o[c][e] = 0.f;
    }
};

template <class Visible>
__device__ __forceinline__ void mma_chunk(const unsigned int (&qa)[2][8], MmaRows& st, bf16_t (*sv)[MMA_VS], int base, int khi,
                                          const int* tb, int bs, int rows, const bf16_t* kb, const bf16_t* vb, long long stride,
                                          int lane, Visible visible) {
    const int g = lane >> 2, tq = lane & 3;
    float (&m)[2] = st.m, (&l)[2] = st.l, (&o)[8][4] = st.o;
    // Key tile j: lane (g, tq) loads key base + 8j + g, bytes 32 tq .. + 31 of its K and V rows.
    unsigned int kw[4][8], valid[4];
    #pragma unroll
    for (int j = 0; j < 4; j++) {
        const int key = base + 8 * j + g;
        const int row = key < khi ? cache_row(tb, key, bs, rows) : -1;
        uint4 k0 = make_uint4(0u, 0u, 0u, 0u), k1 = k0, v0 = k0, v1 = k0;
        if (row >= 0) {
            const uint4* kr = (const uint4*)(kb + row * stride) + 2 * tq;
            const uint4* vr = (const uint4*)(vb + row * stride) + 2 * tq;
            k0 = kr[0]; k1 = kr[1]; v0 = vr[0]; v1 = vr[1];
        }
        kw[j][0] = k0.x; kw[j][1] = k0.y; kw[j][2] = k0.z; kw[j][3] = k0.w;
        kw[j][4] = k1.x; kw[j][5] = k1.y; kw[j][6] = k1.z; kw[j][7] = k1.w;
        *(uint4*)&sv[8 * j + g][16 * tq] = v0;  // missing rows as zeros: P is 0 there, and 0 * 0 stays 0
        *(uint4*)&sv[8 * j + g][16 * tq + 8] = v1;
        valid[j] = __ballot_sync(0xffffffffu, row >= 0);  // key 8j + x: bit 4x
    }
    // S tile j: c0 c1 (row g, keys 8j + 2tq, + 1), c2 c3 (row g + 8, the same keys).
    float sc[4][4];
    #pragma unroll
    for (int j = 0; j < 4; j++) {
        float d[4] = {0.f, 0.f, 0.f, 0.f};
        #pragma unroll
        for (int kk = 0; kk < 4; kk++) mma_bf16(d, qa[0][2 * kk], qa[1][2 * kk], qa[0][2 * kk + 1], qa[1][2 * kk + 1], kw[j][2 * kk], kw[j][2 * kk + 1]);
        const bool va = (valid[j] >> (8 * tq)) & 1u, vb2 = (valid[j] >> (8 * tq + 4)) & 1u;
        const int key = base + 8 * j + 2 * tq;
        sc[j][0] = va && visible(0, key) ? d[0] : -INFINITY; sc[j][1] = vb2 && visible(0, key + 1) ? d[1] : -INFINITY;
        sc[j][2] = va && visible(1, key) ? d[2] : -INFINITY; sc[j][3] = vb2 && visible(1, key + 1) ? d[3] : -INFINITY;
    }
    // Online softmax per row (the 4 lanes of a row hold its 32 scores, 8 each).
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        float cm = -INFINITY;
        #pragma unroll
        for (int j = 0; j < 4; j++) cm = fmaxf(cm, fmaxf(sc[j][2 * r], sc[j][2 * r + 1]));
        cm = fmaxf(cm, __shfl_xor_sync(0xffffffffu, cm, 1));
        cm = fmaxf(cm, __shfl_xor_sync(0xffffffffu, cm, 2));
        const float mn = fmaxf(m[r], cm);
        const float corr = m[r] == -INFINITY ? 0.f : expf(m[r] - mn);  // nothing to rescale while m is -inf
        float sum = 0.f;
        #pragma unroll
        for (int j = 0; j < 4; j++) {
            #pragma unroll
            for (int e = 2 * r; e < 2 * r + 2; e++) {
                sc[j][e] = sc[j][e] == -INFINITY ? 0.f : expf(sc[j][e] - mn);
                sum += sc[j][e];
            }
        }
        l[r] = l[r] * corr + sum;
        #pragma unroll
        for (int c = 0; c < 8; c++) { o[c][2 * r] *= corr; o[c][2 * r + 1] *= corr; }
        m[r] = mn;
    }
    __syncwarp();  // the V tile is in shared memory
    // O += P V: step ks takes keys 16 ks .. + 15 (S tiles 2ks, 2ks + 1 as the A fragments).
    #pragma unroll
    for (int ks = 0; ks < 2; ks++) {
        const unsigned int a0 = pack_bf16x2(sc[2 * ks][0], sc[2 * ks][1]), a1 = pack_bf16x2(sc[2 * ks][2], sc[2 * ks][3]);
        const unsigned int a2 = pack_bf16x2(sc[2 * ks + 1][0], sc[2 * ks + 1][1]), a3 = pack_bf16x2(sc[2 * ks + 1][2], sc[2 * ks + 1][3]);
        #pragma unroll
        for (int cp = 0; cp < 4; cp++) {
            // Tiles (keys +0 / +8, dimensions 16 cp / 16 cp + 8): b0, b1 of dimension tiles 2cp and 2cp + 1.
            const int mi = lane >> 3, key = 16 * ks + (mi & 1) * 8 + (lane & 7), dim = 16 * cp + (mi >> 1) * 8;
            unsigned int bv[4];
            ldsm_x4_trans(bv, &sv[key][dim]);
            mma_bf16(o[2 * cp], a0, a1, a2, a3, bv[0], bv[1]);
            mma_bf16(o[2 * cp + 1], a0, a1, a2, a3, bv[2], bv[3]);
        }
    }
    __syncwarp();  // the V tile is consumed
}

__device__ __forceinline__ void paged_mma(PAGED_ARGS(bf16_t), int Darg, int splits, float* pm, float* pl, float* pacc) {
    constexpr int D = 64;
    __shared__ __align__(16) bf16_t sv[ROWS_WARPS][32][MMA_VS];
    __shared__ float wm[ROWS_WARPS][16], wl[ROWS_WARPS][16];
    __shared__ float wacc[ROWS_WARPS][16][D];

    const int G = Hq / Hkv;
    const int split = blockIdx.y % splits, kvh = blockIdx.y / splits;
    const int s = blockIdx.z, i = blockIdx.x;
    const int q0 = qstart[s], n = qstart[s + 1] - q0;
    if (i >= n || n > limit) return;  // the whole block: no query here, or paged_prefill's sequence
    const int t = q0 + i, p = ctxlen[s] - n + i, h0 = kvh * G;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;

    // Q as A fragments: rows g and g + 8 (heads h0 + g, h0 + g + 8), dimensions 16 tq .. + 15, word w
    // = dimensions 16 tq + 2w, + 1; step kk of the sum takes words 2kk (a0, a1) and 2kk + 1 (a2, a3).
    unsigned int qa[2][8];
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const int head = g + 8 * r;
        const float* qr = q + ((long long)t * Hq + h0 + min(head, G - 1)) * D + 16 * tq;
        #pragma unroll
        for (int w = 0; w < 8; w++) qa[r][w] = head < G ? pack_bf16x2(qr[2 * w] * scale, qr[2 * w + 1] * scale) : 0u;
    }

    const int lo = window > 0 ? max(0, p - window + 1) : 0;
    const int per = ((p + 1 - lo + splits - 1) / splits + 31) & ~31;
    const int klo = lo + split * per, khi = min(p + 1, klo + per);
    const int* tb = table + (long long)s * maxBlocks;
    const long long stride = (long long)Hkv * D;
    const bf16_t* kb = kc + (long long)kvh * D;
    const bf16_t* vb = vc + (long long)kvh * D;

    MmaRows st;
    for (int base = klo + warp * 32; base < khi; base += ROWS_WARPS * 32)
        mma_chunk(qa, st, sv[warp], base, khi, tb, bs, rows, kb, vb, stride, lane, [](int, int) { return true; });
    float (&m)[2] = st.m, (&l)[2] = st.l, (&o)[8][4] = st.o;

    // Merge the warps: per head, each warp's sums rescaled to the block's max (as paged_rows).
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        if (tq == 0) { wm[warp][g + 8 * r] = m[r]; wl[warp][g + 8 * r] = l[r]; }
        #pragma unroll
        for (int c = 0; c < 8; c++) {
            wacc[warp][g + 8 * r][8 * c + 2 * tq] = o[c][2 * r];
            wacc[warp][g + 8 * r][8 * c + 2 * tq + 1] = o[c][2 * r + 1];
        }
    }
    __syncthreads();
    merge_warps_store(wm, wl, wacc, G, D, h0, t, Hq, sinks, sdt, out, splits, split, pm, pl, pacc);
}

// Launched like paged_rows_d64_h16_bf16 would be: grid (query row, kv head * splits + split, sequence).
extern "C" __global__ void paged_mma_d64_bf16(ROWS_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_mma(ROWS_PASS); }

// MARK: - paged_prefill_mma (bf16 cache, D 64)

// paged_prefill's sequences (more than `limit` queries) on tensor cores: each warp takes 16
// consecutive queries of one head as the MMA rows (where paged_mma takes one query's heads) and
// walks the keys they see, from the first one's window start to the last one, in chunks of 32
// (mma_chunk, masked per row: causal and window), then normalises each row with the sink; no
// merge, no shared memory but the warps' V tiles. Q and P rounded to bf16, as paged_mma. Measured
// on the H200 (2026-11-29, engine prefill step of 2,048 tokens, gpt-oss-20b shape): paged_prefill
// took 12.0 ms of the step's 24 launches, one thread per query in f32.
// grid (tile of 64 queries within its sequence, query head, sequence); 128 threads.
__device__ __forceinline__ void paged_prefill_mma(PAGED_ARGS(bf16_t)) {
    constexpr int D = 64;
    __shared__ __align__(16) bf16_t sv[ROWS_WARPS][32][MMA_VS];
    const int s = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
    const int q0 = qstart[s], n = qstart[s + 1] - q0;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const int i0 = blockIdx.x * 64 + warp * 16;  // the warp's first query
    if (n <= limit || i0 >= n) return;            // paged_rows' sequence, or no query for this warp
    const int first = ctxlen[s] - n;              // the position of query 0

    // Q as A fragments (as paged_mma): rows g and g + 8 are queries i0 + g, i0 + g + 8 (past n: the last one again).
    int pos[2];
    unsigned int qa[2][8];
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = min(i0 + g + 8 * r, n - 1);
        pos[r] = first + i;
        const float* qr = q + ((long long)(q0 + i) * Hq + h) * D + 16 * tq;
        #pragma unroll
        for (int w = 0; w < 8; w++) qa[r][w] = pack_bf16x2(qr[2 * w] * scale, qr[2 * w + 1] * scale);
    }
    const int lo = window > 0 ? max(0, first + i0 - window + 1) : 0, hi = first + min(i0 + 16, n);
    const int* tb = table + (long long)s * maxBlocks;
    const long long stride = (long long)Hkv * D;
    const bf16_t* kb = kc + (long long)kvh * D;
    const bf16_t* vb = vc + (long long)kvh * D;
    MmaRows st;
    for (int base = lo; base < hi; base += 32)
        mma_chunk(qa, st, sv[warp], base, hi, tb, bs, rows, kb, vb, stride, lane,
                  [&](int r, int key) { return key <= pos[r] && (window <= 0 || pos[r] - key < window); });
    float (&m)[2] = st.m, (&l)[2] = st.l, (&o)[8][4] = st.o;

    #pragma unroll
    for (int r = 0; r < 2; r++) {  // each row's sum over its 4 lanes
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    const float sink = sinks ? load_w(sinks, h, sdt) : -INFINITY;
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = i0 + g + 8 * r;
        if (i >= n) continue;
        float* orow = out + ((long long)(q0 + i) * Hq + h) * D + 2 * tq;
        const float M = fmaxf(m[r], sink);
        const float f = M == -INFINITY || m[r] == -INFINITY ? 0.f : expf(m[r] - M);
        const float L = l[r] * f + (sinks && M != -INFINITY ? expf(sink - M) : 0.f);
        #pragma unroll
        for (int c = 0; c < 8; c++) {  // nothing visible and no sink: zeros
            orow[8 * c] = M == -INFINITY ? 0.f : o[c][2 * r] * f / L;
            orow[8 * c + 1] = M == -INFINITY ? 0.f : o[c][2 * r + 1] * f / L;
        }
    }
}

extern "C" __global__ void paged_prefill_mma_d64_bf16(PAGED_ARGS(bf16_t)) { pdl_trigger(); pdl_wait(); paged_prefill_mma(PAGED_PASS); }
