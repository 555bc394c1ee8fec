// The model runner (STYLE habit 7): the only part of the engine that builds device inputs. For a
// scheduled step it packs, into one reused host buffer, the token ids, their positions, the
// sequences' query offsets (cu_seqlens) and context lengths, and per layer group the slot of each
// token and the block tables; copies that buffer to one device buffer in a single transfer; sets
// the views as the paged cache's step; runs the model with logits only for the rows that sample;
// and picks each sampling request's next token — on the device when every such request is greedy
// (argmax) or every one samples with a plain temperature (a Gumbel-max draw, its seed from the
// request's sampler), else on the host with each request's own sampler. It allocates only when a step
// outgrows its buffers. Decode-only steps (the steady state of serving) are recorded as device
// graphs (CUDA graphs) per shape and replayed with one launch — issue 8's "CUDA graphs for
// decode-only steps by batch-size bucket", bucketed by exact batch size, power-of-two block-table
// widths and context; the transfer of the step's inputs stays outside the graph, into the same
// buffer. OSPREY_CUDA_GRAPHS=0 turns recording off.
import Foundation
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
    /// Decode-only steps are recorded as device graphs and replayed (`Backend.record`), by shape.
    let recordsDecodeSteps: Bool
    private var graphs: [GraphKey: (graph: any DeviceGraph, logits: Tensor)] = [:]
    private var seen: Set<GraphKey> = []          // shapes run once eagerly (warm-up: plans, compilations, workspace)
    private var unrecordable: Set<GraphKey> = []  // shapes the backend would not record
    /// Graphs kept at most (each is a few hundred kernel nodes); past it they are all dropped.
    static let maxGraphs = 512

    /// Everything on the host that shapes a decode step's launches: sequences, block-table widths
    /// (bucketed to powers of two), the longest context (bucketed; it only sets attention splits)
    /// and whether the argmax is part of the step.
    struct GraphKey: Hashable {
        var sequences: Int
        var widths: [Int]
        var context: Int
        var pick: Pick
    }

    /// Where a step's tokens are picked: argmax or a Gumbel-max draw on the device (every sampling
    /// request greedy, or every one plain temperature sampling), else each sampler on the host.
    enum Pick: Hashable { case argmax, sample, host }

    init(model: any LanguageModel, layout: KVBlockLayout, layerSlots: [KVBlockLayout.LayerSlot], blockCount: Int, kvDType: DType) throws {
        (self.model, self.layout) = (model, layout)
        cache = try PagedKVCache(layerSlots: layerSlots.map { ($0.group, $0.index) }, blockCount: blockCount,
                                 blockSize: layout.blockSize, rowShape: model.kvRowShape, dtype: kvDType, backend: model.backend)
        host = Tensor(zeros: [0], dtype: .i32)
        device = host
        argmax = host
        picked = []
        recordsDecodeSteps = ProcessInfo.processInfo.environment["OSPREY_CUDA_GRAPHS"] != "0"
    }

    /// Runs `batch` and returns the token sampled for each entry that samples. `sampler(id)` gives
    /// the request's sampler, `history(id)` its ids so far (for penalties).
    func run(_ batch: ScheduledBatch, sampler: (RequestID) -> Sampler?, history: (RequestID) -> [Int32],
             update: (RequestID, Sampler) -> Void) throws -> [RequestID: Int32] {
        let entries = batch.entries, b = model.backend, bs = layout.blockSize
        let T = batch.tokenCount, S = entries.count, G = layout.groupCount
        let sampling = entries.indices.filter { entries[$0].samples }
        var samplers = sampling.map { sampler(entries[$0].id) }
        let pick: Pick = samplers.allSatisfy({ $0?.isPlainGreedy ?? true }) ? .argmax
            : samplers.allSatisfy({ $0?.plainTemperature != nil }) ? .sample : .host
        // A decode-only step is replayed from a graph recorded for its shape: block tables padded
        // to power-of-two widths and the longest context rounded up, so that shapes recur.
        // (The bucketing does not depend on recording, so eager and replayed steps run the same launches.)
        let decodeOnly = entries.allSatisfy { $0.count == 1 && $0.samples }
        var widths = (0..<G).map { g in entries.map { $0.blockTables[g].count }.max() ?? 1 }
        var maxContext = entries.map { $0.start + $0.count }.max() ?? 1
        if decodeOnly {
            widths = widths.map { Self.powerOfTwo(atLeast: $0) }
            maxContext = min(Self.powerOfTwo(atLeast: maxContext), widths.map { $0 * bs }.min() ?? maxContext)
        }
        let R = max(sampling.count, 1)
        let total = T * (2 + G) + 2 * S + 1 + widths.reduce(0) { $0 + S * $1 } + R + (pick == .sample ? 3 * R : 0)
        try reserve(total, rows: R)

        // Pack: tokens [T] | positions [T] | queryStarts [S+1] | contextLengths [S] |
        //       slots [G][T] | blockTables [G][S, width_g] | logitRows [R] | (sample) [R, 3] temperature bits, seed
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
        if pick == .sample {
            for (r, i) in sampling.enumerated() {
                var s = samplers[r]!
                let seed = s.nextSeed()
                put(Int32(bitPattern: s.plainTemperature!.bitPattern))
                put(Int32(bitPattern: UInt32(truncatingIfNeeded: seed)))
                put(Int32(bitPattern: UInt32(truncatingIfNeeded: seed >> 32)))
                samplers[r] = s
                update(entries[i].id, s)
            }
        }
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
                        maxQueryLength: entries.map(\.count).max() ?? 1, maxContextLength: maxContext)
        }
        let rows = view(R)
        let drawParameters = pick == .sample ? view(3 * R).reshaped([R, 3]) : rows
        cache.step = PagedStep(positions: positions, slots: slots, layouts: layouts)
        defer { cache.step = nil }
        let picks = argmax.rows(0..<R)
        func compute() throws -> Tensor {
            let logits = try model.forward(tokens: tokens, cache: cache, logitRows: rows)  // [R, V]
            if !sampling.isEmpty {
                switch pick {
                case .argmax: try b.argmax(logits, into: picks)
                case .sample: try b.sample(logits, parameters: drawParameters, into: picks)
                case .host: break
                }
            }
            return logits
        }
        let logits: Tensor
        if decodeOnly && recordsDecodeSteps {
            logits = try replayed(GraphKey(sequences: S, widths: widths, context: min(maxContext, 8192), pick: pick), compute)
        } else {
            logits = try compute()
        }

        var out: [RequestID: Int32] = [:]
        guard !sampling.isEmpty else { return out }
        if pick != .host {
            try picked.withUnsafeMutableBytes { try b.startDownload(picks).wait(into: $0) }
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

    /// Runs a decode step of shape `key`: replays its graph; records one the second time the
    /// shape comes (the first run warms up GEMM plans, kernels and the workspace); else eagerly.
    private func replayed(_ key: GraphKey, _ compute: () throws -> Tensor) throws -> Tensor {
        let b = model.backend
        if let g = graphs[key], g.graph.isValid {
            try b.replay(g.graph)
            return g.logits
        }
        guard seen.contains(key), !unrecordable.contains(key) else {
            seen.insert(key)
            return try compute()
        }
        var logits: Tensor?
        let graph: (any DeviceGraph)?
        do {
            graph = try b.record { logits = try compute() }
        } catch {
            // A capture the driver refused (an op that synchronises or allocates): this shape runs eagerly.
            unrecordable.insert(key)
            return try compute()
        }
        guard let graph, let logits else { return try compute() }  // no graphs here, or not now (the workspace moved)
        if graphs.count >= Self.maxGraphs { graphs.removeAll() }
        graphs[key] = (graph, logits)
        try b.replay(graph)
        return logits
    }

    static func powerOfTwo(atLeast n: Int) -> Int {
        var p = 1
        while p < n { p *= 2 }
        return p
    }

    /// Grows the buffers to hold `count` inputs and `rows` sampled rows (only when a step needs more).
    private func reserve(_ count: Int, rows: Int) throws {
        if host.count < count {
            let size = max(count, 2 * host.count, 4096)
            host = Tensor(zeros: [size], dtype: .i32)
            device = try model.backend.makeBuffer([size], dtype: .i32)
            graphs.removeAll()  // they read the old buffer
        }
        if argmax.count < rows {
            let size = max(rows, 2 * argmax.count, 64)
            argmax = try model.backend.makeBuffer([size], dtype: .i32)
            picked = Array(repeating: 0, count: size)
            graphs.removeAll()
        }
    }
}
