// The model runner (STYLE habit 7): the only part of the engine that builds device inputs. For a
// scheduled step it packs, into one reused host buffer, the token ids, their positions, the
// sequences' query offsets (cu_seqlens) and context lengths, and per layer group the slot of each
// token and the block tables; copies that buffer to one device buffer in a single transfer; sets
// the views as the paged cache's step; runs the model with logits only for the rows that sample;
// and picks each sampling request's next token — on the device (argmax) when every such request
// is greedy, else on the host with each request's own sampler. It allocates only when a step
// outgrows its buffers.
import OspreyCore
import OspreyModels

final class ModelRunner {
    let model: any LanguageModel
    let cache: PagedKVCache
    let layout: KVBlockLayout
    private var host: Tensor      // i32 [capacity], host
    private var device: Tensor    // i32 [capacity], on the model's device
    private var argmax: Tensor    // i32 [rows], on the model's device
    private var picked: [Int32]   // argmax read back

    init(model: any LanguageModel, layout: KVBlockLayout, layerSlots: [KVBlockLayout.LayerSlot], blockCount: Int) throws {
        (self.model, self.layout) = (model, layout)
        cache = try PagedKVCache(layerSlots: layerSlots.map { ($0.group, $0.index) }, blockCount: blockCount,
                                 blockSize: layout.blockSize, rowShape: model.kvRowShape, backend: model.backend)
        host = Tensor(zeros: [0], dtype: .i32)
        device = host
        argmax = host
        picked = []
    }

    /// Runs `batch` and returns the token sampled for each entry that samples. `sampler(id)` gives
    /// the request's sampler, `history(id)` its ids so far (for penalties).
    func run(_ batch: ScheduledBatch, sampler: (RequestID) -> Sampler?, history: (RequestID) -> [Int32],
             update: (RequestID, Sampler) -> Void) throws -> [RequestID: Int32] {
        let entries = batch.entries, b = model.backend, bs = layout.blockSize
        let T = batch.tokenCount, S = entries.count, G = layout.groupCount
        let widths = (0..<G).map { g in entries.map { $0.blockTables[g].count }.max() ?? 1 }
        let sampling = entries.indices.filter { entries[$0].samples }
        let R = max(sampling.count, 1)
        let total = T * (2 + G) + 2 * S + 1 + widths.reduce(0) { $0 + S * $1 } + R
        try reserve(total, rows: R)

        // Pack: tokens [T] | positions [T] | queryStarts [S+1] | contextLengths [S] |
        //       slots [G][T] | blockTables [G][S, width_g] | logitRows [R]
        let p = host.mutableRaw.assumingMemoryBound(to: Int32.self)
        var n = 0
        func put(_ v: Int32) { p[n] = v; n += 1 }
        for e in entries { for t in e.tokens { put(t) } }
        for e in entries { for pos in e.start..<(e.start + e.count) { put(Int32(pos)) } }
        var starts = [0]
        for e in entries { starts.append(starts.last! + e.count) }
        for s in starts { put(Int32(s)) }
        for e in entries { put(Int32(e.start + e.count)) }
        for g in 0..<G {
            for e in entries {
                for pos in e.start..<(e.start + e.count) {
                    let block = e.blockTables[g][pos / bs]
                    put(block < 0 ? -1 : block * Int32(bs) + Int32(pos % bs))
                }
            }
        }
        for g in 0..<G {
            for e in entries {
                for blk in e.blockTables[g] { put(blk) }
                for _ in e.blockTables[g].count..<widths[g] { put(-1) }
            }
        }
        for i in sampling { put(Int32(starts[i + 1] - 1)) }
        if sampling.isEmpty { put(0) }  // a step of prefill chunks only: one row nobody reads
        precondition(n == total, "runner packed \(n) of \(total) inputs")
        try b.copyRows(host.rows(0..<total), into: device, at: 0)

        // The same layout, as views of the device buffer.
        var at = 0
        func view(_ count: Int) -> Tensor { defer { at += count }; return device.rows(at..<(at + count)) }
        let tokens = view(T), positions = view(T), queryStarts = view(S + 1), contexts = view(S)
        let slots = (0..<G).map { _ in view(T) }
        let layouts = (0..<G).map { g in
            PagedLayout(queryStarts: queryStarts, contextLengths: contexts,
                        blockTables: view(S * widths[g]).reshaped([S, widths[g]]), blockSize: bs, sequenceCount: S,
                        maxQueryLength: entries.map(\.count).max() ?? 1, maxContextLength: entries.map { $0.start + $0.count }.max() ?? 1)
        }
        let rows = view(R)
        cache.step = PagedStep(positions: positions, slots: slots, layouts: layouts)
        defer { cache.step = nil }
        let logits = try model.forward(tokens: tokens, cache: cache, logitRows: rows)  // [R, V]

        var out: [RequestID: Int32] = [:]
        guard !sampling.isEmpty else { return out }
        let samplers = sampling.map { sampler(entries[$0].id) }
        if samplers.allSatisfy({ $0?.isPlainGreedy ?? true }) {
            try b.argmax(logits, into: argmax.rows(0..<R))
            try picked.withUnsafeMutableBytes { try b.startDownload(argmax.rows(0..<R)).wait(into: $0) }
            for (r, i) in sampling.enumerated() { out[entries[i].id] = picked[r] }
            return out
        }
        let rowsHost = try b.download(logits)
        for (r, i) in sampling.enumerated() {
            let id = entries[i].id
            var s = samplers[r] ?? Sampler(SamplingParameters())
            out[id] = s.pick(rowsHost.rows(r..<(r + 1)), history: history(id))
            update(id, s)
        }
        return out
    }

    /// Grows the buffers to hold `count` inputs and `rows` sampled rows (only when a step needs more).
    private func reserve(_ count: Int, rows: Int) throws {
        if host.count < count {
            let size = max(count, 2 * host.count, 4096)
            host = Tensor(zeros: [size], dtype: .i32)
            device = try model.backend.makeBuffer([size], dtype: .i32)
        }
        if argmax.count < rows {
            let size = max(rows, 2 * argmax.count, 64)
            argmax = try model.backend.makeBuffer([size], dtype: .i32)
            picked = Array(repeating: 0, count: size)
        }
    }
}
