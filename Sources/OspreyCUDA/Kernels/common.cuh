// Shared device helpers for Osprey's kernels: weight loads by dtype (f32, f16, bf16 widened to
// f32 without toolkit headers), the MXFP4 scale and e2m1 values, the clamped SwiGLU, bf16
// rounding, warp/block reductions, the bf16 MMA, and the sm_90 mbarrier / bulk-copy helpers. Included by every
// kernel source; the Swift side passes it to NVRTC as a header named "common.cuh".
#pragma once

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2

__device__ __forceinline__ float bf16_to_f32(unsigned short b) { return __uint_as_float(((unsigned int)b) << 16); }

__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// The 8 bf16 values of one 16-byte load, widened to f32 (low half of each word first).
__device__ __forceinline__ void bf16x8_unpack(uint4 p, float* w) {
    unsigned int words[4] = {p.x, p.y, p.z, p.w};
    #pragma unroll
    for (int q = 0; q < 4; q++) {
        w[2 * q] = __uint_as_float(words[q] << 16);
        w[2 * q + 1] = __uint_as_float(words[q] & 0xffff0000u);
    }
}

// Element i of a weight tensor of dtype dt, widened to f32.
__device__ __forceinline__ float load_w(const void* p, long long i, int dt) {
    if (dt == DT_BF16) return bf16_to_f32(((const unsigned short*)p)[i]);
    if (dt == DT_F16) return f16_to_f32(((const unsigned short*)p)[i]);
    return ((const float*)p)[i];
}

// 2^(scale - 127) for an e8m0 byte, exactly (scale 0 is the subnormal 2^-127, 255 is +inf).
__device__ __forceinline__ float e8m0_to_f32(unsigned char s) {
    return s == 0 ? __uint_as_float(0x00400000u) : __uint_as_float(((unsigned int)s) << 23);
}

// e2m1 nibble -> value, without a table: exponent bits e = (n >> 1) & 3, mantissa m = n & 1;
// e == 0 is the subnormal 0 or 0.5, else 2^(e-1) * (1 + m/2). Bit 3 is the sign (so 8 is -0).
__device__ __forceinline__ float e2m1_to_f32(unsigned int nibble) {
    unsigned int e = (nibble >> 1) & 3u, m = nibble & 1u;
    float mag = e == 0 ? 0.5f * (float)m : __uint_as_float((e + 126u) << 23) * (1.f + 0.5f * (float)m);
    return __uint_as_float(__float_as_uint(mag) | ((nibble & 8u) << 28));
}

// Index (in 16-byte blocks) of block b of row r of expert e in an MXFP4 blocks tensor of R rows
// and nb blocks per row. tiled == 0: as stored, [E, R, nb, 16]. tiled == 1: Osprey's tiled layout
// (MXFP4Tiling in OspreyCore; the CUDA backend loads experts so): [E, ceil(R / 128),
// ceil(nb / 2), 2, 128, 16], zero-padded, so that blocks 2j and 2j + 1 of 128 consecutive rows
// are one contiguous 4 KB run (one stage of the grouped GEMM) and 4 consecutive rows of one block
// are 64 contiguous bytes.
__device__ __forceinline__ long long mx_block(long long e, int r, int b, int R, int nb, int tiled) {
    if (!tiled) return (e * R + r) * nb + b;
    long long RT = (R + 127) >> 7, NB2 = (nb + 1) >> 1;
    return (((e * RT + (r >> 7)) * NB2 + (b >> 1)) * 2 + (b & 1)) * 128 + (r & 127);
}

// Programmatic dependent launch (sm_90+). Every kernel here begins with pdl_trigger(), which lets
// the next kernel in the stream start as soon as all of this one's CTAs are running, and then
// pdl_wait(), which returns once the kernel before it has finished and its writes are visible; a
// kernel that streams weights (which no kernel writes) issues those loads between the two, so they
// overlap the kernel ahead (linear.cu). Built-in kernels are launched so (CUDAContext.launch, early);
// both are no-ops where there is no such launch.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// gpt-oss's clamped SwiGLU of one (gate, up) pair: min(g, limit) * sigmoid(alpha * min(g, limit)) * (clamp(u) + 1).
__device__ __forceinline__ float clamped_swiglu(float g, float u, float limit, float alpha) {
    g = fminf(g, limit);
    u = fminf(fmaxf(u, -limit), limit);
    return g / (1.f + expf(-alpha * g)) * (u + 1.f);
}

// f32 -> bf16 bits, round to nearest even; NaN stays NaN.
__device__ __forceinline__ unsigned short f32_to_bf16_rne(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* scratch /* 32 floats */) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* scratch /* 32 floats */) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

// One warp quantizes 32 values (lane's v) to q[lane] = round(v / d), d = max |v| / 127 (0 for an
// all-zero block), d written by lane 0 (moe_decode.cu's quantize_q8, moe.cu's add_rms_norm_route).
__device__ __forceinline__ void quantize_block_q8(float v, signed char* q, float* d, int lane) {
    float amax = warp_max(fabsf(v));
    float inv = amax > 0.f ? 127.f / amax : 0.f;
    q[lane] = (signed char)__float2int_rn(v * inv);
    if (lane == 0) *d = amax / 127.f;
}

#define NORM_VPT 4  // values per thread of norm_row: rows up to 4 * 1024

// sum[base + i] = v[k] = a[base + i] + b[base + i] for i = threadIdx.x + k * blockDim.x < H (v[k] = 0
// past H): the residual add ahead of norm_row (add_rms_norm, add_rms_norm_route).
__device__ __forceinline__ void add_row(const float* a, const float* b, float* sum, long long base, int H, float* v) {
    #pragma unroll
    for (int k = 0; k < NORM_VPT; k++) {
        int i = threadIdx.x + k * blockDim.x;
        v[k] = i < H ? a[base + i] + b[base + i] : 0.f;
        if (i < H) sum[base + i] = v[k];
    }
}

// RMSNorm of one row held NORM_VPT values per thread (v[k] = x[threadIdx.x + k * blockDim.x], 0
// past H): out[i] = w[i] * (x[i] * rsqrt(mean(x^2) + eps)), also into `copy` (shared memory) when
// given. elementwise.cu's norms and moe.cu's add_rms_norm_route.
__device__ __forceinline__ void norm_row(float* v, int H, const void* w, int dt, float* out, float* copy, float eps, float* scratch) {
    float ss = 0.f;
    #pragma unroll
    for (int k = 0; k < NORM_VPT; k++) ss += v[k] * v[k];
    ss = block_sum(ss, scratch);
    float r = 1.f / sqrtf(ss / (float)H + eps);
    #pragma unroll
    for (int k = 0; k < NORM_VPT; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < H) {
            float y = load_w(w, i, dt) * (v[k] * r);
            out[i] = y;
            if (copy) copy[i] = y;
        }
    }
}

// One staged chunk of prefill attention for one query (attention.cu and paged_attention.cu): the
// visible keys [jlo, jhi) of the up to 32 keys staged in sK / sV are scored against qr (already
// scaled) and folded into the online softmax (running max m, denominator l) and the output
// accumulator acc. Sub-chunks of 8 keys in a loop that is not unrolled keep the body a few KB of
// code; every lane reads the same K/V element at a time (one shared-memory broadcast feeds 4 FMAs
// per lane). Inlined, so qr and acc stay in the caller's registers.
template <int D>
__device__ __forceinline__ void attend_chunk(const float4 (*sK)[D / 4], const float4 (*sV)[D / 4], const float* qr,
                                             int jlo, int jhi, float& m, float& l, float* acc) {
    constexpr int D4 = D / 4;
    #pragma unroll 1
    for (int sub = jlo & ~7; sub < jhi; sub += 8) {
        float sc[8], cmax = -INFINITY;
        #pragma unroll
        for (int jj = 0; jj < 8; jj++) {
            int j = sub + jj;
            float d0 = 0.f, d1 = 0.f;
            #pragma unroll
            for (int c = 0; c < D4; c++) {
                float4 kk = sK[j][c];
                d0 += qr[4 * c] * kk.x + qr[4 * c + 1] * kk.y;
                d1 += qr[4 * c + 2] * kk.z + qr[4 * c + 3] * kk.w;
            }
            sc[jj] = j >= jlo && j < jhi ? d0 + d1 : -INFINITY;
            cmax = fmaxf(cmax, sc[jj]);
        }
        float mn = fmaxf(m, cmax);  // finite: some key of [sub, sub + 8) is visible
        float corr = expf(m - mn);  // 0 while m is -inf
        l *= corr;
        #pragma unroll
        for (int d = 0; d < D; d++) acc[d] *= corr;
        #pragma unroll
        for (int jj = 0; jj < 8; jj++) {
            float pr = expf(sc[jj] - mn);  // 0 for keys this query cannot see
            l += pr;
            #pragma unroll
            for (int c = 0; c < D4; c++) {
                float4 vv = sV[sub + jj][c];
                acc[4 * c] += pr * vv.x; acc[4 * c + 1] += pr * vv.y; acc[4 * c + 2] += pr * vv.z; acc[4 * c + 3] += pr * vv.w;
            }
        }
        m = mn;
    }
}

// d += A · B for one m16n8k16 bf16 tile, f32 accumulators (sm_80+). Fragments, lane = 4g + t:
// A a0 (row g, k 2t..2t+1) a1 (row g+8) a2 (row g, k 2t+8..) a3 (row g+8, k 2t+8..); B b0 (k 2t..2t+1,
// col g) b1 (k 2t+8..); C c0 c1 (row g, cols 2t, 2t+1) c2 c3 (row g+8). Each .b32 holds two bf16, lower k low.
__device__ __forceinline__ void mma_bf16(float (&d)[4], unsigned int a0, unsigned int a1, unsigned int a2, unsigned int a3,
                                         unsigned int b0, unsigned int b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
__device__ __forceinline__ unsigned smem_u32(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

// mbarriers and bulk copies (moe_grouped_tma.cu, linear.cu's resident decode linears). The
// instructions exist from sm_90; elsewhere (sm_80 builds, the host pass of benchmarks that include
// the kernels) these helpers are empty, and their launchers never pick the kernels that call them.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define SM90_ASYNC 1
#else
#define SM90_ASYNC 0
#endif

__device__ __forceinline__ void mbar_init(unsigned long long* bar, unsigned count) {
#if SM90_ASYNC
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
#endif
}

// Makes the thread's mbarrier initialisations visible to the bulk-copy (async) proxy; then a CTA barrier.
__device__ __forceinline__ void mbar_init_fence() {
#if SM90_ASYNC
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}

__device__ __forceinline__ void mbar_arrive(unsigned long long* bar) {
#if SM90_ASYNC
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
#endif
}

__device__ __forceinline__ void mbar_expect_tx(unsigned long long* bar, unsigned bytes) {
#if SM90_ASYNC
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
#endif
}

// Returns once the phase of `bar` with this parity has completed.
__device__ __forceinline__ void mbar_wait(unsigned long long* bar, unsigned parity) {
#if SM90_ASYNC
    unsigned done = 0;
    while (!done) {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done) : "r"(smem_u32(bar)), "r"(parity) : "memory");
    }
#endif
}

// `bytes` (a multiple of 16; both addresses 16-byte aligned) from global to shared memory, counted on bar.
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, unsigned bytes, unsigned long long* bar) {
#if SM90_ASYNC
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(smem_u32(dst)), "l"(src), "r"(bytes), "r"(smem_u32(bar)) : "memory");
#endif
}
