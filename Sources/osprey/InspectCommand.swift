// `osprey inspect DIR`: what a model folder holds — the config summary, parameters by dtype,
// and the quantization config — without loading the weights into memory.
import ArgumentParser
import Foundation
import OspreyIO
import OspreyModels

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Summarise a model folder.")

    @Argument(help: "A Hugging Face model folder.")
    var directory: String

    func run() throws {
        try reportingErrors {
            let folder = try ModelFolder(directory: URL(fileURLWithPath: directory))
            emit("model_type: \(folder.modelType)")
            if folder.modelType == "gpt_oss" {
                let c = try folder.config(as: GptOssConfig.self)
                try c.validate()
                emit("layers: \(c.numHiddenLayers)  hidden: \(c.hiddenSize)  intermediate: \(c.intermediateSize)  vocab: \(c.vocabSize)")
                emit("attention: \(c.numAttentionHeads) q heads / \(c.resolvedKVHeads) kv heads, head_dim \(c.resolvedHeadDim), sliding window \(c.resolvedWindow)")
                let types = c.resolvedWindows.map { $0 == nil ? "full" : "sliding" }
                emit("layer types: \(types.joined(separator: ","))")
                emit("experts: \(c.numLocalExperts), top-\(c.resolvedTopK), swiglu_limit \(c.swigluLimit ?? 7)")
                let r = c.resolvedRope
                emit("rope: \(r.resolvedType) theta \(c.resolvedRopeTheta) factor \(r.factor ?? 1) original_max \(r.originalMaxPositionEmbeddings.map(String.init) ?? "-")")
                if let q = c.quantizationConfig {
                    emit("quantization: \(q.quantMethod), not converted: \((q.modulesToNotConvert ?? []).joined(separator: ", "))")
                } else {
                    emit("quantization: none")
                }
            }
            var byDType: [String: Int] = [:]
            var bytes = 0
            for name in folder.weights.tensorNames {
                let t = try folder.weights.tensor(name)
                bytes += t.byteCount
                if name.hasSuffix("_blocks") {
                    byDType["mxfp4", default: 0] += t.count * 2   // two e2m1 values per byte
                } else if name.hasSuffix("_scales") {
                    byDType["e8m0 scales", default: 0] += t.count
                } else {
                    byDType[t.dtype.rawValue, default: 0] += t.count
                }
            }
            let params = byDType.filter { $0.key != "e8m0 scales" }.values.reduce(0, +)
            emit("parameters: \(params) (\(String(format: "%.3f", Double(params) / 1e9))B), \(bytes) bytes of tensors")
            for (dtype, count) in byDType.sorted(by: { $0.key < $1.key }) { emit("  \(dtype): \(count)") }
        }
    }
}
