// `osprey inspect DIR`: what a model folder holds — the config summary, parameters and bytes by
// dtype, the quantization config, and the weight memory a load takes on each device (packed
// MXFP4, or with --dequantize) — without loading the weights into memory.
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
            var byDType: [String: (count: Int, bytes: Int)] = [:]
            var bytes = 0, packedExpertValues = 0, packedExpertBytes = 0
            for name in folder.weights.tensorNames {
                let t = try folder.weights.tensor(name)
                bytes += t.byteCount
                let key: String, count: Int
                if name.hasSuffix("_blocks") {
                    (key, count) = ("mxfp4", t.count * 2)   // two e2m1 values per byte
                    packedExpertValues += count
                    packedExpertBytes += t.byteCount
                } else if name.hasSuffix("_scales") {
                    (key, count) = ("e8m0 scales", t.count)
                    packedExpertBytes += t.byteCount
                } else {
                    (key, count) = (t.dtype.rawValue, t.count)
                }
                let old = byDType[key] ?? (0, 0)
                byDType[key] = (old.count + count, old.bytes + t.byteCount)
            }
            let params = byDType.filter { $0.key != "e8m0 scales" }.values.reduce(0) { $0 + $1.count }
            let gb = { (b: Int) in String(format: "%.2f GB", Double(b) / 1e9) }
            emit("parameters: \(params) (\(String(format: "%.3f", Double(params) / 1e9))B), \(bytes) bytes of tensors")
            for (dtype, v) in byDType.sorted(by: { $0.key < $1.key }) { emit("  \(dtype): \(v.count) values, \(v.bytes) bytes") }
            // What a load holds: the tensors as stored (MXFP4 stays packed on the CPU and the GPU);
            // --dequantize expands the experts to bf16 (2 bytes per value, no scales).
            emit("weight memory on load (cpu or cuda): \(gb(bytes)) (\(bytes) bytes) as stored")
            if packedExpertValues > 0 {
                let expanded = bytes - packedExpertBytes + 2 * packedExpertValues
                emit("weight memory with --dequantize: \(gb(expanded)) (\(expanded) bytes), experts in bf16")
            }
        }
    }
}
