// The serving engine: a BatchEngine driven by its own thread, so any number of callers (the
// server's request handlers) can add requests and read their tokens as streams while steps run.
// Callers only touch the inbox, the cancel list and the stream table, under one lock; the loop
// thread alone touches the BatchEngine. A request is checked when it is added (so a bad one fails
// its caller at once and never reaches the loop); a stream whose consumer goes away cancels its
// request, which frees its KV blocks before the next step.
import Foundation
import OspreyModels

/// One event of a request's stream: a token, then with the last one why it ended.
public struct GeneratedToken: Sendable, Equatable {
    public let token: Int32?
    public let finish: FinishReason?
}

/// Counters of a running engine (a snapshot after the last step).
public struct EngineMetrics: Sendable, Equatable {
    public var scheduler = SchedulerMetrics(running: 0, waiting: 0, scheduledTokens: 0, freeBlocks: 0, preemptions: 0)
    public var totalBlocks = 0
    public var steps = 0
    public var tokensFed = 0
    public var tokensGenerated = 0
    public var requestsFinished = 0
    public var requestsCancelled = 0
}

/// Continuous batching behind `add` / `cancel`, on a thread of its own.
public final class Engine: @unchecked Sendable {  // shared state is guarded by `lock`; `core` is the loop thread's alone
    private let core: BatchEngine
    private let lock = NSCondition()
    private var inbox: [(id: RequestID, prompt: [Int32], generation: GenerationConfig)] = []
    private var cancels: [RequestID] = []
    private var streams: [RequestID: AsyncThrowingStream<GeneratedToken, Error>.Continuation] = [:]
    private var nextID = 0
    private var stopping = false, stopped = false
    private var snapshot = EngineMetrics()
    private var finishedTimings: [RequestID: RequestTiming] = [:]
    private let onFinished: (@Sendable ([RequestID: RequestTiming]) -> Void)?

    /// Starts an engine over `model` (its KV pool sized by `config`). `onFinished` is called on the
    /// loop thread after each step with the timings of the requests that finished in it (metrics).
    public init(model: any LanguageModel, config: BatchConfig = BatchConfig(),
                onFinished: (@Sendable ([RequestID: RequestTiming]) -> Void)? = nil) throws {
        core = try BatchEngine(model: model, config: config)
        self.onFinished = onFinished
        snapshot.totalBlocks = core.scheduler.blocks.numBlocks
        snapshot.scheduler.freeBlocks = core.scheduler.blocks.freeBlockCount
        let thread = Thread { [self] in loop() }
        thread.name = "osprey-engine"
        thread.start()
    }

    /// Queues a request and returns its id and its token stream. Throws at once for a request the
    /// engine could never run (empty prompt, limits, too long for the KV pool, bad sampling).
    public func add(prompt: [Int32], generation: GenerationConfig) throws -> (id: RequestID, tokens: AsyncThrowingStream<GeneratedToken, Error>) {
        try generation.sampling.validate()
        let layout = core.scheduler.layout, pool = snapshot.totalBlocks
        lock.lock()
        defer { lock.unlock() }
        let id = RequestID(nextID)
        try Scheduler.check(BatchRequest(id: id, prompt: prompt, maxNewTokens: generation.maxNewTokens, minNewTokens: generation.minNewTokens),
                            layout: layout, numBlocks: pool)
        guard !stopping else { throw BatchError.invalidSetting("the engine is shutting down") }
        nextID += 1
        let (stream, continuation) = AsyncThrowingStream<GeneratedToken, Error>.makeStream()
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.cancel(id) }
        }
        streams[id] = continuation
        inbox.append((id, prompt, generation))
        lock.signal()
        return (id, stream)
    }

    /// Cancels a request: its stream ends with `.cancelled` and its blocks return before the next step.
    public func cancel(_ id: RequestID) {
        lock.lock()
        cancels.append(id)
        lock.signal()
        lock.unlock()
    }

    /// Counters after the last step.
    public var metrics: EngineMetrics {
        lock.lock()
        defer { lock.unlock() }
        return snapshot
    }

    /// Stops the loop: requests still running are cancelled (their streams end with `.cancelled`).
    /// With `drain`, waits up to `deadline` seconds for running requests to finish first.
    public func shutdown(drain: Bool = false, deadline: Double = 10) {
        let end = Date().addingTimeInterval(deadline)
        lock.lock()
        stopping = true
        lock.signal()
        while drain && !stopped && (!streams.isEmpty || !inbox.isEmpty) && Date() < end { _ = lock.wait(until: end) }
        cancels.append(contentsOf: streams.keys)
        lock.signal()
        while !stopped && Date() < end.addingTimeInterval(5) { _ = lock.wait(until: end.addingTimeInterval(5)) }
        lock.unlock()
    }

    // MARK: - The loop thread

    private func loop() {
        while true {
            lock.lock()
            while inbox.isEmpty && cancels.isEmpty && !core.hasWork && !(stopping && streams.isEmpty) { lock.wait() }
            if stopping && streams.isEmpty && inbox.isEmpty {
                stopped = true
                lock.broadcast()
                lock.unlock()
                return
            }
            let (added, cancelled) = (inbox, cancels)
            (inbox, cancels) = ([], [])
            lock.unlock()

            var ended: [(RequestID, GeneratedToken?, Error?)] = []
            for id in cancelled where core.cancel(id) || added.contains(where: { $0.id == id }) {
                ended.append((id, GeneratedToken(token: nil, finish: .cancelled), nil))
            }
            for r in added where !cancelled.contains(r.id) {
                do { try core.add(prompt: r.prompt, generation: r.generation, id: r.id) } catch { ended.append((r.id, nil, error)) }
            }
            var updates: [SequenceUpdate] = []
            if core.hasWork {
                do { updates = try core.step() } catch {
                    // A device failure ends every live request with the error; the engine goes on.
                    lock.lock(); let live = Array(streams.keys); lock.unlock()
                    for id in live { core.cancel(id); ended.append((id, nil, error)) }
                }
            }
            deliver(updates, ended: ended)
        }
    }

    private func deliver(_ updates: [SequenceUpdate], ended: [(RequestID, GeneratedToken?, Error?)]) {
        var finished: [RequestID: RequestTiming] = [:]
        lock.lock()
        for u in updates {
            guard let c = streams[u.id] else { continue }
            c.yield(GeneratedToken(token: u.token, finish: u.finish))
            if u.token != nil { snapshot.tokensGenerated += 1 }
            if u.finish != nil {
                c.finish()
                streams[u.id] = nil
                snapshot.requestsFinished += 1
                finished[u.id] = core.timings[u.id]
            }
        }
        for (id, event, error) in ended {
            guard let c = streams.removeValue(forKey: id) else { continue }
            if let event { c.yield(event); c.finish(); snapshot.requestsCancelled += 1 } else { c.finish(throwing: error) }
        }
        snapshot.scheduler = core.scheduler.metrics
        (snapshot.steps, snapshot.tokensFed) = (core.steps, core.tokensFed)
        lock.broadcast()
        lock.unlock()
        for id in finished.keys { core.forget(id) }
        for (id, _, _) in ended { core.forget(id) }
        if !finished.isEmpty { onFinished?(finished) }
    }
}
