// Microbenchmark of the batch-1..4 decode kernels that stream weights (issue 6): the production
// kernels (Sources/OspreyCUDA/Kernels, included as they are) beside candidate designs (stream.cuh),
// on the gpt-oss-20b shapes, each launch reading a different copy of the weights (more than 4x the
// 60 MiB L2 in rotation) so that every byte comes from HBM, as in a decode step. Prints one line per
// kernel and shape: µs per launch (mean over back-to-back launches), GB/s of weights read, and the
// largest difference from the production kernel's output (every candidate must agree).
// Build and run (on the GPU machine, or build here with the pip nvcc and carry the binary):
//   nvcc -O3 -std=c++17 -arch=sm_90a -o decode_kernels benchmarks/kernels/decode_kernels.cu && ./decode_kernels
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
#include <string>
#include <functional>
#include "../../Sources/OspreyCUDA/Kernels/linear.cu"
#include "stream.cuh"
#include "bench_util.cuh"

__global__ void read_all(const uint4* p, long long n, unsigned int* sink) {
    unsigned int acc = 0;
    #pragma unroll 4
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        uint4 v = p[i];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) *sink = acc;
}

static int num_sms;

// The production decode code with its registers capped so that 6 CTAs of 128 threads fit an SM.
__global__ void __launch_bounds__(128, 6) linear_lb6_n12(LINEAR_DECODE_ARGS) { pdl_trigger(); linear_decode_preloaded<12, true>(LINEAR_DECODE_PASS); }
__global__ void __launch_bounds__(128, 6) linear_lb6_n16(LINEAR_DECODE_ARGS) { pdl_trigger(); linear_decode_preloaded<16, true>(LINEAR_DECODE_PASS); }
// The production decode linear reading x from global memory (linear_bf16_decode_direct_nN), also
// for the 16-load rows production stages (o_proj).
template <int NL>
__global__ void linear_direct(LINEAR_DECODE_ARGS) { pdl_trigger(); linear_decode_preloaded<NL, false>(LINEAR_DECODE_PASS); }

// The production MoE decode code with its registers capped so that 3 CTAs of 256 threads fit an SM.
template <int NC>
__global__ void __launch_bounds__(256, 3) moe_q8_lb3(MXFP4_Q8_ARGS) {
    pdl_trigger(); pdl_wait();
    mxfp4_rows_q8_tiled<NC>(xq, xd, div, ids, blocks, scales, bias, bdt, out, rows, cols);
}

static double max_diff(const float* dev_a, const float* dev_b, size_t n) {
    std::vector<float> a(n), b(n);
    CK(cudaMemcpy(a.data(), dev_a, n * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(b.data(), dev_b, n * 4, cudaMemcpyDeviceToHost));
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

static void report(const char* kernel, const char* shape, int T, double us, double bytes, double diff) {
    printf("| %s | %s | %d | %.2f | %.0f | %.2g |\n", kernel, shape, T, us, bytes / us / 1e3, diff);
    fflush(stdout);
}

static void bench_linear(const char* name, int O, int I) {
    size_t wbytes = (size_t)O * I * 2;
    unsigned short* W;
    int copies = random_bf16_copies(O, I, &W);
    std::vector<float> hx(4 * I);
    for (auto& v : hx) v = next_unit();
    float *x, *ref, *out;
    CK(cudaMalloc(&x, 4 * I * 4)); CK(cudaMalloc(&ref, 4 * O * 4)); CK(cudaMalloc(&out, 4 * O * 4));
    CK(cudaMemcpy(x, hx.data(), 4 * I * 4, cudaMemcpyHostToDevice));
    int loads = (I / 8 + 31) / 32;
    for (int T : {1, 4}) {
        auto prod = [&](int c, float* o) {
            const unsigned short* w = W + (size_t)c * O * I;
            dim3 g((O + 3) / 4);
            size_t sh = (size_t)T * I * 4;
            if (loads <= 12) linear_bf16_decode_n12<<<g, 128, sh>>>(x, w, w, w, nullptr, nullptr, nullptr, 0, o, o, o, O, 0, 0, T, I);
            else linear_bf16_decode_n16<<<g, 128, sh>>>(x, w, w, w, nullptr, nullptr, nullptr, 0, o, o, o, O, 0, 0, T, I);
        };
        CK(cudaFuncSetAttribute(linear_bf16_decode_n12, cudaFuncAttributeMaxDynamicSharedMemorySize, 4 * 4096 * 4));
        CK(cudaFuncSetAttribute(linear_bf16_decode_n16, cudaFuncAttributeMaxDynamicSharedMemorySize, 4 * 4096 * 4));
        prod(0, ref);
        double us = time_us(copies, 200, [&](int c) { prod(c, ref); });
        prod(0, ref);
        report(loads <= 12 ? "linear_bf16_decode_n12 (production)" : "linear_bf16_decode_n16 (production)", name, T, us, wbytes, 0);
        us = time_us(1, 200, [&](int) { prod(0, ref); });
        report("the same, weights hot in L2 (one copy)", name, T, us, wbytes, 0);
        // A candidate: run once against the production output, then timed.
        auto candidate = [&](const char* label, const std::function<void(int)>& run) {
            CK(cudaMemset(out, 0, 4 * O * 4));
            run(0);
            CK(cudaDeviceSynchronize());
            double d = max_diff(ref, out, (size_t)T * O);
            report(label, name, T, time_us(copies, 200, run), wbytes, d);
        };
        char label[96];
        for (int threads : {64, 256, 512}) {
            auto f = loads <= 12 ? linear_bf16_decode_n12 : linear_bf16_decode_n16;
            snprintf(label, sizeof label, "production kernel, %d threads per CTA", threads);
            candidate(label, [&](int c) {
                const unsigned short* w = W + (size_t)c * O * I;
                f<<<(O * 32 + threads - 1) / threads, threads, (size_t)T * I * 4>>>(x, w, w, w, nullptr, nullptr, nullptr, 0, out, out, out, O, 0, 0, T, I);
            });
        }
        for (int threads : {128, 256}) {
            auto f = loads <= 12 ? linear_direct<12> : linear_direct<16>;
            snprintf(label, sizeof label, "x read from global (no staging), %d threads per CTA", threads);
            candidate(label, [&](int c) {
                const unsigned short* w = W + (size_t)c * O * I;
                f<<<(O * 32 + threads - 1) / threads, threads>>>(x, w, w, w, nullptr, nullptr, nullptr, 0, out, out, out, O, 0, 0, T, I);
            });
        }
        {
            auto f = loads <= 12 ? linear_lb6_n12 : linear_lb6_n16;
            CK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, 4 * 4096 * 4));
            candidate("production code, __launch_bounds__(128, 6)", [&](int c) {
                const unsigned short* w = W + (size_t)c * O * I;
                f<<<(O + 3) / 4, 128, (size_t)T * I * 4>>>(x, w, w, w, nullptr, nullptr, nullptr, 0, out, out, out, O, 0, 0, T, I);
            });
        }
        for (int rpw : {1, 2}) {
            size_t xb = (size_t)T * I * 4, stage = (size_t)8 * rpw * I * 2;
            int S = (int)std::min<size_t>(6, (227 * 1024 - 128 - xb) / stage);
            if (S < 2) continue;
            size_t sh = 128 + xb + S * stage;
            auto f = rpw == 1 ? gemv_tma<1> : gemv_tma<2>;
            CK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh));
            snprintf(label, sizeof label, "gemv_tma rows/warp %d, %d stages of %zu KB", rpw, S, stage / 1024);
            candidate(label, [&](int c) { f<<<num_sms, 32 * (TMA_WARPS + 1), sh>>>(x, W + (size_t)c * O * I, nullptr, 0, out, O, I, T, S); });
        }
        for (int per_sm : {1, 2, 3}) {
            size_t sh = (size_t)T * I * 4;
            auto f = loads <= 12 ? gemv_regpipe<12> : gemv_regpipe<16>;
            CK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh));
            snprintf(label, sizeof label, "gemv_regpipe %d CTA/SM", per_sm);
            candidate(label, [&](int c) { f<<<num_sms * per_sm, 256, sh>>>(x, W + (size_t)c * O * I, nullptr, 0, out, O, I, T); });
        }
    }
    CK(cudaFree(W)); CK(cudaFree(x)); CK(cudaFree(ref)); CK(cudaFree(out));
}

// MXFP4 experts of 32, 4 picked per token (T = 1): gate_up (rows 5760, cols 2880) and down (2880, 2880).
static void bench_moe(const char* name, int rows, int cols, int E, int k) {
    int nb = cols / 32, RT = (rows + 127) / 128, NB2 = (nb + 1) / 2;
    size_t bbytes = (size_t)E * RT * NB2 * 2 * 128 * 16, sbytes = (size_t)E * rows * nb;
    unsigned char *blocks, *scales;
    CK(cudaMalloc(&blocks, bbytes)); CK(cudaMalloc(&scales, sbytes));
    {
        std::vector<unsigned char> h(bbytes);
        for (auto& v : h) v = (unsigned char)next_u32();
        CK(cudaMemcpy(blocks, h.data(), bbytes, cudaMemcpyHostToDevice));
        std::vector<unsigned char> s(sbytes);
        for (auto& v : s) v = (unsigned char)(118 + next_u32() % 12);
        CK(cudaMemcpy(scales, s.data(), sbytes, cudaMemcpyHostToDevice));
    }
    // 64 sets of k distinct experts, rotated per launch.
    const int sets = 64;
    std::vector<int> hid(sets * k);
    for (int s = 0; s < sets; s++)
        for (int j = 0; j < k; j++) {
            int e;
            bool dup;
            do { e = next_u32() % E; dup = false; for (int q = 0; q < j; q++) dup |= hid[s * k + q] == e; } while (dup);
            hid[s * k + j] = e;
        }
    int* ids;
    CK(cudaMalloc(&ids, hid.size() * 4));
    CK(cudaMemcpy(ids, hid.data(), hid.size() * 4, cudaMemcpyHostToDevice));
    // The expert input and its int8 form (as quantize_q8 makes it), which the kernels read.
    std::vector<float> hx(cols);
    for (auto& v : hx) v = next_unit();
    std::vector<signed char> hq(cols);
    std::vector<float> hd(nb);
    for (int c = 0; c < nb; c++) {
        float amax = 0.f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(hx[c * 32 + j]));
        float inv = amax > 0.f ? 127.f / amax : 0.f;
        for (int j = 0; j < 32; j++) hq[c * 32 + j] = (signed char)nearbyintf(hx[c * 32 + j] * inv);
        hd[c] = amax / 127.f;
    }
    float* x;
    CK(cudaMalloc(&x, cols * 4));
    CK(cudaMemcpy(x, hx.data(), cols * 4, cudaMemcpyHostToDevice));
    signed char* xq; float *xd, *ref, *out;
    CK(cudaMalloc(&xq, cols)); CK(cudaMalloc(&xd, nb * 4));
    CK(cudaMemcpy(xq, hq.data(), cols, cudaMemcpyHostToDevice)); CK(cudaMemcpy(xd, hd.data(), nb * 4, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&ref, (size_t)k * rows * 4)); CK(cudaMalloc(&out, (size_t)k * rows * 4));
    unsigned short* bias;  // bf16 expert biases [E, rows]
    CK(cudaMalloc(&bias, (size_t)E * rows * 2));
    CK(cudaMemset(bias, 0, (size_t)E * rows * 2));
    double bytes = (double)k * rows * nb * 17;  // blocks + scales of the picked experts
    int chunks = (nb + 31) / 32, warps = 8, groups = (rows + 3) / 4;
    dim3 grid((groups + warps - 1) / warps, k);
    auto prod = chunks == 1 ? moe_mxfp4_q8_c1 : chunks == 2 ? moe_mxfp4_q8_c2 : chunks == 3 ? moe_mxfp4_q8_c3 : moe_mxfp4_q8_c4;
    {
        auto run = [&](int s) { prod<<<grid, 32 * warps>>>(xq, xd, k, ids + s * k, blocks, 1, scales, bias, DT_BF16, ref, rows, cols); };
        double u = time_us(sets, 256, run);
        report("moe_mxfp4_q8 (production)", name, 1, u, bytes, 0);
        u = time_us(1, 256, [&](int) { run(0); });
        report("the same, weights hot in L2 (one expert set)", name, 1, u, bytes, 0);
    }
    prod<<<grid, 32 * warps>>>(xq, xd, k, ids, blocks, 1, scales, bias, DT_BF16, ref, rows, cols);
    auto moe_candidate = [&](const char* label, const std::function<void(int)>& run) {
        CK(cudaMemset(out, 0, (size_t)k * rows * 4));
        run(0);
        CK(cudaDeviceSynchronize());
        double d = max_diff(ref, out, (size_t)k * rows);
        report(label, name, 1, time_us(sets, 256, run), bytes, d);
    };
    for (int wv : {2, 4}) {  // (production is bounded to 256 threads per CTA)
        char label[96];
        snprintf(label, sizeof label, "production kernel, %d warps per CTA", wv);
        dim3 g2((groups + wv - 1) / wv, k);
        moe_candidate(label, [&](int s) { prod<<<g2, 32 * wv>>>(xq, xd, k, ids + s * k, blocks, 1, scales, bias, DT_BF16, out, rows, cols); });
    }
    {
        auto f = chunks == 1 ? moe_q8_lb3<1> : chunks == 2 ? moe_q8_lb3<2> : chunks == 3 ? moe_q8_lb3<3> : moe_q8_lb3<4>;
        moe_candidate("production code, __launch_bounds__(256, 3)", [&](int s) { f<<<grid, 256>>>(xq, xd, k, ids + s * k, blocks, 1, scales, bias, DT_BF16, out, rows, cols); });
    }
    {
        int nb2 = (nb + 1) / 2;
        size_t stage = ((size_t)nb2 * 1024 + 32 * nb + 127) & ~(size_t)127;
        size_t fixed = 128 + 2048 + (((size_t)nb * 4 + 15) & ~(size_t)15) + (((size_t)cols + 127) & ~(size_t)127) + 128;
        int S = (int)std::min<size_t>(6, (227 * 1024 - fixed) / stage);
        size_t sh = fixed + S * stage;
        CK(cudaFuncSetAttribute(moe_q8_stream, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh));
        auto run = [&](int s) { moe_q8_stream<<<num_sms, 32 * (TMA_WARPS + 1), sh>>>(xq, xd, k, ids + s * k, blocks, scales, bias, DT_BF16, out, k, rows, cols, S); };
        CK(cudaMemset(out, 0, (size_t)k * rows * 4));
        run(0);
        CK(cudaDeviceSynchronize());
        double d = max_diff(ref, out, (size_t)k * rows);
        double u = time_us(sets, 256, run);
        char label[96];
        snprintf(label, sizeof label, "moe_q8_stream, %d stages of %zu KB", S, stage / 1024);
        report(label, name, 1, u, bytes, d);
    }
    CK(cudaFree(blocks)); CK(cudaFree(scales)); CK(cudaFree(ids)); CK(cudaFree(xq)); CK(cudaFree(xd)); CK(cudaFree(ref)); CK(cudaFree(out)); CK(cudaFree(bias)); CK(cudaFree(x));
}

int main() {
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    num_sms = prop.multiProcessorCount;
    printf("%s, %d SMs, L2 %d MiB\n\n", prop.name, num_sms, prop.l2CacheSize >> 20);
    printf("| kernel | shape | tokens | µs per launch | GB/s | max diff vs production |\n|---|---|---|---|---|---|\n");
    {
        long long n = (2ll << 30) / 16;
        uint4* p;
        unsigned int* sink;
        CK(cudaMalloc(&p, n * 16)); CK(cudaMalloc(&sink, 4));
        CK(cudaMemset(p, 1, n * 16));
        for (int per_sm : {4, 8}) {
            double us = time_us(1, 10, [&](int) { read_all<<<num_sms * per_sm, 512>>>(p, n, sink); });
            char label[64];
            snprintf(label, sizeof label, "read_all (ceiling), %d x 512 threads per SM", per_sm);
            report(label, "2 GiB", 0, us, (double)n * 16, 0);
        }
        // The floor for one decode kernel's weights: the same plain read of 17.6-35.2 MB (the sizes
        // of down, o_proj, q/k/v and gate_up at batch 1), copies rotated past the L2.
        for (double mb : {17.6, 23.6, 29.5, 35.2}) {
            long long m = (long long)(mb * 1e6) / 16;
            int copies = (int)(n / m);
            for (int per_sm : {2, 4, 8}) {
                double us = time_us(copies, 200, [&](int c) { read_all<<<num_sms * per_sm, 512>>>(p + (long long)c * m, m, sink); });
                char label[64], shape[32];
                snprintf(label, sizeof label, "read_all, %d x 512 threads per SM", per_sm);
                snprintf(shape, sizeof shape, "%.1f MB", mb);
                report(label, shape, 0, us, (double)m * 16, 0);
            }
        }
        CK(cudaFree(p)); CK(cudaFree(sink));
    }
    bench_linear("q/k/v 5120 x 2880", 5120, 2880);
    bench_linear("o_proj 2880 x 4096", 2880, 4096);
    bench_linear("lm_head 201088 x 2880", 201088, 2880);
    bench_moe("experts gate_up 4 x 5760 x 2880", 5760, 2880, 32, 4);
    bench_moe("experts down 4 x 2880 x 2880", 2880, 2880, 32, 4);
    return 0;
}
