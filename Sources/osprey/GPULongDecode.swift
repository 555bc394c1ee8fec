// `osprey gpu-check --long-decode N`: the config-aware cache against one that keeps every layer
// in full, over a long greedy generation from a 1,024-token prompt (issue 7's measurement, the
// seed's Figure 5): KV-cache bytes held against the generated length, and decode speed over
// each stretch of 1,024 tokens. Writes a CSV for tools/plot_kv_cache.py.
import Foundation
import OspreyCore
import OspreyCUDA
import OspreyGeneration
import OspreyModels

struct LongDecode {
    struct Sample { let cache: String, generated: Int, kvBytes: Int, tokensPerSecond: Double }

    /// Runs both caches for `tokens` new tokens; returns the report lines and writes `csv`.
    static func run(_ model: GptOssModel, gpu: CUDABackend, tokens: Int, csv: String?) throws -> [String] {
        let c = model.config
        let rowBytes = 2 * c.resolvedKVHeads * c.resolvedHeadDim * 4  // k and v rows, f32
        let prompt = (0..<1024).map { Int32(($0 * 7919 + 13) % model.vocabularySize) }
        let clock = ContinuousClock()
        var samples: [Sample] = []
        for (name, windows) in [("config-aware (sliding layers keep their window)", c.resolvedWindows),
                                ("every layer full", c.resolvedWindows.map { _ in Int?.none })] {
            let cache = DynamicCache(windows: windows, backend: gpu)
            let bytes = { (0..<c.numHiddenLayers).reduce(0) { $0 + cache.capacityTokens(layer: $1) } * rowBytes }
            var produced = 0
            var mark = clock.now
            _ = try generateGreedyPipelined(model: model, prompt: prompt, maxNewTokens: tokens, cache: cache) { _ in
                produced += 1
                if produced % 1024 == 0 {
                    let now = clock.now
                    let d = now - mark
                    let secs = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
                    samples.append(Sample(cache: name, generated: produced, kvBytes: bytes(), tokensPerSecond: 1024 / secs))
                    mark = now
                }
            }
        }
        if let csv {
            let text = "cache,generated,kv_bytes,tokens_per_second\n" + samples.map {
                "\"\($0.cache)\",\($0.generated),\($0.kvBytes),\(String(format: "%.1f", $0.tokensPerSecond))"
            }.joined(separator: "\n") + "\n"
            try Data(text.utf8).write(to: URL(fileURLWithPath: csv))
        }
        var lines = ["", "## Long decode: \(tokens) tokens after a 1,024-token prompt (greedy, batch 1)", "",
                     "| cache | KV bytes after 1,024 new | KV bytes at the end | tok/s over the first 1,024 | tok/s over the last 1,024 |",
                     "|---|---|---|---|---|"]
        for name in Set(samples.map(\.cache)).sorted() {
            let s = samples.filter { $0.cache == name }
            guard let first = s.first, let last = s.last else { continue }
            let mib = { (b: Int) in String(format: "%.0f MiB", Double(b) / 1_048_576) }
            lines.append("| \(name) | \(mib(first.kvBytes)) | \(mib(last.kvBytes)) | \(String(format: "%.1f", first.tokensPerSecond)) | \(String(format: "%.1f", last.tokensPerSecond)) |")
        }
        return lines
    }
}
