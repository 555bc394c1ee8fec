// Shared by the kernel microbenchmarks (decode_kernels.cu, grouped_kernels.cu, prefetch_kernels.cu,
// resident_kernels.cu): error checks, a deterministic xorshift generator, rotating weight copies,
// launches with programmatic dependent launch, and timing of launches and graphs with CUDA events.
#pragma once
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <cstring>
#include <vector>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); exit(1); } } while (0)

static unsigned long long rng = 88172645463325252ull;
static unsigned int next_u32() { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (unsigned int)(rng >> 11); }
static float next_unit() { return (next_u32() & 0xffffff) / 16777216.f * 2.f - 1.f; }

// `copies` device copies (enough to pass 256 MiB, more than 4x the L2) of one random bf16 matrix
// [O, I] (values within +-0.05), back to back from *W; returns the count.
static int random_bf16_copies(int O, int I, unsigned short** W) {
    size_t wbytes = (size_t)O * I * 2;
    int copies = (int)((256ull << 20) / wbytes) + 1;
    std::vector<unsigned short> hw((size_t)O * I);
    for (auto& v : hw) { float f = next_unit() * 0.05f; unsigned int u; memcpy(&u, &f, 4); v = (unsigned short)(u >> 16); }
    CK(cudaMalloc(W, wbytes * copies));
    for (int c = 0; c < copies; c++) CK(cudaMemcpy(*W + (size_t)c * O * I, hw.data(), wbytes, cudaMemcpyHostToDevice));
    return copies;
}

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

// Launches f on stream s, with programmatic dependent launch when `pdl` (as Osprey launches).
template <typename... Args>
static void launch_ex(void (*f)(Args...), dim3 g, dim3 b, size_t sh, cudaStream_t s, bool pdl, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = g; cfg.blockDim = b; cfg.dynamicSmemBytes = sh; cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr; cfg.numAttrs = pdl ? 1 : 0;
    CK(cudaLaunchKernelEx(&cfg, f, args...));
}

// Mean µs per iteration of the graph that `capture()` records on stream s (`iterations` of them),
// over `reps` replays after one untimed replay.
static double graph_us(cudaStream_t s, int iterations, int reps, const std::function<void()>& capture) {
    cudaGraph_t g;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    capture();
    CK(cudaStreamEndCapture(s, &g));
    cudaGraphExec_t e;
    CK(cudaGraphInstantiate(&e, g, 0));
    CK(cudaGraphLaunch(e, s));
    CK(cudaStreamSynchronize(s));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
    CK(cudaEventRecord(a, s));
    for (int r = 0; r < reps; r++) CK(cudaGraphLaunch(e, s));
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float ms = 0.f;
    CK(cudaEventElapsedTime(&ms, a, b));
    CK(cudaEventDestroy(a)); CK(cudaEventDestroy(b));
    CK(cudaGraphExecDestroy(e)); CK(cudaGraphDestroy(g));
    return 1000.0 * ms / ((double)reps * iterations);
}
