// Microbenchmark (issue 6): the batch-1 decode linear whose whole weight matrix is copied into
// shared memory (linear_bf16_resident_nN: one bulk copy per block, cp.async.bulk on an mbarrier)
// *before* it waits for the kernel ahead (programmatic dependent launch), so that the small
// dependent kernels ahead of it (RoPE, attention, norms: HBM idle) hide its weight read; after the
// wait only the dot products from shared memory remain. Blocks own contiguous rows, B blocks per
// SM (B = 1, 2, 3), so the whole matrix is resident at once (o_proj 23.6 MB, q/k/v 29.5 MB: 179 /
// 223 KB per SM). Against the staged kernel (linear_bf16_decode_nN, registers then wait).
// First run (2026-11-30, before the kernel moved to linear.cu) also had x read from global memory
// inside the dot loop: 7.6 / 6.6 µs after 8 µs of 1-CTA work, vs 5.4 / 5.0 with x in registers.
// Each graph replays N iterations of
//     spin(S µs, G CTAs with Z bytes of shared memory each) -> linear (copy c)
// with PDL, every iteration on another copy of the weights (> 4x the L2 in rotation); prints what
// the linear adds per iteration (less the same graph without it), production kernel vs candidates,
// and checks every candidate's output against the production kernel's.
// Build and run: nvcc -O3 -std=c++17 -arch=sm_90a -o resident_kernels benchmarks/kernels/resident_kernels.cu
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>
#include <functional>
#include "../../Sources/OspreyCUDA/Kernels/linear.cu"
#include "bench_util.cuh"

// Busy-waits `cycles` SM cycles in each of its CTAs (the small kernels ahead of a linear); its
// dynamic shared memory only occupies space, as attention's does.
__global__ void spin(long long cycles) {
    pdl_trigger(); pdl_wait();
    long long t0 = clock64();
    while (clock64() - t0 < cycles) {}
}

struct Ahead { int grid, smem; const char* label; };

static void bench(const char* name, int O0, int O1, int O2, int I, int sms) {
    int O = O0 + O1 + O2;
    size_t wbytes = (size_t)O * I * 2;
    unsigned short* W;
    int copies = random_bf16_copies(O, I, &W);
    float *x, *out, *ref;
    CK(cudaMalloc(&x, I * 4)); CK(cudaMalloc(&out, O * 4)); CK(cudaMalloc(&ref, O * 4));
    std::vector<float> hx(I);
    for (auto& v : hx) v = next_unit();
    CK(cudaMemcpy(x, hx.data(), I * 4, cudaMemcpyHostToDevice));
    int loads = (I / 8 + 31) / 32;
    auto lin = loads <= 12 ? linear_bf16_decode_n12 : linear_bf16_decode_n16;
    int prodWarps = loads > 12 ? 4 : 8;  // the launcher's choice at one token
    CK(cudaFuncSetAttribute(lin, cudaFuncAttributeMaxDynamicSharedMemorySize, 4 * 4096 * 4));
    auto res = loads <= 12 ? linear_bf16_resident_n12 : linear_bf16_resident_n16;
    cudaFuncAttributes fa;
    CK(cudaFuncGetAttributes(&fa, res));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    int maxDynamic = (int)prop.sharedMemPerBlockOptin - (int)fa.sharedSizeBytes;
    CK(cudaFuncSetAttribute(res, cudaFuncAttributeMaxDynamicSharedMemorySize, maxDynamic));
    CK(cudaFuncSetAttribute(spin, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024));
    cudaStream_t s1;
    CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
    const int N = 4 * copies, reps = 10;
    // variant 0: production; v >= 1: resident with v blocks per SM.
    auto lin_launch = [&](int v, const unsigned short* w, float* o) {
        const unsigned short *w1 = w + (size_t)O0 * I, *w2 = w1 + (size_t)O1 * I;
        float *o1 = o + O0, *o2 = o1 + O1;
        if (v == 0) {
            launch_ex(lin, dim3((O + prodWarps - 1) / prodWarps), dim3(32 * prodWarps), (size_t)I * 4, s1, true, (const float*)x, w, w1, w2,
                   (const void*)nullptr, (const void*)nullptr, (const void*)nullptr, 0, o, o1, o2, O0, O1, O2, 1, I);
        } else {
            int blocks = v * sms, R = (O + blocks - 1) / blocks, warps = (R + 2) / 3;
            launch_ex(res, dim3((O + R - 1) / R), dim3(32 * warps), (size_t)R * I * 2, s1, true, (const float*)x, w, w1, w2,
                   (const void*)nullptr, (const void*)nullptr, (const void*)nullptr, 0, o, o1, o2, O0, O1, O2, 1, I, R);
        }
    };
    auto run = [&](double S, Ahead a, int v, bool linear) {
        return graph_us(s1, N, reps, [&] {
            for (int i = 0; i < N; i++) {
                launch_ex(spin, dim3(a.grid), dim3(128), (size_t)a.smem, s1, true, (long long)(S * 1980));
                if (linear) lin_launch(v, W + (size_t)(i % copies) * O * I, out);
            }
        });
    };
    // Correctness: every candidate against production on copy 0.
    lin_launch(0, W, ref);
    CK(cudaStreamSynchronize(s1));
    std::vector<float> hr(O), ho(O);
    CK(cudaMemcpy(hr.data(), ref, O * 4, cudaMemcpyDeviceToHost));
    printf("\n### %s (%.1f MB per copy, %d copies)\n\n", name, wbytes / 1e6, copies);
    for (int v = 1; v <= 3; v++) {
        int blocks = v * sms, R = (O + blocks - 1) / blocks;
        if ((size_t)R * I * 2 > (size_t)maxDynamic) { printf("resident B=%d: %d rows, too much shared memory\n", v, R); continue; }
        CK(cudaMemset(out, 0, O * 4));
        lin_launch(v, W, out);
        CK(cudaStreamSynchronize(s1));
        CK(cudaGetLastError());
        CK(cudaMemcpy(ho.data(), out, O * 4, cudaMemcpyDeviceToHost));
        double md = 0, mr = 0;
        for (int i = 0; i < O; i++) { md = fmax(md, fabs(ho[i] - hr[i])); mr = fmax(mr, fabs(hr[i])); }
        printf("resident B=%d (%d rows, %d KB per block): max |diff| / max |ref| = %.2e%s\n", v, R, (int)((size_t)R * I * 2 / 1024), md / mr,
               md / mr < 1e-5 ? "" : "  MISMATCH");
    }
    printf("\n| ahead of the linear | spin (µs) | kernel | µs per iteration | linear adds (µs) | linear's GB/s |\n|---|---|---|---|---|---|\n");
    Ahead aheads[] = {{1, 0, "1 CTA"}, {2 * sms, 36 * 1024, "2 CTAs/SM x 36 KB smem"}};
    for (const Ahead& a : aheads) {
        for (double S : {0.0, 4.0, 8.0, 16.0}) {
            double base = run(S, a, 0, false);
            for (int v = 0; v <= 3; v++) {
                int blocks = v * sms, R = v ? (O + blocks - 1) / blocks : 0;
                if ((size_t)R * I * 2 > (size_t)maxDynamic) continue;
                double t = run(S, a, v, true);
                char label[64];
                if (v == 0) snprintf(label, sizeof label, "production (%d warps)", prodWarps);
                else snprintf(label, sizeof label, "resident, %d per SM (%d rows)", v, R);
                printf("| %s | %.0f | %s | %.2f | %.2f | %.0f |\n", a.label, S, label, t, t - base, wbytes / (t - base) / 1e3);
            }
            fflush(stdout);
        }
    }
    CK(cudaFree(W)); CK(cudaFree(x)); CK(cudaFree(out)); CK(cudaFree(ref));
    CK(cudaStreamDestroy(s1));
}

int main() {
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("%s, %d SMs, L2 %d MiB, %zu KB shared memory per block (opt-in)\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20,
           prop.sharedMemPerBlockOptin / 1024);
    bench("o_proj 2880 x 4096 (bf16), 1 token", 2880, 0, 0, 4096, prop.multiProcessorCount);
    bench("q/k/v 4096 + 512 + 512 x 2880 (bf16), 1 token", 4096, 512, 512, 2880, prop.multiProcessorCount);
    return 0;
}
