// The continuous-batching scheduler on the CPU, no device. The tests play the model runner: they
// keep a miniature paged KV cache (each slot remembers which request, group and position wrote
// which token) and check that every key a scheduled query sees is where its block table says.
// Seeded random runs (tiny pools, random budgets, arrivals, cancels and stop tokens) check the
// books after every step and that every request ends with the right tokens in bounded steps; fixed
// runs check the order of a step, chunk shrinking, preemption with recompute, cancel and refusals.
import Testing
@testable import OspreyGeneration

@Suite struct SchedulerTests {
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The test's own record of a request: what it asked for, its tokens, how many are computed.
    struct Mirror {
        let request: BatchRequest
        var tokens: [Int32]
        var computed = 0
        var finish: FinishReason?
        init(_ request: BatchRequest) { (self.request, tokens) = (request, request.prompt) }
        var generated: ArraySlice<Int32> { tokens[request.prompt.count...] }
    }

    /// A paged KV cache in miniature: slot -> (request, group, position, token) last written there.
    struct PagedCache {
        struct Key: Equatable { let id: RequestID, group: Int, position: Int, token: Int32 }
        let layout: KVBlockLayout
        var slots: [Key?]
        init(_ layout: KVBlockLayout, numBlocks: Int) { (self.layout, slots) = (layout, Array(repeating: nil, count: numBlocks * layout.blockSize)) }

        func slot(_ table: [Int32], _ p: Int) -> Int? {
            let b = p / layout.blockSize
            return b < table.count && table[b] >= 0 ? Int(table[b]) * layout.blockSize + p % layout.blockSize : nil
        }

        /// Writes the entry's keys, then reads back every key its queries see; returns what went wrong.
        mutating func run(_ e: ScheduledEntry, tokens: [Int32]) -> [String] {
            var problems: [String] = []
            for (g, table) in e.blockTables.enumerated() {
                for (i, p) in (e.start..<e.start + e.count).enumerated() {
                    guard let s = slot(table, p) else { problems.append("\(e.id) group \(g) has no block for new position \(p)"); continue }
                    slots[s] = Key(id: e.id, group: g, position: p, token: e.tokens[i])
                }
                let first = layout.groupWindows[g].map { max(0, e.start - $0 + 1) } ?? 0
                for q in first..<e.start + e.count {
                    let want = Key(id: e.id, group: g, position: q, token: tokens[q])
                    if slot(table, q).flatMap({ slots[$0] }) != want { problems.append("\(e.id) group \(g) lost the key at position \(q)") }
                }
            }
            return problems
        }
    }

    /// One step, played as the runner: schedules, checks the batch against the mirrors and the
    /// cache, samples with `sample`, completes, and checks the updates. Returns what went wrong.
    static func step(_ s: inout Scheduler, _ cache: inout PagedCache, _ mirrors: inout [RequestID: Mirror],
                     cancelling: (ScheduledBatch) -> RequestID? = { _ in nil },
                     sample: (ScheduledEntry) -> Int32) throws -> (ScheduledBatch, [String]) {
        var problems: [String] = []
        let hadWork = s.hasWork, batch = s.schedule()
        if hadWork && batch.isEmpty { problems.append("a step with work scheduled nothing") }
        if batch.tokenCount > s.maxBatchTokens { problems.append("\(batch.tokenCount) tokens over budget \(s.maxBatchTokens)") }
        if batch.entries.count > s.maxSequences { problems.append("\(batch.entries.count) entries over \(s.maxSequences)") }
        if Set(batch.entries.map(\.id)).count != batch.entries.count { problems.append("an id appears twice in \(batch.entries.map(\.id))") }
        if s.metrics.scheduledTokens != batch.tokenCount { problems.append("metrics say \(s.metrics.scheduledTokens) tokens") }
        for id in batch.preempted { mirrors[id]!.computed = 0 }
        var sampled: [RequestID: Int32] = [:]
        for e in batch.entries {
            guard let m = mirrors[e.id], m.finish == nil else { problems.append("\(e.id) is scheduled but ended"); continue }
            if e.count < 1 || e.start != m.computed { problems.append("\(e.id) scheduled \(e.start)+\(e.count) with \(m.computed) computed") }
            if e.tokens[...] != m.tokens[e.start..<min(e.start + e.count, m.tokens.count)] { problems.append("\(e.id) is fed the wrong tokens") }
            if e.samples != (e.start + e.count == m.tokens.count) { problems.append("\(e.id) samples wrongly") }
            problems += cache.run(e, tokens: m.tokens)
            if e.samples { sampled[e.id] = sample(e) }
        }
        let cancelled = cancelling(batch)
        if let id = cancelled { s.cancel(id); mirrors[id]!.finish = .cancelled }
        let updates = try s.complete(batch, sampled: sampled)
        let expected = batch.entries.map(\.id).filter { $0 != cancelled }
        if updates.map(\.id) != expected { problems.append("updates for \(updates.map(\.id)), expected \(expected)") }
        for (u, e) in zip(updates, batch.entries.filter { $0.id != cancelled }) {
            var m = mirrors[u.id]!
            m.computed += e.count
            if u.token != sampled[u.id] { problems.append("\(u.id) reports token \(String(describing: u.token))") }
            var finish: FinishReason?
            if let t = u.token {
                m.tokens.append(t)
                if m.request.stopTokens.contains(t) && m.generated.count > m.request.minNewTokens { finish = .eos }
                else if m.generated.count >= m.request.maxNewTokens { finish = .length }
            }
            if u.finish != finish { problems.append("\(u.id) finished \(String(describing: u.finish)), expected \(String(describing: finish))") }
            if finish != nil && s.heldBlocks(u.id) != 0 { problems.append("\(u.id) ended holding blocks") }
            m.finish = finish
            mirrors[u.id] = m
        }
        problems += s.invariantViolations()
        let live = mirrors.values.filter { $0.finish == nil }.count
        if s.metrics.running + s.metrics.waiting != live { problems.append("metrics count \(s.metrics), \(live) live") }
        return (batch, problems)
    }

    @Test func randomRunsKeepTheBooksAndEndEveryRequest() throws {
        var preemptions = 0, recomputedOutput = 0, cancels = 0, stops = 0, rejected = 0, longest = 0
        for run in 0..<300 {
            var rng = SplitMix64(state: UInt64(run))
            let windows: [[Int?]] = [[nil], [8, nil], [nil, 8], [8]]
            let layout = try KVBlockLayout(blockSize: 4, groupWindows: windows.randomElement(using: &rng)!)
            let numBlocks = Int.random(in: 8...40, using: &rng)
            var s = try Scheduler(layout: layout, numBlocks: numBlocks, maxBatchTokens: .random(in: 1...64, using: &rng),
                                  maxSequences: .random(in: 1...6, using: &rng))
            var cache = PagedCache(layout, numBlocks: numBlocks), mirrors: [RequestID: Mirror] = [:]
            var problems: [String] = []
            let arrivals = Int.random(in: 1...12, using: &rng)
            var next = 0, steps = 0
            while next < arrivals || s.hasWork {
                steps += 1
                guard steps <= 20_000 else { problems.append("no end after 20,000 steps: deadlock"); break }
                if next < arrivals && Int.random(in: 0..<3, using: &rng) == 0 {
                    let r = BatchRequest(id: RequestID(next), prompt: (0..<Int.random(in: 1...60, using: &rng)).map { _ in .random(in: 0..<20, using: &rng) },
                                         maxNewTokens: .random(in: 1...40, using: &rng),
                                         stopTokens: Bool.random(using: &rng) ? [.random(in: 0..<20, using: &rng)] : [],
                                         minNewTokens: .random(in: 0...2, using: &rng))
                    next += 1
                    let peak = layout.peakBlocks(length: r.prompt.count + r.maxNewTokens - 1)
                    do {
                        try s.add(r)
                        mirrors[r.id] = Mirror(r)
                        if peak > numBlocks { problems.append("\(r.id) was accepted needing \(peak) of \(numBlocks) blocks") }
                    } catch let e as BatchError {
                        if e != .neverFits(r.id, blocksNeeded: peak, numBlocks: numBlocks) || peak <= numBlocks { problems.append("add threw \(e)") }
                        rejected += 1
                    }
                }
                let live = mirrors.filter { $0.value.finish == nil }.keys.sorted()
                if Int.random(in: 0..<120, using: &rng) == 0, let id = live.randomElement(using: &rng) {
                    let free = s.blocks.freeBlockCount, held = s.heldBlocks(id)
                    if !s.cancel(id) || s.blocks.freeBlockCount != free + held || s.cancel(id) { problems.append("cancel of \(id) went wrong") }
                    mirrors[id]!.finish = .cancelled
                    cancels += 1
                }
                guard s.hasWork else { continue }
                let (batch, found) = try Self.step(&s, &cache, &mirrors, cancelling: { batch in
                    Int.random(in: 0..<150, using: &rng) == 0 ? batch.entries.randomElement(using: &rng)?.id : nil
                }, sample: { _ in .random(in: 0..<20, using: &rng) })
                recomputedOutput += batch.preempted.filter { mirrors[$0]!.generated.count > 0 }.count
                problems += found
                if !problems.isEmpty { break }
            }
            longest = max(longest, steps)
            preemptions += s.metrics.preemptions
            guard problems.isEmpty else { Issue.record("run \(run): \(problems.prefix(5))"); continue }
            if !s.isIdle || s.blocks.freeBlockCount != numBlocks { problems.append("not idle at the end: \(s.metrics)") }
            for m in mirrors.values {
                switch m.finish {
                case .length?: if m.generated.count != m.request.maxNewTokens { problems.append("\(m.request.id) ended with \(m.generated.count) tokens") }
                case .eos?:
                    stops += 1
                    let early = m.generated.dropLast().enumerated().contains { m.request.stopTokens.contains($1) && $0 >= m.request.minNewTokens }
                    let last = m.generated.last.map { m.request.stopTokens.contains($0) } ?? false
                    if early || !last || m.generated.count > m.request.maxNewTokens { problems.append("\(m.request.id) stopped at the wrong token") }
                case .cancelled?: break
                default: problems.append("\(m.request.id) never ended")
                }
            }
            #expect(problems.isEmpty, "run \(run): \(problems.prefix(5))")
        }
        // The runs must exercise what they claim to.
        #expect(preemptions > 100 && recomputedOutput > 10 && cancels > 50 && stops > 50 && rejected > 50,
                "preemptions \(preemptions), recomputed output \(recomputedOutput), cancels \(cancels), stops \(stops), rejected \(rejected)")
        print("scheduler random runs: preemptions \(preemptions), recomputed output \(recomputedOutput), cancels \(cancels), stops \(stops), rejected \(rejected), longest run \(longest) steps")
    }

    /// The entries of a batch as (id, start, count, samples).
    static func shape(_ batch: ScheduledBatch) -> [String] { batch.entries.map { "\($0.id.value):\($0.start)+\($0.count)\($0.samples ? "s" : "")" } }

    @Test func decodesGoFirstThenPrefillChunksThenAdmissions() throws {
        var s = try Scheduler(layout: KVBlockLayout(blockSize: 4, groupWindows: [nil]), numBlocks: 100, maxBatchTokens: 8, maxSequences: 8)
        try s.add(BatchRequest(id: 0, prompt: Array(repeating: 1, count: 10), maxNewTokens: 5))
        try s.add(BatchRequest(id: 1, prompt: [1, 2, 3], maxNewTokens: 5))
        var batch = s.schedule()
        #expect(Self.shape(batch) == ["0:0+8"] && batch.entries[0].tokens.count == 8)
        let updates = try s.complete(batch, sampled: [:])
        #expect(updates == [SequenceUpdate(id: 0, token: nil, finish: nil)])
        batch = s.schedule()
        #expect(Self.shape(batch) == ["0:8+2s", "1:0+3s"] && batch.tokenCount == 5)
        #expect(throws: BatchError.missingSample(1)) { try s.complete(batch, sampled: [0: 100]) }
        _ = try s.complete(batch, sampled: [0: 100, 1: 200])
        #expect(throws: BatchError.staleBatch(0, start: 8, computed: 10)) { try s.complete(batch, sampled: [0: 100, 1: 200]) }
        try s.add(BatchRequest(id: 2, prompt: Array(repeating: 5, count: 20), maxNewTokens: 5))
        batch = s.schedule()
        #expect(Self.shape(batch) == ["0:10+1s", "1:3+1s", "2:0+6"])
        #expect(batch.entries[0].tokens == [100] && batch.entries[1].tokens == [200])
        #expect(s.metrics == SchedulerMetrics(running: 3, waiting: 0, scheduledTokens: 8, freeBlocks: 100 - 3 - 1 - 2, preemptions: 0))
    }

    @Test func chunksShrinkToTheFreeBlocksAndDecodesPreemptTheNewest() throws {
        var s = try Scheduler(layout: KVBlockLayout(blockSize: 4, groupWindows: [nil]), numBlocks: 6, maxBatchTokens: 64, maxSequences: 8)
        try s.add(BatchRequest(id: 0, prompt: Array(repeating: 1, count: 16), maxNewTokens: 8))
        try s.add(BatchRequest(id: 1, prompt: Array(repeating: 2, count: 12), maxNewTokens: 8))
        var batch = s.schedule()
        #expect(Self.shape(batch) == ["0:0+16s", "1:0+8"] && s.blocks.freeBlockCount == 0)
        _ = try s.complete(batch, sampled: [0: 7])
        // Request 0's decode needs a fifth block: request 1, the newest, gives its two back and waits.
        batch = s.schedule()
        #expect(Self.shape(batch) == ["0:16+1s"] && batch.preempted == [1])
        #expect(s.metrics == SchedulerMetrics(running: 1, waiting: 1, scheduledTokens: 1, freeBlocks: 1, preemptions: 1))
        _ = try s.complete(batch, sampled: [0: 7])
        batch = s.schedule()  // one free block: request 1 comes back for 4 of its 12 tokens
        #expect(Self.shape(batch) == ["0:17+1s", "1:0+4"])
    }

    @Test func preemptedRequestsRecomputeAndEndWithTheSameTokens() throws {
        // Three requests (10 prompt + 20 new tokens) that each hold up to 8 full and 3 sliding blocks, in a pool of 14.
        let layout = try KVBlockLayout(blockSize: 4, groupWindows: [nil, 6])
        var s = try Scheduler(layout: layout, numBlocks: 14, maxBatchTokens: 16, maxSequences: 4)
        var cache = PagedCache(layout, numBlocks: 14), mirrors: [RequestID: Mirror] = [:]
        // The runner's "model": the token after position p depends only on the request and p.
        func token(_ id: RequestID, _ position: Int) -> Int32 { Int32((id.value * 7919 + position * 104_729) % 1000) }
        for i in 0..<3 {
            let r = BatchRequest(id: RequestID(i), prompt: (0..<10).map { Int32(i * 10 + $0) }, maxNewTokens: 20)
            try s.add(r)
            mirrors[r.id] = Mirror(r)
        }
        var recomputed: Set<RequestID> = [], steps = 0
        while s.hasWork && steps < 500 {
            steps += 1
            let (batch, problems) = try Self.step(&s, &cache, &mirrors) { token($0.id, $0.start + $0.count) }
            #expect(problems.isEmpty, "step \(steps): \(problems.prefix(5))")
            #expect(!batch.preempted.contains(0), "the oldest request was preempted")
            for id in batch.preempted where !mirrors[id]!.generated.isEmpty { recomputed.insert(id) }
        }
        #expect(s.isIdle && s.metrics.preemptions > 0 && !recomputed.isEmpty && s.blocks.freeBlockCount == 14)
        for (id, m) in mirrors {
            #expect(m.finish == .length)
            #expect(Array(m.generated) == (10..<30).map { token(id, $0) }, "\(id)")
        }
    }

    @Test func cancelReturnsBlocksAtOnce() throws {
        var s = try Scheduler(layout: KVBlockLayout(blockSize: 4, groupWindows: [8, nil]), numBlocks: 20, maxBatchTokens: 32, maxSequences: 1)
        try s.add(BatchRequest(id: 0, prompt: Array(repeating: 3, count: 20), maxNewTokens: 4))
        try s.add(BatchRequest(id: 1, prompt: [1], maxNewTokens: 4))
        let batch = s.schedule()
        #expect(Self.shape(batch) == ["0:0+20s"] && s.blocks.freeBlockCount == 10)
        let cancelled = s.cancel(0), again = s.cancel(0)
        #expect(cancelled && !again && s.blocks.freeBlockCount == 20 && s.metrics.running == 0)
        let updates = try s.complete(batch, sampled: [0: 9])  // the cancelled entry is skipped
        let waitingCancelled = s.cancel(1)
        #expect(updates.isEmpty && waitingCancelled && s.isIdle && s.invariantViolations().isEmpty)
    }

    @Test func malformedAndOversizedRequestsAreRefusedByName() throws {
        var s = try Scheduler(layout: KVBlockLayout(blockSize: 4, groupWindows: [8, nil]), numBlocks: 10, maxBatchTokens: 8, maxSequences: 2)
        #expect(throws: BatchError.emptyPrompt(7)) { try s.add(BatchRequest(id: 7, prompt: [], maxNewTokens: 1)) }
        #expect(throws: BatchError.invalidTokenLimits(7, maxNewTokens: 0, minNewTokens: 0)) { try s.add(BatchRequest(id: 7, prompt: [1], maxNewTokens: 0)) }
        try s.add(BatchRequest(id: 7, prompt: [1], maxNewTokens: 1))
        #expect(throws: BatchError.duplicateRequest(7)) { try s.add(BatchRequest(id: 7, prompt: [1], maxNewTokens: 1)) }
        // 28 cached positions need 7 full blocks and at most 3 sliding ones: the pool exactly; 29 need 8 + 3.
        try s.add(BatchRequest(id: 8, prompt: Array(repeating: 1, count: 20), maxNewTokens: 9))
        #expect(throws: BatchError.neverFits(9, blocksNeeded: 11, numBlocks: 10)) {
            try s.add(BatchRequest(id: 9, prompt: Array(repeating: 1, count: 20), maxNewTokens: 10))
        }
        #expect(BatchError.neverFits(9, blocksNeeded: 11, numBlocks: 10).description.contains("request 9"))
        #expect(throws: BatchError.self) { try Scheduler(layout: s.layout, numBlocks: 0, maxBatchTokens: 8, maxSequences: 2) }
        #expect(throws: BatchError.self) { try Scheduler(layout: s.layout, numBlocks: 8, maxBatchTokens: 0, maxSequences: 2) }
    }
}
