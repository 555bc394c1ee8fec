// What the scheduler hands the model runner for one step, and what it hands back to the engine
// after it: plain values of token ids, positions and block ids, no tensors (the runner alone builds
// device inputs from them: slot mappings, block tables, sequence offsets).

/// One request's share of a step: positions start..<start+count, fed `tokens`.
public struct ScheduledEntry: Sendable, Equatable {
    public let id: RequestID
    /// Tokens already in the cache before this step (the first position fed).
    public let start: Int
    /// Tokens fed this step (at least one).
    public let count: Int
    /// The ids to feed, the request's tokens[start..<start+count].
    public let tokens: [Int32]
    /// Per layer group, physical block of each logical block (-1: released by a sliding group);
    /// position p lives at slot blockTables[g][p / blockSize] * blockSize + p % blockSize.
    public let blockTables: [[Int32]]
    /// This step reaches the end of the request's tokens: the runner samples a next token from the
    /// last position's logits and passes it to `Scheduler.complete`.
    public let samples: Bool

    public init(id: RequestID, start: Int, count: Int, tokens: [Int32], blockTables: [[Int32]], samples: Bool) {
        (self.id, self.start, self.count, self.tokens, self.blockTables, self.samples) = (id, start, count, tokens, blockTables, samples)
    }
}

/// A step: the entries to run, and the requests preempted to make room for them.
public struct ScheduledBatch: Sendable, Equatable {
    /// Decodes first, then prefill chunks.
    public internal(set) var entries: [ScheduledEntry] = []
    /// Requests whose blocks were freed this step; they wait to be recomputed from position 0.
    public internal(set) var preempted: [RequestID] = []
    /// Tokens fed this step, over all entries.
    public var tokenCount: Int { entries.reduce(0) { $0 + $1.count } }
    /// Nothing to run.
    public var isEmpty: Bool { entries.isEmpty }
}

/// What one entry of a completed step produced, for the engine to stream.
public struct SequenceUpdate: Sendable, Equatable {
    public let id: RequestID
    /// The token sampled this step (nil for a prefill chunk that did not reach the end).
    public let token: Int32?
    /// Why the request ended this step (`.eos` for a stop token, `.length` at maxNewTokens); nil if it goes on.
    public let finish: FinishReason?
}

/// The scheduler's state after a step.
public struct SchedulerMetrics: Sendable, Equatable {
    /// Requests holding blocks.
    public var running: Int
    /// Requests queued, new or preempted.
    public var waiting: Int
    /// Tokens the last `schedule()` fed.
    public var scheduledTokens: Int
    /// Blocks free in the pool.
    public var freeBlocks: Int
    /// Preemptions since the scheduler started.
    public var preemptions: Int
}
