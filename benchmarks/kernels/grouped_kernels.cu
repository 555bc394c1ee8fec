// Microbenchmark of the grouped MXFP4 expert GEMMs (moe_grouped.cu and moe_grouped_tma.cu,
// included as they are) on gpt-oss-20b's experts (E 32, top-4, H = I = 2,880) for batches of 16 to
// 512 tokens: the cp.async kernels (moe_mxfp4_mma, mma64: what runs before sm_90) beside the
// bulk-copy ring kernels the engine runs on sm_90 (moe_mxfp4_tma16/32/64), and candidates being
// tried. Routing and gathering by the production kernels; each GEMM timed
// alone over back-to-back launches alternating between two copies of the weights (every byte
// from HBM: one copy is 400 MB), GB/s counting the blocks and scales of the experts routed to.
// Every variant's y (gate_up then down, in pick order) is compared with the production kernels'.
// Build here with the pip nvcc (see decode_kernels.cu) and carry the binary, or there:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o grouped_kernels benchmarks/kernels/grouped_kernels.cu
//   ./grouped_kernels            (the table)     ./grouped_kernels ncu    (T = 64 once per kernel, for ncu)
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>
#include <functional>
#include "../../Sources/OspreyCUDA/Kernels/moe_grouped.cu"
#include "../../Sources/OspreyCUDA/Kernels/moe_grouped_tma.cu"
#include "bench_util.cuh"

typedef void (*GroupedFn)(const unsigned short*, const int4*, const int*, const unsigned char*, int, const unsigned char*, const void*, int,
                          void*, int, int, float, float);
typedef void (*TmaFn)(const unsigned short*, const int4*, const int*, const unsigned char*, const unsigned char*, const void*, int, void*,
                      int, int, float, float);

struct Variant {
    const char* name;
    int pairs;  // tile rows
    GroupedFn gu = nullptr, dn = nullptr;  // cp.async kernels (stages fixed by the kernel)
    TmaFn tgu = nullptr, tdn = nullptr;
    int stages = 0;
    size_t shared(int K) const {
        const int nb = K / 32;
        if (gu) return (size_t)(pairs == 64 ? 3 : 4) * (4096 + 128 * pairs) + 128 * nb + 32;
        return 128 + (size_t)stages * (8192 + pairs * GT_ROW) + 128 * (((nb + 3) & ~7) + 4);
    }
};

static const int E = 32, H = 2880, I = 2880, TOPK = 4;

struct Weights {
    unsigned char *blocks, *scales;
    size_t bbytes, sbytes;
};

static Weights make_weights(int R, int K, int copies) {
    int nb = K / 32, RT = (R + 127) / 128, NB2 = (nb + 1) / 2;
    Weights w;
    w.bbytes = (size_t)E * RT * NB2 * 2 * 128 * 16;
    w.sbytes = (size_t)E * R * nb;
    CK(cudaMalloc(&w.blocks, w.bbytes * copies));
    CK(cudaMalloc(&w.scales, w.sbytes * copies + 16));
    std::vector<unsigned char> h(w.bbytes), s(w.sbytes);
    for (auto& v : h) v = (unsigned char)next_u32();
    for (auto& v : s) v = (unsigned char)(118 + next_u32() % 12);
    // Padding (rows past R, blocks past nb) is zero in the tiled layout, as the loader writes it.
    for (int c = 0; c < copies; c++) {
        CK(cudaMemcpy(w.blocks + c * w.bbytes, h.data(), w.bbytes, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(w.scales + c * w.sbytes, s.data(), w.sbytes, cudaMemcpyHostToDevice));
    }
    return w;
}

int main(int argc, char** argv) {
    bool ncu = argc > 1 && !strcmp(argv[1], "ncu");
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("%s, %d SMs, L2 %d MiB\n\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
    const int copies = 2;
    Weights gu = make_weights(2 * I, H, copies), dn = make_weights(H, I, copies);
    unsigned short *gub, *dnb;  // bf16 biases
    CK(cudaMalloc(&gub, (size_t)E * 2 * I * 2)); CK(cudaMalloc(&dnb, (size_t)E * H * 2));
    {
        std::vector<unsigned short> b((size_t)E * 2 * I);
        for (auto& v : b) { float f = next_unit() * 0.1f; unsigned u; memcpy(&u, &f, 4); v = (unsigned short)(u >> 16); }
        CK(cudaMemcpy(gub, b.data(), (size_t)E * 2 * I * 2, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dnb, b.data(), (size_t)E * H * 2, cudaMemcpyHostToDevice));
    }
    std::vector<Variant> variants = {
        {"mma (production, 32 pairs, 4 cp.async stages of 64)", 32, moe_mxfp4_mma_gate_up, moe_mxfp4_mma_down},
        {"mma64 (production, 64 pairs, 3 stages of 64)", 64, moe_mxfp4_mma64_gate_up, moe_mxfp4_mma64_down},
    };
    auto tv = [&](const char* name, int pairs, TmaFn a, TmaFn b, int st) {
        Variant v{name, pairs};
        v.tgu = a; v.tdn = b; v.stages = st;
        variants.push_back(v);
    };
    tv("tma16 (bulk-copy ring, 16 pairs, 3 stages)", 16, moe_mxfp4_tma16_gate_up, moe_mxfp4_tma16_down, 3);
    tv("tma32 (bulk-copy ring, 32 pairs, 3 stages)", 32, moe_mxfp4_tma32_gate_up, moe_mxfp4_tma32_down, 3);
    tv("tma64 (bulk-copy ring, 64 pairs, 2 stages)", 64, moe_mxfp4_tma64_gate_up, moe_mxfp4_tma64_down, 2);
    for (auto& v : variants) {
        const void* fs[2] = {v.gu ? (const void*)v.gu : (const void*)v.tgu, v.gu ? (const void*)v.dn : (const void*)v.tdn};
        for (const void* f : fs) {
            CK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)v.shared(2880)));
            CK(cudaFuncSetAttribute(f, cudaFuncAttributePreferredSharedMemoryCarveout, 100));
        }
    }
    printf("| tokens | kernel | gate_up µs | GB/s | down µs | GB/s | both µs | max |y - production| / max |y| |\n|---|---|---|---|---|---|---|---|\n");
    std::vector<int> Ts = ncu ? std::vector<int>{64} : std::vector<int>{16, 32, 64, 128, 256, 512};
    for (int T : Ts) {
        const int P = T * TOPK;
        std::vector<int> hid(P);
        std::vector<int> used(E, 0);
        for (int t = 0; t < T; t++)
            for (int j = 0; j < TOPK; j++) {
                int e; bool dup;
                do { e = next_u32() % E; dup = false; for (int q = 0; q < j; q++) dup |= hid[t * TOPK + q] == e; } while (dup);
                hid[t * TOPK + j] = e;
                used[e] = 1;
            }
        int distinct = 0;
        for (int u : used) distinct += u;
        std::vector<float> hx((size_t)T * H);
        for (auto& v : hx) v = next_unit();
        int *ids, *order; int4* tiles; float *x, *y, *yref; unsigned short *xs, *hbuf;
        const int maxTiles = (P + 15) / 16 + E;
        CK(cudaMalloc(&ids, P * 4)); CK(cudaMalloc(&order, P * 4)); CK(cudaMalloc(&tiles, maxTiles * 16));
        CK(cudaMalloc(&x, (size_t)T * H * 4)); CK(cudaMalloc(&y, (size_t)P * H * 4)); CK(cudaMalloc(&yref, (size_t)P * H * 4));
        CK(cudaMalloc(&xs, (size_t)P * H * 2)); CK(cudaMalloc(&hbuf, (size_t)P * I * 2));
        CK(cudaMemcpy(ids, hid.data(), P * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(x, hx.data(), (size_t)T * H * 4, cudaMemcpyHostToDevice));
        const double guBytes = (double)distinct * (gu.bbytes + gu.sbytes) / E, dnBytes = (double)distinct * (dn.bbytes + dn.sbytes) / E;
        for (size_t vi = 0; vi < variants.size(); vi++) {
            const Variant& v = variants[vi];
            const int tilesUsed = (P + v.pairs - 1) / v.pairs + (E < P ? E : P);
            moe_grouped_route<<<1, 1024, 4 * (4 * E + 2)>>>(ids, P, E, v.pairs, tilesUsed, order, tiles, y, H);
            moe_grouped_gather<<<P, 256>>>(x, order, TOPK, xs, H);
            CK(cudaGetLastError());
            auto launch = [&](bool gateUp, int c) {
                const int R = gateUp ? 2 * I : H, K = gateUp ? H : I;
                const Weights& w = gateUp ? gu : dn;
                dim3 grid(tilesUsed, (R + 127) / 128);
                const unsigned short* in = gateUp ? xs : hbuf;
                void* out = gateUp ? (void*)hbuf : (void*)y;
                const void* bias = gateUp ? gub : dnb;
                if (v.gu) (gateUp ? v.gu : v.dn)<<<grid, 128, v.shared(K)>>>(in, tiles, order, w.blocks + c * w.bbytes, 1, w.scales + c * w.sbytes,
                                                                             bias, DT_BF16, out, R, K, 7.f, 1.702f);
                else (gateUp ? v.tgu : v.tdn)<<<grid, 160, v.shared(K)>>>(in, tiles, order, w.blocks + c * w.bbytes, w.scales + c * w.sbytes,
                                                                          bias, DT_BF16, out, R, K, 7.f, 1.702f);
            };
            CK(cudaMemset(hbuf, 0xff, (size_t)P * I * 2));  // NaNs: a row a kernel misses shows
            CK(cudaMemset(y, 0xff, (size_t)P * H * 4));
            launch(true, 0); launch(false, 0);
            CK(cudaDeviceSynchronize());
            double diff = 0;
            {
                std::vector<float> a((size_t)P * H), b((size_t)P * H);
                CK(cudaMemcpy(a.data(), y, a.size() * 4, cudaMemcpyDeviceToHost));
                if (vi == 0) CK(cudaMemcpy(yref, y, a.size() * 4, cudaMemcpyDeviceToDevice));
                CK(cudaMemcpy(b.data(), yref, b.size() * 4, cudaMemcpyDeviceToHost));
                double m = 0, ref = 0;
                for (size_t i = 0; i < a.size(); i++) { m = fmax(m, fabs((double)a[i] - b[i])); ref = fmax(ref, fabs((double)b[i])); }
                diff = ref > 0 ? m / ref : m;
                if (!std::isfinite(diff)) diff = 1e30;
            }
            if (ncu) continue;
            double tg = time_us(2, 40, [&](int c) { launch(true, c); });
            double td = time_us(2, 40, [&](int c) { launch(false, c); });
            printf("| %d | %s | %.1f | %.0f | %.1f | %.0f | %.1f | %.2g |\n", T, v.name, tg, guBytes / tg / 1e3, td, dnBytes / td / 1e3, tg + td, diff);
            fflush(stdout);
        }
        CK(cudaFree(ids)); CK(cudaFree(order)); CK(cudaFree(tiles)); CK(cudaFree(x)); CK(cudaFree(y)); CK(cudaFree(yref));
        CK(cudaFree(xs)); CK(cudaFree(hbuf));
    }
    return 0;
}
