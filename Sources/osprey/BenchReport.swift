// The JSON `osprey bench` writes, and tools/bench_transformers.py writes in the same shape, so
// tools/render_bench.py can put the two side by side: the engine and device, the model's config
// summary (what the roofline is computed from), every setting, the results and the date. Keys are
// snake_case (the encoder converts); absent values (memory on the CPU) are left out.
import Foundation
import OspreyModels

struct BenchReport: Encodable {
    var engine: String
    var device: String
    /// The NVIDIA kernel driver version (from /proc/driver/nvidia/version) and the CUDA version it
    /// supports; nil on the CPU.
    var driver: String?
    var cuda: String?
    var model: ModelSummary
    var settings: Settings
    var results: Results
    var date: String
    var command: String

    struct Settings: Encodable {
        var model: String
        var device: String
        var dequantize: Bool
        var decodeTokens: Int
        var promptTokens: Int
        var prefillLengths: [Int]
        var batchSizes: [Int]
        var `repeat`: Int
        var json: String?
    }

    struct Results: Encodable {
        var loadS: Double
        var loadWarmS: Double
        var decode: [Rate]
        var prefill: [Rate]
        var memoryGib: Memory?
    }

    /// One figure: tok/s is the median of `samples` (each over one timed run).
    struct Rate: Encodable {
        var batch: Int?
        var tokens: Int?
        var tokS: Double
        var samples: [Double]
    }

    struct Memory: Encodable {
        var afterLoad: Double
        var peak: Double
        var method: String
    }

    func write(to path: String) throws {
        try jsonData().write(to: URL(fileURLWithPath: path))
    }

    func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

/// The config fields a roofline needs, with short names; read from any family's config.json.
struct ModelSummary: Encodable {
    var modelType: String
    var layers, hidden, vocab: Int?
    var intermediate, heads, kvHeads, headDim, experts, topK, slidingWindow: Int?
    /// How the expert weights are stored as loaded: "mxfp4", "bf16" after --dequantize, else the checkpoint's dtype.
    var quantization: String
    /// Bytes of the weights as loaded (after --dequantize when given).
    var weightBytes: Int

    init(folder: ModelFolder, dequantized: Bool) throws {
        struct Config: Decodable {
            var vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads, headDim: Int?
            var numLocalExperts, numExpertsPerTok, expertsPerToken, slidingWindow: Int?
            var quantizationConfig: QuantizationConfig?
            var dtype, torchDtype: String?
        }
        let c = try folder.config(as: Config.self)
        modelType = folder.modelType
        (layers, hidden, vocab, intermediate) = (c.numHiddenLayers, c.hiddenSize, c.vocabSize, c.intermediateSize)
        (heads, kvHeads, experts, slidingWindow) = (c.numAttentionHeads, c.numKeyValueHeads ?? c.numAttentionHeads, c.numLocalExperts, c.slidingWindow)
        headDim = c.headDim ?? c.hiddenSize.flatMap { h in c.numAttentionHeads.map { h / max($0, 1) } }
        topK = c.numExpertsPerTok ?? c.expertsPerToken
        quantization = dequantized ? "bf16" : (c.quantizationConfig?.quantMethod ?? c.dtype ?? c.torchDtype ?? "unquantized")
        weightBytes = folder.weights.totalBytes
    }
}
