// Picking tokens on the device, so a decode step sends nothing to the host but the token id.
//   argmax  out[t] = the index of the largest logit of row t (ties to the lower index); one block
//           of 1024 threads per row, each thread scanning a strided slice, then a block reduction.
// Launcher: CUDABackend+Ops.swift.
#include "common.cuh"

extern "C" __global__ void argmax(const float* logits, int V, int* out) {
    __shared__ float bestV[32];
    __shared__ int bestI[32];
    const float* row = logits + (long long)blockIdx.x * V;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float x = row[i];
        if (x > bv) { bv = x; bi = i; }  // strided scan: the first maximum of this thread's slice
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { bestV[warp] = bv; bestI[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
        int warps = blockDim.x >> 5;
        bv = lane < warps ? bestV[lane] : -INFINITY;
        bi = lane < warps ? bestI[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
        }
        if (lane == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;  // all NaN: 0
    }
}
