// The host-side plan of the grouped MXFP4 expert GEMMs (CUDABackend+Grouped.swift), which needs no
// GPU: the tile chosen for a batch, and the shared memory each kernel asks for, against the
// layouts the kernels assume (moe_grouped.cu, moe_grouped_tma.cu). The kernels themselves are
// checked against the CPU oracle on the GPU machine (osprey gpu-check).
import Testing
@testable import OspreyCUDA

@Suite struct GroupedPlanTests {
    /// Tiles of 16 pairs while experts average at most 8 (token, pick) pairs, 32 up to 24, 64 above;
    /// the boundaries at gpt-oss-20b's 32 experts and top-4: 64, 192 tokens.
    @Test func tileFollowsPairsPerExpert() {
        let E = 32
        #expect(CUDABackend.tmaTile(pairs: 16 * 4, experts: E).pairs == 16)
        #expect(CUDABackend.tmaTile(pairs: 64 * 4, experts: E).pairs == 16)
        #expect(CUDABackend.tmaTile(pairs: 65 * 4, experts: E).pairs == 32)
        #expect(CUDABackend.tmaTile(pairs: 192 * 4, experts: E).pairs == 32)
        #expect(CUDABackend.tmaTile(pairs: 193 * 4, experts: E).pairs == 64)
        #expect(CUDABackend.tmaTile(pairs: 100_000, experts: E).pairs == 64)
        // Every tile is a whole number of 8-pair MMA tiles, and its stage count is at least 2 (a ring).
        for P in [1, 100, 1000, 10_000] {
            let t = CUDABackend.tmaTile(pairs: P, experts: E)
            #expect(t.pairs % 8 == 0 && t.stages >= 2)
        }
    }

    /// 128 bytes of mbarriers, the stages (8 KB of weights + 320 bytes per pair), and 128 rows of
    /// scale bytes at a stride of 4 mod 8 that holds every block, read 4 at a time.
    @Test func bulkCopySharedMemoryHoldsItsLayout() {
        for K in [64, 96, 160, 2880, 4064, 8192] {
            let nb = K / 32
            for (pairs, stages) in [(16, 3), (32, 3), (64, 2)] {
                let bytes = CUDABackend.tmaShared(pairs: pairs, stages: stages, inputs: K)
                let scales = bytes - 128 - stages * (8192 + 320 * pairs)
                #expect(scales % 128 == 0)
                let stride = scales / 128
                #expect(stride % 8 == 4, "K \(K): stride \(stride)")
                #expect(stride >= 4 * ((nb + 3) / 4), "K \(K): the last stage's 4-byte read stays in the row")
                #expect((128 + stages * (8192 + 320 * pairs)) % 16 == 0, "the scales start 16-byte aligned")
            }
        }
        // gpt-oss's experts (K = 2,880) in the 48 KB-227 KB range the launcher opts into.
        #expect(CUDABackend.tmaShared(pairs: 16, stages: 3, inputs: 2880) == 51_840)
        #expect(CUDABackend.tmaShared(pairs: 64, stages: 2, inputs: 2880) <= 227 << 10)
    }

    /// The cp.async kernels' shared memory stays under 48 KB for the widths they accept.
    @Test func cpAsyncSharedMemoryFitsWithoutOptIn() {
        #expect(CUDABackend.groupedShared(pairs: 32, inputs: 2880) <= 48 << 10)
        #expect(CUDABackend.groupedShared(pairs: 64, inputs: 2880) <= 48 << 10)
        #expect(CUDABackend.groupedShared(pairs: 32, inputs: 4064) <= 48 << 10)
    }
}
