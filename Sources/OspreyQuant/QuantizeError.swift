// Errors of `CheckpointQuantizer`: each names the folder, file, tensor or pattern at fault, so that
// `osprey quantize` can print one line that says what to fix.

/// A checkpoint that cannot be quantized, or a quantized checkpoint that cannot be written.
public enum QuantizeError: Error, CustomStringConvertible, Equatable, Sendable {
    case modelFolderMissing(path: String)
    case invalidConfig(path: String, reason: String)
    case unsupportedModelType(String, supported: [String])
    case alreadyQuantized(path: String, method: String)
    case noExpertWeights(path: String)
    case badExpertShape(tensor: String, shape: [Int], expected: [Int])
    case notDivisibleBy32(tensor: String, dimension: String, size: Int)
    case unsupportedDType(tensor: String, dtype: String)
    case nonFiniteWeight(tensor: String)
    case outputIsInput(path: String)
    case invalidPattern(String, reason: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .modelFolderMissing(let p): "\(p): no such model folder"
        case .invalidConfig(let p, let r): "\(p): \(r)"
        case .unsupportedModelType(let t, let s): "quantize supports model_type \(s.joined(separator: ", ")), not \"\(t)\""
        case .alreadyQuantized(let p, let m): "\(p) is already quantized (quantization_config.quant_method \"\(m)\"); give a bf16 or f32 checkpoint"
        case .noExpertWeights(let p): "\(p): no bf16/f32 expert weights (mlp.experts.gate_up_proj / down_proj) to quantize"
        case .badExpertShape(let t, let s, let e): "tensor \"\(t)\" has shape \(s), expected \(e) (transformers' [experts, in, out] layout)"
        case .notDivisibleBy32(let t, let d, let n): "tensor \"\(t)\": MXFP4 blocks of 32 need its input dimension (\(d)) to be a multiple of 32, got \(n)"
        case .unsupportedDType(let t, let d): "tensor \"\(t)\" is \(d); only f32, bf16 and f16 weights can be quantized"
        case .nonFiniteWeight(let t): "tensor \"\(t)\" holds a NaN or infinity"
        case .outputIsInput(let p): "the output folder \(p) is the model folder; write somewhere else"
        case .invalidPattern(let p, let r): "module pattern \"\(p)\" is not a valid regular expression: \(r)"
        case .writeFailed(let p, let r): "\(p): \(r)"
        }
    }
}
