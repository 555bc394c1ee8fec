// Microbenchmark (issue 6): does an L2 prefetch of a decode linear's weights, issued on a side
// branch of the graph while the small dependent kernels ahead of the linear run (RoPE, attention,
// norms: DRAM idle), shorten the linear? Each graph replays N iterations of
//     spin(S µs, one CTA, stands for the small kernels) -> production decode linear (copy c)
// with every iteration reading another copy of the weights (> 4x the L2 in rotation), with and
// without programmatic dependent launch, and with the copy's weights prefetched to L2 from a
// forked stream that starts where the iteration starts (after the previous linear). Prints the
// time per iteration and, less the same graph with no linear, what the linear adds.
// Build and run: nvcc -O3 -std=c++17 -arch=sm_90a -o prefetch_kernels benchmarks/kernels/prefetch_kernels.cu
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <functional>
#include "../../Sources/OspreyCUDA/Kernels/linear.cu"
#include "bench_util.cuh"

// Busy-waits `cycles` SM cycles on one CTA (the chain of small kernels ahead of a linear).
__global__ void spin(long long cycles) {
    pdl_trigger(); pdl_wait();
    long long t0 = clock64();
    while (clock64() - t0 < cycles) {}
}

// One prefetch.global.L2 per 128-byte line, lines spread over the grid.
__global__ void prefetch_lines(const char* p, long long bytes) {
    pdl_trigger();
    long long stride = (long long)gridDim.x * blockDim.x * 128;
    for (long long off = (blockIdx.x * (long long)blockDim.x + threadIdx.x) * 128; off < bytes; off += stride)
        asm volatile("prefetch.global.L2::evict_last [%0];" :: "l"(p + off));
}

// One bulk L2 prefetch (the copy engine) per `chunk` bytes, chunks spread over the grid's threads.
__global__ void prefetch_bulk(const char* p, long long bytes, int chunk) {
    pdl_trigger();
    long long stride = (long long)gridDim.x * blockDim.x * chunk;
    for (long long off = (blockIdx.x * (long long)blockDim.x + threadIdx.x) * (long long)chunk; off < bytes; off += stride) {
        unsigned int n = (unsigned int)(bytes - off < chunk ? bytes - off : chunk);
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" :: "l"(p + off), "r"(n) : "memory");
    }
}

enum Prefetch { none, lines, bulk };

static void bench(const char* name, int O, int I, int sms) {
    size_t wbytes = (size_t)O * I * 2;
    unsigned short* W;
    int copies = random_bf16_copies(O, I, &W);
    float *x, *out;
    CK(cudaMalloc(&x, I * 4)); CK(cudaMalloc(&out, O * 4));
    CK(cudaMemset(x, 0, I * 4));
    int loads = (I / 8 + 31) / 32;
    auto lin = loads <= 12 ? linear_bf16_decode_n12 : linear_bf16_decode_n16;
    CK(cudaFuncSetAttribute(lin, cudaFuncAttributeMaxDynamicSharedMemorySize, 4 * 4096 * 4));
    cudaStream_t s1, s2;
    CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking)); CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    cudaEvent_t fork, join;
    CK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming)); CK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
    const int N = 4 * copies, reps = 10;
    // µs per iteration of the graph: spin(S) [-> linear], prefetch p on the side branch.
    auto run = [&](double S, bool pdl, Prefetch p, bool linear, int grid, int chunk) {
        return graph_us(s1, N, reps, [&] {
            for (int i = 0; i < N; i++) {
                const unsigned short* w = W + (size_t)(i % copies) * O * I;
                if (p != none) {
                    CK(cudaEventRecord(fork, s1));
                    CK(cudaStreamWaitEvent(s2, fork, 0));
                    if (p == lines) launch_ex(prefetch_lines, dim3(grid), dim3(256), 0, s2, false, (const char*)w, (long long)wbytes);
                    else launch_ex(prefetch_bulk, dim3(grid), dim3(32), 0, s2, false, (const char*)w, (long long)wbytes, chunk);
                }
                launch_ex(spin, dim3(1), dim3(32), 0, s1, pdl, (long long)(S * 1980));
                if (linear)
                    launch_ex(lin, dim3((O + 3) / 4), dim3(128), (size_t)I * 4, s1, pdl, (const float*)x, w, w, w, (const void*)nullptr,
                              (const void*)nullptr, (const void*)nullptr, 0, out, out, out, O, 0, 0, 1, I);
            }
            if (p != none) { CK(cudaEventRecord(join, s2)); CK(cudaStreamWaitEvent(s1, join, 0)); }
        });
    };
    printf("\n### %s (%.1f MB per copy, %d copies)\n\n", name, wbytes / 1e6, copies);
    printf("| spin (µs) | PDL | prefetch | µs per iteration | spin alone | linear adds (µs) | linear's GB/s |\n|---|---|---|---|---|---|---|\n");
    for (double S : {0.0, 4.0, 8.0, 16.0}) {
        for (bool pdl : {false, true}) {
            double base = run(S, pdl, none, false, 0, 0);
            struct V { Prefetch p; int grid, chunk; const char* label; };
            V vs[] = {{none, 0, 0, "none"}, {lines, sms, 0, "lines, 1 CTA/SM x 256"}, {lines, 4 * sms, 0, "lines, 4 CTA/SM x 256"},
                      {bulk, sms, 16384, "bulk 16 KB, 1 CTA/SM x 32"}, {bulk, sms, 65536, "bulk 64 KB, 1 CTA/SM x 32"}};
            for (const V& v : vs) {
                double t = run(S, pdl, v.p, true, v.grid, v.chunk);
                printf("| %.0f | %s | %s | %.2f | %.2f | %.2f | %.0f |\n", S, pdl ? "on" : "off", v.label, t, base, t - base,
                       wbytes / (t - base) / 1e3);
            }
        }
        fflush(stdout);
    }
    // The prefetch kernels alone, back to back on cold copies: how long issuing takes (not arrival).
    for (int chunk : {0, 16384, 65536}) {
        double t = time_us(copies, 50, [&](int c) {
            const char* w = (const char*)(W + (size_t)c * O * I);
            if (chunk == 0) prefetch_lines<<<sms, 256>>>(w, (long long)wbytes);
            else prefetch_bulk<<<sms, 32>>>(w, (long long)wbytes, chunk);
        });
        printf("\nprefetch kernel alone (%s): %.2f µs per launch\n", chunk == 0 ? "lines" : chunk == 16384 ? "bulk 16 KB" : "bulk 64 KB", t);
    }
    CK(cudaFree(W)); CK(cudaFree(x)); CK(cudaFree(out));
    CK(cudaStreamDestroy(s1)); CK(cudaStreamDestroy(s2));
}

int main() {
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("%s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
    bench("o_proj 2880 x 4096 (bf16), 1 token", 2880, 4096, prop.multiProcessorCount);
    bench("q/k/v 5120 x 2880 (bf16), 1 token", 5120, 2880, prop.multiProcessorCount);
    return 0;
}
