// The continuous-batching scheduler (nano-vllm's scheduler.py, vLLM v1's one-counter model). It
// decides, step by step, which requests feed which tokens, in token counts and block ids only:
// `schedule()` returns a ScheduledBatch for the runner, `complete(_:sampled:)` takes the sampled
// tokens back. Requests are added and cancelled between steps.
//
// Policy. Each step has a budget of `maxBatchTokens` tokens and `maxSequences` entries. Running
// requests go first, decodes (one token) before prefill chunks, oldest first; then waiting
// requests are admitted in FIFO order, each given min(tokens left, budget left). A request's blocks
// are prepared before it is scheduled; a prefill chunk shrinks to the blocks free. When a running
// request cannot get blocks for even one token, the newest running request is preempted: its
// blocks are freed, `computed` goes back to 0 and it goes to the front of the waiting queue,
// keeping its generated tokens, which it recomputes. A waiting request is admitted only if its
// blocks fit (no overtaking), and none is admitted in a step that preempted. The oldest running
// request is never preempted and fits alone (`add` refuses requests that could not), so every
// step with work schedules something and no request waits forever.

/// Which requests run each step, under a token budget and a pool of KV blocks.
public struct Scheduler: Sendable {
    /// Token budget of one step.
    public let maxBatchTokens: Int
    /// Entries in one step at most.
    public let maxSequences: Int
    /// The pool of KV blocks.
    public private(set) var blocks: BlockManager
    var sequences: [RequestID: BatchSequence] = [:]
    /// In admission order: the last is the newest, preempted first.
    var running: [RequestID] = []
    /// FIFO; preempted requests go back to the front.
    var waiting: [RequestID] = []
    private var preemptions = 0
    private var lastScheduledTokens = 0

    /// An idle scheduler over a pool of `numBlocks` blocks laid out as `layout`.
    public init(layout: KVBlockLayout, numBlocks: Int, maxBatchTokens: Int, maxSequences: Int) throws {
        guard maxBatchTokens >= 1 else { throw BatchError.invalidSetting("maxBatchTokens must be ≥ 1, got \(maxBatchTokens)") }
        guard maxSequences >= 1 else { throw BatchError.invalidSetting("maxSequences must be ≥ 1, got \(maxSequences)") }
        blocks = try BlockManager(layout: layout, numBlocks: numBlocks)
        (self.maxBatchTokens, self.maxSequences) = (maxBatchTokens, maxSequences)
    }

    /// How the KV pool is laid out.
    public var layout: KVBlockLayout { blocks.layout }
    /// No request is waiting or running.
    public var isIdle: Bool { sequences.isEmpty }
    /// Some request is waiting or running.
    public var hasWork: Bool { !sequences.isEmpty }

    /// Counts after the last step.
    public var metrics: SchedulerMetrics {
        SchedulerMetrics(running: running.count, waiting: waiting.count, scheduledTokens: lastScheduledTokens,
                         freeBlocks: blocks.freeBlockCount, preemptions: preemptions)
    }

    /// Queues a request; throws if it is malformed, its id is taken, or it could never fit in the pool.
    public mutating func add(_ request: BatchRequest) throws {
        let id = request.id
        try Self.check(request, layout: layout, numBlocks: blocks.numBlocks)
        guard sequences[id] == nil else { throw BatchError.duplicateRequest(id) }
        sequences[id] = BatchSequence(request, groups: layout.groupCount)
        waiting.append(id)
    }

    /// Throws if `request` is malformed or could never fit a pool of `numBlocks` blocks even alone
    /// (what `add` checks before it queues; the serving engine checks it on the caller's thread).
    public static func check(_ request: BatchRequest, layout: KVBlockLayout, numBlocks: Int) throws {
        let id = request.id
        guard !request.prompt.isEmpty else { throw BatchError.emptyPrompt(id) }
        guard request.maxNewTokens >= 1, request.minNewTokens >= 0 else {
            throw BatchError.invalidTokenLimits(id, maxNewTokens: request.maxNewTokens, minNewTokens: request.minNewTokens)
        }
        // The last sampled token is never fed, so at most prompt + maxNewTokens - 1 positions are cached.
        let peak = layout.peakBlocks(length: request.prompt.count + request.maxNewTokens - 1)
        guard peak <= numBlocks else { throw BatchError.neverFits(id, blocksNeeded: peak, numBlocks: numBlocks) }
    }

    /// Removes a waiting or running request at once, returning its blocks to the pool; false if unknown.
    @discardableResult
    public mutating func cancel(_ id: RequestID) -> Bool {
        guard sequences[id] != nil else { return false }
        blocks.release(&sequences[id]!.tables)
        sequences[id] = nil
        running.removeAll { $0 == id }
        waiting.removeAll { $0 == id }
        return true
    }

    /// The next step. Empty only when there is no work.
    public mutating func schedule() -> ScheduledBatch {
        var batch = ScheduledBatch()
        let decoding = running.filter { sequences[$0]!.isDecoding }
        for id in decoding + running.filter({ !decoding.contains($0) }) where running.contains(id) {
            guard batch.entries.count < maxSequences, batch.tokenCount < maxBatchTokens else { break }
            while !scheduleIfFits(id, into: &batch) {
                let victim = running.removeLast()
                preempt(victim, in: &batch)
                if victim == id { break }
            }
        }
        while batch.preempted.isEmpty, let id = waiting.first,
              batch.entries.count < maxSequences, batch.tokenCount < maxBatchTokens,
              scheduleIfFits(id, into: &batch) {
            running.append(waiting.removeFirst())
        }
        lastScheduledTokens = batch.tokenCount
        return batch
    }

    /// Records a step the runner has run: advances each entry's `computed`, appends the tokens
    /// sampled for entries that sample, ends requests that reached maxNewTokens or a stop token
    /// (freeing their blocks) and releases sliding blocks no longer needed. Entries of requests
    /// cancelled since `schedule()` are skipped. Throws, changing nothing, if a sampling entry has no
    /// token in `sampled` or the batch is stale.
    public mutating func complete(_ batch: ScheduledBatch, sampled: [RequestID: Int32]) throws -> [SequenceUpdate] {
        for e in batch.entries {
            guard let seq = sequences[e.id] else { continue }
            guard seq.computed == e.start, running.contains(e.id) else { throw BatchError.staleBatch(e.id, start: e.start, computed: seq.computed) }
            if e.samples && sampled[e.id] == nil { throw BatchError.missingSample(e.id) }
        }
        var updates: [SequenceUpdate] = []
        for e in batch.entries where sequences[e.id] != nil {
            let token = e.samples ? sampled[e.id] : nil
            let finish = sequences[e.id]!.advance(by: e.count, sampled: token)
            if finish != nil {
                cancel(e.id)
            } else {
                blocks.releaseUnneeded(&sequences[e.id]!.tables, computed: sequences[e.id]!.computed)
            }
            updates.append(SequenceUpdate(id: e.id, token: token, finish: finish))
        }
        return updates
    }

    // MARK: - Internals

    /// Prepares blocks for as many of the request's remaining tokens as the budget and the free
    /// blocks allow, and adds its entry; false, changing nothing, if not even one token fits.
    private mutating func scheduleIfFits(_ id: RequestID, into batch: inout ScheduledBatch) -> Bool {
        let seq = sequences[id]!
        let wanted = min(seq.tokens.count - seq.computed, maxBatchTokens - batch.tokenCount)
        func fits(_ n: Int) -> Bool { blocks.blocksNeeded(seq.tables, computed: seq.computed, adding: n) <= blocks.freeBlockCount }
        guard fits(1) else { return false }
        var (lo, hi) = (1, wanted)  // the need grows with n: find the largest n that fits
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if fits(mid) { lo = mid } else { hi = mid - 1 }
        }
        // Cannot throw: `fits` checked the need against the free blocks.
        try! blocks.prepare(&sequences[id]!.tables, computed: seq.computed, adding: lo)
        let tables = sequences[id]!.tables, end = seq.computed + lo
        batch.entries.append(ScheduledEntry(id: id, start: seq.computed, count: lo, tokens: Array(seq.tokens[seq.computed..<end]),
                                            blockTables: tables, samples: end == seq.tokens.count))
        return true
    }

    /// Frees all of a running request's blocks and queues it first to be recomputed from position 0;
    /// drops its entry if it was already scheduled this step.
    private mutating func preempt(_ id: RequestID, in batch: inout ScheduledBatch) {
        blocks.release(&sequences[id]!.tables)
        sequences[id]!.computed = 0
        waiting.insert(id, at: 0)
        batch.entries.removeAll { $0.id == id }
        batch.preempted.append(id)
        preemptions += 1
    }
}
