// Picking tokens on the device, so a decode step sends nothing to the host but the token id.
//   argmax  out[t] = the index of the largest logit of row t (ties to the lower index); one block
//           of 1024 threads per row, each thread scanning a strided slice, then a block reduction.
//   sample_gumbel  out[t] = the index of the largest logit / temperature + Gumbel noise of row t:
//           a draw from softmax(logits / temperature) (GumbelSampling in OspreyCore: the same
//           noise, the same rounding — no fused multiply-add — so the CPU oracle picks the same).
// Launcher: CUDABackend+Ops.swift.
#include "common.cuh"

// The (value, index) maximum over a warp, ties to the lower index, in every lane.
__device__ __forceinline__ void warp_argmax(float& bv, int& bi) {
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
}

// The (value, index) maximum of a block from each thread's (bv, bi), ties to the lower index,
// written to *out by thread 0; an index never set (every value NaN) is written as 0.
__device__ __forceinline__ void block_argmax_store(float bv, int bi, int* out) {
    __shared__ float bestV[32];
    __shared__ int bestI[32];
    warp_argmax(bv, bi);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { bestV[warp] = bv; bestI[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
        int warps = blockDim.x >> 5;
        bv = lane < warps ? bestV[lane] : -INFINITY;
        bi = lane < warps ? bestI[lane] : 0x7fffffff;
        warp_argmax(bv, bi);
        if (lane == 0) *out = bi == 0x7fffffff ? 0 : bi;
    }
}

extern "C" __global__ void argmax(const float* logits, int V, int* out) {
    pdl_trigger(); pdl_wait();
    const float* row = logits + (long long)blockIdx.x * V;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float x = row[i];
        if (x > bv) { bv = x; bi = i; }  // strided scan: the first maximum of this thread's slice
    }
    block_argmax_store(bv, bi, out + blockIdx.x);
}

// u in (0, 1) for token i under seed: splitmix64's finaliser of seed + (i + 1) * golden, top 24 bits.
__device__ __forceinline__ float gumbel_uniform(unsigned long long seed, int i) {
    unsigned long long z = seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return ((float)(z >> 40) + 0.5f) / 16777216.f;
}

// params [T, 3] (u32): temperature (f32 bits, > 0), seed low and high words.
extern "C" __global__ void sample_gumbel(const float* logits, int V, const unsigned int* params, int* out) {
    pdl_trigger(); pdl_wait();
    const float* row = logits + (long long)blockIdx.x * V;
    const unsigned int* p = params + 3 * blockIdx.x;
    const float inv = 1.f / __uint_as_float(p[0]);
    const unsigned long long seed = (unsigned long long)p[1] | ((unsigned long long)p[2] << 32);
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float x = __fsub_rn(__fmul_rn(row[i], inv), logf(-logf(gumbel_uniform(seed, i))));
        if (x > bv) { bv = x; bi = i; }
    }
    block_argmax_store(bv, bi, out + blockIdx.x);
}
