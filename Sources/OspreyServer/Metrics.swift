// GET /metrics: Prometheus' text exposition (0.0.4) of one PrometheusCollectorRegistry per served
// model (swift-prometheus, used directly: the global MetricsSystem is never bootstrapped, so several
// servers in one process — the tests — keep their own counts). Three sources feed it:
//   - the server, as requests go by: HTTP requests by endpoint and status class
//     (`RequestCountMiddleware`), prompt tokens (`enqueue`), and two latency histograms timed with a
//     monotonic clock where a handler reads each token from its engine stream (TokenReader in
//     SSE.swift): time to first token from adding the request to the engine, and EVERY gap between
//     consecutive tokens — so the ITL count grows by tokens − 1 per request read to the end (the
//     engine's per-request timings give one mean gap per request, which hides stalls);
//   - the engine's state, copied at scrape time from `Engine.metrics` (a snapshot after its last
//     step): KV blocks, running/waiting requests, the batch, and its counters (steps, tokens fed and
//     generated, finished, cancelled, preemptions), each advanced by its change since the last scrape;
//   - admission: requests in flight and the limit.
// The KV block gauges let load tests (tools/server_load_test.py reads osprey_kv_blocks_free and
// osprey_kv_blocks_total) and operators see that cancelled requests gave their blocks back.
import Hummingbird
import OspreyGeneration
import Prometheus
import Synchronization

/// The metrics of one served model, in a registry of its own.
public final class ServerMetrics: Sendable {
    /// Every series; `/metrics` is its exposition.
    public let registry = PrometheusCollectorRegistry()
    let promptTokens: Counter
    let timeToFirstToken: DurationHistogram
    let interTokenLatency: DurationHistogram
    /// The engine counters' values at the last scrape, by name (their counters advance by the change).
    private let mirrored = Mutex([String: Int]())

    /// Bucket upper bounds, ms (+Inf is implied): TTFT up to a queued request's minute-long wait,
    /// ITL from a CPU test model's 1 ms steps up to multi-second stalls.
    static let ttftBuckets = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000]
    static let itlBuckets = [1, 2.5, 5, 7.5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 250, 500, 1000, 2500]

    public init() {
        promptTokens = registry.makeCounter(descriptor: Self.name("osprey_prompt_tokens_total",
                                                                   "Prompt tokens of the requests added to the engine."))
        timeToFirstToken = registry.makeDurationHistogram(
            descriptor: Self.name("osprey_time_to_first_token_seconds",
                                  "Time from adding a request to the engine to its handler reading the first token."),
            buckets: Self.ttftBuckets.map { .milliseconds($0) })
        interTokenLatency = registry.makeDurationHistogram(
            descriptor: Self.name("osprey_inter_token_latency_seconds",
                                  "Time between consecutive tokens of a request as its handler reads them (every gap)."),
            buckets: Self.itlBuckets.map { .microseconds(Int($0 * 1000)) })
    }

    static func name(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Counts one answered HTTP request under its route (or "NotFound") and status class ("2xx").
    func countRequest(endpoint: String, status: HTTPResponse.Status) {
        registry.makeCounter(descriptor: Self.name("osprey_http_requests_total", "HTTP requests answered, by endpoint and status class."),
                             labels: [("endpoint", endpoint), ("status", "\(status.code / 100)xx")]).increment()
    }

    /// Times one token's arrival: the first against the request's start (time to first token), each
    /// later one against the token before it (inter-token latency).
    func tokenArrived(first: Bool, previous: inout ContinuousClock.Instant) {
        let now = ContinuousClock.now
        (first ? timeToFirstToken : interTokenLatency).record(now - previous)
        previous = now
    }

    /// Copies the engine's and admission's state into the registry (at each scrape).
    func update(engine m: EngineMetrics, admission: Admission) {
        let gauges: [(String, String, Int)] = [
            ("osprey_kv_blocks_free", "KV blocks free in the pool.", m.scheduler.freeBlocks),
            ("osprey_kv_blocks_total", "KV blocks in the pool.", m.totalBlocks),
            ("osprey_kv_blocks_in_use", "KV blocks held by requests (total - free).", m.totalBlocks - m.scheduler.freeBlocks),
            ("osprey_requests_running", "Requests the engine is running.", m.scheduler.running),
            ("osprey_requests_waiting", "Requests waiting in the engine.", m.scheduler.waiting),
            ("osprey_batch_size", "Sequences in the engine's running batch after its last step (each step schedules them together).",
             m.scheduler.running),
            ("osprey_batch_tokens", "Tokens the engine's last step fed (one per decoding sequence, more for prefill chunks).",
             m.scheduler.scheduledTokens),
            ("osprey_requests_in_flight", "HTTP generation requests admitted and not yet answered.", admission.inFlight),
            ("osprey_admission_limit", "Generation requests admitted at most at once (--max-queue).", admission.limit),
        ]
        let counters: [(String, String, Int)] = [
            ("osprey_engine_steps_total", "Engine steps run.", m.steps),
            ("osprey_tokens_fed_total", "Tokens fed to the model (prefill and decode).", m.tokensFed),
            ("osprey_tokens_generated_total", "Tokens generated.", m.tokensGenerated),
            ("osprey_requests_finished_total", "Requests that finished.", m.requestsFinished),
            ("osprey_requests_cancelled_total", "Requests cancelled (client gone, stop string, shutdown).", m.requestsCancelled),
            ("osprey_preemptions_total", "Requests preempted for KV blocks.", m.scheduler.preemptions),
        ]
        mirrored.withLock { last in
            for (name, help, value) in gauges { registry.makeGauge(descriptor: Self.name(name, help)).set(Int64(value)) }
            for (name, help, value) in counters {
                registry.makeCounter(descriptor: Self.name(name, help)).increment(by: Int64(max(0, value - last[name, default: 0])))
                last[name] = max(value, last[name, default: 0])
            }
        }
    }
}

/// An engine request's token stream, with what the latency histograms need to time it.
struct TimedTokens: Sendable {
    let stream: AsyncThrowingStream<GeneratedToken, Error>
    let metrics: ServerMetrics
    /// When the request was added to the engine.
    let added: ContinuousClock.Instant
}

/// Counts every answered request in `osprey_http_requests_total`; outermost, so it sees the final status.
struct RequestCountMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            metrics.countRequest(endpoint: context.endpointPath ?? "NotFound", status: response.status)
            return response
        } catch {
            // Only ErrorMiddleware's own failure gets here: Hummingbird answers it 500 (or the HTTPError's status).
            metrics.countRequest(endpoint: context.endpointPath ?? "NotFound",
                                 status: (error as? any HTTPResponseError)?.status ?? .internalServerError)
            throw error
        }
    }
}

extension ServedModel {
    /// Adds a generation to the engine and counts its prompt tokens; its stream comes timed.
    func enqueue(prompt: [Int32], generation: GenerationConfig) throws -> (id: OspreyGeneration.RequestID, tokens: TimedTokens) {
        let added = ContinuousClock.now
        let (id, stream) = try engine.add(prompt: prompt, generation: generation)
        metrics.promptTokens.increment(by: Int64(prompt.count))
        return (id, TimedTokens(stream: stream, metrics: metrics, added: added))
    }

    /// The exposition text, after copying in the engine's state.
    func metricsText() -> String {
        metrics.update(engine: engine.metrics, admission: admission)
        return metrics.registry.emitToString()
    }

    func metricsResponse() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: metricsText())))
    }
}
