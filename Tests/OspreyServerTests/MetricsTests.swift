// GET /metrics on a tiny random gpt-oss model (CPU, router client). Every scrape is parsed strictly
// as Prometheus text (`Exposition` below), and the counts are checked against what the requests
// themselves report: prompt and generated tokens from `usage`, one TTFT per request, one
// inter-token gap per token after the first (every gap, not one mean per request), HTTP requests
// by route and status class, KV blocks in use back to 0 once the requests are done. Each server
// has its own registry: two in one process do not share counts.
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import OspreyServer

@Suite struct MetricsTests {
    @Test func scrapeIsPrometheusTextAndFollowsTheRequests() async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let before = try await scrape(client)
                #expect(before["osprey_kv_blocks_total"] == 128)
                #expect(before["osprey_kv_blocks_free"] == 128)
                #expect(before["osprey_kv_blocks_in_use"] == 0)
                #expect(before["osprey_prompt_tokens_total"] == 0)
                #expect(before["osprey_time_to_first_token_seconds_count"] == 0)
                #expect(before["osprey_inter_token_latency_seconds_count"] == 0)
                for (name, type) in [("osprey_requests_cancelled_total", "counter"), ("osprey_tokens_generated_total", "counter"),
                                     ("osprey_preemptions_total", "counter"), ("osprey_batch_size", "gauge"),
                                     ("osprey_inter_token_latency_seconds", "histogram")] {
                    #expect(before.types[name] == type, "\(name)")
                }

                var (prompt, generated) = ([Int](), [Int]())
                for n in [1, 4, 7] {
                    let r = try await client.post("/v1/completions", #"{"prompt": [1, 2, 3, 4], "max_tokens": \#(n), "temperature": 0}"#)
                    #expect(r.status == .ok, "\(r.text)")
                    let usage = try #require(try r.object()["usage"] as? [String: Int])
                    prompt.append(try #require(usage["prompt_tokens"]))
                    generated.append(try #require(usage["completion_tokens"]))
                }
                let streamed = try await client.post("/v1/completions",
                    #"{"prompt": [5, 6], "max_tokens": 9, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}"#)
                let usage = try #require(try streamed.events().last?["usage"] as? [String: Int])
                prompt.append(try #require(usage["prompt_tokens"]))
                generated.append(try #require(usage["completion_tokens"]))
                #expect(try await client.post("/v1/completions", #"{"prompt": [1], "max_tokens": 0}"#).status == .badRequest)
                #expect(try await client.execute(uri: "/v1/nothing", method: .get).status == .notFound)

                // A request's blocks return at the step that finishes it, before its last token is read.
                let after = try await scrape(client)
                #expect(after["osprey_kv_blocks_in_use"] == 0)
                #expect(after["osprey_kv_blocks_free"] == 128)
                #expect(after["osprey_requests_running"] == 0)
                #expect(after["osprey_http_requests_total{endpoint=\"/v1/completions\",status=\"2xx\"}"] == 4)
                #expect(after["osprey_http_requests_total{endpoint=\"/v1/completions\",status=\"4xx\"}"] == 1)
                #expect(after["osprey_http_requests_total{endpoint=\"NotFound\",status=\"4xx\"}"] == 1)
                #expect(after["osprey_http_requests_total{endpoint=\"/metrics\",status=\"2xx\"}"] == 1)  // `before`
                #expect(after["osprey_prompt_tokens_total"] == Double(prompt.reduce(0, +)))
                #expect(after["osprey_tokens_generated_total"] == Double(generated.reduce(0, +)))
                #expect(after["osprey_requests_finished_total"] == 4)
                #expect(after["osprey_time_to_first_token_seconds_count"] == 4)
                // Every gap between consecutive tokens: 0 + 3 + 6 + 8 of them when no reply stops early.
                #expect(after["osprey_inter_token_latency_seconds_count"] == Double(generated.map { $0 - 1 }.reduce(0, +)))
                #expect(generated.map { $0 - 1 }.reduce(0, +) > generated.count, "replies too short to tell gaps from requests")
                #expect(try #require(after["osprey_inter_token_latency_seconds_sum"]) > 0)

                // Counters mirrored from the engine keep counting across scrapes (they advance, never restart).
                _ = try await client.post("/v1/completions", #"{"prompt": [7], "max_tokens": 3, "temperature": 0}"#)
                let later = try await scrape(client)
                #expect(try #require(later["osprey_tokens_generated_total"]) > after["osprey_tokens_generated_total"]!)
                #expect(try #require(later["osprey_engine_steps_total"]) > after["osprey_engine_steps_total"]!)
                #expect(later["osprey_requests_finished_total"] == 5)
            }
        }
    }

    @Test func serversKeepTheirOwnCounts() async throws {
        try await withServed { a in
            try await withServed { b in
                try await withClient(a) { client in
                    let response = try await client.post("/v1/completions", #"{"prompt": [1, 2], "max_tokens": 2}"#)
                    #expect(response.status == .ok)
                    let text = try await scrape(client)
                    #expect(text["osprey_prompt_tokens_total"] == 2)
                }
                try await withClient(b) { client in
                    let text = try await scrape(client)
                    #expect(text["osprey_prompt_tokens_total"] == 0)
                    #expect(text["osprey_time_to_first_token_seconds_count"] == 0)
                    #expect(text["osprey_http_requests_total{endpoint=\"/v1/completions\",status=\"2xx\"}"] == nil)
                }
            }
        }
    }

    @Test func refusedRequestsAreCountedUnderTheirRoute() async throws {
        var options = ServerOptions()
        options.apiKey = "k"
        try await withServed(options) { served in
            try await withClient(served) { client in
                #expect(try await client.execute(uri: "/v1/models", method: .get).status == .unauthorized)
                #expect(try await client.execute(uri: "/health", method: .get).status == .ok)
                let text = try await scrape(client, headers: [.authorization: "Bearer k"])
                #expect(text["osprey_http_requests_total{endpoint=\"/v1/models\",status=\"4xx\"}"] == 1)
                #expect(text["osprey_http_requests_total{endpoint=\"/health\",status=\"2xx\"}"] == 1)
            }
        }
    }
}

/// GET /metrics, parsed; records every line that breaks the format as an issue.
private func scrape(_ client: any TestClientProtocol, headers: HTTPFields = [:]) async throws -> Exposition {
    let response = try await client.execute(uri: "/metrics", method: .get, headers: headers)
    #expect(response.status == .ok)
    #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
    let exposition = Exposition(response.text)
    #expect(exposition.problems.isEmpty, "\(exposition.problems)")
    return exposition
}

/// A scrape in Prometheus' text format, read strictly: `# HELP name text`, `# TYPE name type`, and
/// samples `name{label="value",...} value` whose family was typed before them; histograms' buckets
/// are cumulative and end at +Inf with the count.
struct Exposition {
    /// Values by `name{labels}` as written.
    private(set) var samples: [String: Double] = [:]
    /// Types by family name.
    private(set) var types: [String: String] = [:]
    private(set) var problems: [String] = []

    init(_ text: String) {
        let label = #"[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*""#
        let sample = try! Regex(#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{"# + label + "(?:," + label + #")*\})? (\S+)$"#)
        let help = try! Regex(#"^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S.*$"#)
        let type = try! Regex(#"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$"#)
        guard text.hasSuffix("\n") else { problems.append("no final newline"); return }
        var buckets: [String: (count: String, values: [Double])] = [:]  // by histogram series (labels but `le`)
        for line in text.dropLast().split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("#") {
                if let m = try? type.wholeMatch(in: line), let name = m[1].substring, let t = m[2].substring {
                    if types[String(name)] != nil { problems.append("second TYPE line: \(line)") }
                    types[String(name)] = String(t)
                } else if (try? help.wholeMatch(in: line)) == nil {
                    problems.append("bad comment line: \(line)")
                }
                continue
            }
            guard let m = try? sample.wholeMatch(in: line), let name = m[1].substring.map(String.init),
                  let raw = m[3].substring, let value = Double(raw == "+Inf" ? "inf" : String(raw)) else {
                problems.append("bad sample line: \(line)")
                continue
            }
            let labels = m[2].substring.map(String.init) ?? ""
            let family = ["_bucket", "_sum", "_count"].compactMap { s -> String? in
                guard name.hasSuffix(s), types[String(name.dropLast(s.count))] == "histogram" else { return nil }
                return String(name.dropLast(s.count))
            }.first ?? name
            if types[family] == nil { problems.append("sample before its TYPE line: \(line)") }
            if samples.updateValue(value, forKey: name + labels) != nil { problems.append("repeated sample: \(line)") }
            if family != name, name.hasSuffix("_bucket") {
                var rest = labels.replacing(#/,?le="[^"]*"/#, with: "").replacing("{,", with: "{")
                if rest == "{}" { rest = "" }
                buckets[family + rest, default: (family + "_count" + rest, [])].values.append(value)
            }
        }
        for (series, b) in buckets {
            if zip(b.values, b.values.dropFirst()).contains(where: { $0 > $1 }) { problems.append("\(series): buckets not cumulative") }
            if b.values.last != samples[b.count] { problems.append("\(series): the +Inf bucket is not \(b.count)") }
        }
    }

    subscript(_ key: String) -> Double? { samples[key] }
}
