// GET /metrics: the engine's counters in Prometheus' text exposition format (version 0.0.4), read
// from `Engine.metrics` (a snapshot after the last step) and the admission count — no metrics
// library, a handful of gauges and counters — plus two latency histograms fed by the engine as
// requests finish: time to first token, and each request's mean time between its later tokens.
// KV block counts are here so that load tests and operators can see that cancelled requests gave
// their blocks back.
import Hummingbird
import OspreyGeneration
import Synchronization

/// Time-to-first-token and inter-token-latency histograms (seconds), filled from the engine's
/// per-request timings of finished requests (cancelled ones are not counted).
public final class LatencyHistograms: Sendable {
    /// Upper bounds of the buckets, seconds (+Inf is implied).
    static let bounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

    struct Histogram {
        var buckets = [Int](repeating: 0, count: LatencyHistograms.bounds.count)
        var sum = 0.0, count = 0
        mutating func observe(_ v: Double) {
            for (i, b) in LatencyHistograms.bounds.enumerated() where v <= b { buckets[i] += 1 }
            sum += v
            count += 1
        }
    }

    private let state = Mutex((ttft: Histogram(), itl: Histogram()))

    public init() {}

    /// Records the timings of requests that finished.
    public func observe(_ timings: [OspreyGeneration.RequestID: RequestTiming]) {
        state.withLock { s in
            for t in timings.values {
                if let v = t.ttft { s.ttft.observe(v) }
                if let v = t.interTokenLatency { s.itl.observe(v) }
            }
        }
    }

    /// The two histograms in the exposition format.
    func text() -> String {
        let (ttft, itl) = state.withLock { ($0.ttft, $0.itl) }
        return [("osprey_time_to_first_token_seconds", "Time from a request's arrival at the engine to its first token.", ttft),
                ("osprey_inter_token_latency_seconds", "Each finished request's mean time between its tokens after the first.", itl)]
            .map { name, help, h in
                var lines = ["# HELP \(name) \(help)", "# TYPE \(name) histogram"]
                for (b, n) in zip(Self.bounds, h.buckets) { lines.append("\(name)_bucket{le=\"\(b)\"} \(n)") }
                lines += ["\(name)_bucket{le=\"+Inf\"} \(h.count)", "\(name)_sum \(h.sum)", "\(name)_count \(h.count)"]
                return lines.joined(separator: "\n") + "\n"
            }.joined()
    }
}

extension ServedModel {
    /// The exposition text.
    func metricsText() -> String {
        let m = engine.metrics
        let rows: [(String, String, String, Int)] = [
            ("osprey_kv_blocks_free", "gauge", "KV blocks free in the pool.", m.scheduler.freeBlocks),
            ("osprey_kv_blocks_total", "gauge", "KV blocks in the pool.", m.totalBlocks),
            ("osprey_requests_running", "gauge", "Requests the engine is running.", m.scheduler.running),
            ("osprey_requests_waiting", "gauge", "Requests waiting in the engine.", m.scheduler.waiting),
            ("osprey_requests_in_flight", "gauge", "HTTP generation requests admitted and not yet answered.", admission.inFlight),
            ("osprey_admission_limit", "gauge", "Generation requests admitted at most at once (--max-queue).", admission.limit),
            ("osprey_engine_steps_total", "counter", "Engine steps run.", m.steps),
            ("osprey_tokens_fed_total", "counter", "Tokens fed to the model (prefill and decode).", m.tokensFed),
            ("osprey_tokens_generated_total", "counter", "Tokens generated.", m.tokensGenerated),
            ("osprey_requests_finished_total", "counter", "Requests that finished.", m.requestsFinished),
            ("osprey_requests_cancelled_total", "counter", "Requests cancelled (client gone, stop string, shutdown).", m.requestsCancelled),
            ("osprey_preemptions_total", "counter", "Requests preempted for KV blocks.", m.scheduler.preemptions),
        ]
        return rows.map { name, type, help, value in "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n" }.joined()
            + latencies.text()
    }

    func metricsResponse() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: metricsText())))
    }
}
