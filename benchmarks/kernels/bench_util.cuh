// Shared by the kernel microbenchmarks (decode_kernels.cu, grouped_kernels.cu): error checks, a
// deterministic xorshift generator, and launch timing with CUDA events.
#pragma once
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <functional>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); exit(1); } } while (0)

static unsigned long long rng = 88172645463325252ull;
static unsigned int next_u32() { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (unsigned int)(rng >> 11); }
static float next_unit() { return (next_u32() & 0xffffff) / 16777216.f * 2.f - 1.f; }

// Mean µs per launch of `launch(copy)` over `reps` back-to-back launches cycling through `copies`
// (each copy launched once first, untimed).
static double time_us(int copies, int reps, const std::function<void(int)>& launch) {
    for (int i = 0; i < copies; i++) launch(i);
    CK(cudaDeviceSynchronize());
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
    CK(cudaEventRecord(a));
    for (int i = 0; i < reps; i++) launch(i % copies);
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    CK(cudaGetLastError());
    float ms = 0.f;
    CK(cudaEventElapsedTime(&ms, a, b));
    CK(cudaEventDestroy(a)); CK(cudaEventDestroy(b));
    return 1000.0 * ms / reps;
}
