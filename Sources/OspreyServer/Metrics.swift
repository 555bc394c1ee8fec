// GET /metrics: the engine's counters in Prometheus' text exposition format (version 0.0.4), read
// from `Engine.metrics` (a snapshot after the last step) and the admission count — no metrics
// library, a handful of gauges and counters. KV block counts are here so that load tests and
// operators can see that cancelled requests gave their blocks back.
import Hummingbird
import OspreyGeneration

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
    }

    func metricsResponse() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: metricsText())))
    }
}
