// The JSON `osprey bench-batch` writes: the schema of tools/bench_transformers_batch.py (its
// docstring is the reference), so tools/render_batch.py reads both engines' files alike. Keys are
// snake_case (the encoder converts); absent values are left out.
import Foundation

struct BatchReport: Encodable {
    var engine: String
    var versions: [String: String?]
    var device: Device
    var model: ModelSummary
    var workload: WorkloadSummary
    var settings: Settings
    var results: Results
    var date: String
    var command: String

    struct Device: Encodable { var name: String; var kind: String; var memoryGib: Double? }

    struct WorkloadSummary: Encodable {
        var name, file: String
        var requests, promptTokens, maxNewTokens: Int
        var arrival: Workload.Arrival
        var concurrency: Int?
    }

    struct Settings: Encodable {
        var numBlocks, blockSize, maxBatchTokens, maxSequences: Int
        var kvDtype: String
        var dequantize: Bool
        var device: String
        var loadS: Double
    }

    struct Results: Encodable {
        var wallS: Double
        var outputTokens: Int
        var outputTokS, totalTokS: Double
        var ttftS, latencyS: Distribution?
        var completed, requests, expectedOutputTokens, shortRequests: Int
        var timeLimited: Bool
        var peakGib, afterLoadGib: Double?
        var steps: Int
        var tokensPerStep: Double
        var preemptions: Int
    }

    func write(to path: String) throws { try jsonData().write(to: URL(fileURLWithPath: path)) }

    func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
