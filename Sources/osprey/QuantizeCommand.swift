// `osprey quantize`: turn a bf16/f32 gpt-oss checkpoint's experts into MXFP4 and save a folder
// laid out as the published openai/gpt-oss checkpoints are (see OspreyQuant/CheckpointQuantizer).
import ArgumentParser
import Foundation
import OspreyQuant

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a checkpoint's MoE experts to MXFP4 and save it (transformers and Osprey load the result).",
        discussion: """
        Experts (mlp.experts.gate_up_proj / down_proj) become *_blocks + *_scales; every other tensor, and the \
        experts of modules matched by --not-convert, is copied unchanged; config.json gains quantization_config; \
        tokenizer and generation files are copied.
        Scale rules: "transformers" (default) is what transformers' own quantizer computes (triton_kernels \
        downcast_to_mxfp_torch, ROUND_UP: bf16 input, scale 2^ceil(log2(amax/6)), ties away from zero), so the \
        bytes written equal the ones transformers would write for the same weights; "ocp" is the OCP MX v1.0 \
        formula (scale 2^(floor(log2 amax) - 2), ties to even, saturating at 6).
        """)

    @Option(help: "The bf16/f32 model folder (config.json + safetensors).")
    var model: String

    @Option(help: "Target format: mxfp4.")
    var to: String

    @Option(help: "Output folder (created; checkpoint files of an earlier save there are replaced).")
    var out: String

    @Option(help: "MXFP4 scale rule: transformers (default, matches transformers' quantizer) or ocp.")
    var rule: String = MXFP4Rule.transformers.rawValue

    @Option(name: .customLong("not-convert"), help: "A module pattern whose experts stay unquantized (repeatable), added to the published defaults.")
    var notConvert: [String] = []

    @Option(name: .customLong("max-shard-size"), help: "Most tensor bytes per safetensors shard: bytes or a size such as 5GB, 500MB.")
    var maxShardSize = "5GB"

    func run() throws {
        try reportingErrors {
            guard to.lowercased() == "mxfp4" else { throw CLIError("unknown --to \"\(to)\"; supported: mxfp4") }
            guard let rule = MXFP4Rule(rawValue: rule) else {
                throw CLIError("unknown --rule \"\(rule)\"; supported: \(MXFP4Rule.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var options = MXFP4QuantizeOptions()
            options.rule = rule
            options.modulesToNotConvert = notConvert
            options.maxShardBytes = try Self.parseSize(maxShardSize)
            let report = try CheckpointQuantizer.quantizeMXFP4(model: URL(fileURLWithPath: model), out: URL(fileURLWithPath: out), options: options)
            emit("quantized \(report.quantized.count) expert tensors to MXFP4 (\(rule.rawValue) rule), kept \(report.kept.count) tensors; "
                 + "\(report.bytesIn) -> \(report.bytesOut) bytes; copied \(report.copiedFiles.joined(separator: ", ")); wrote \(out)")
        }
    }

    /// "5GB" -> 5_000_000_000 (decimal units, as huggingface_hub reads them; "GiB" is binary), or plain bytes.
    static func parseSize(_ text: String) throws -> Int {
        let units: [(String, Int)] = [("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000), ("B", 1)]
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            if let n = Double(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), n > 0 { return Int(n * Double(scale)) }
            break
        }
        if let n = Int(t), n > 0 { return n }
        throw CLIError("--max-shard-size must be a positive size such as 5GB or 1000000, got \"\(text)\"")
    }
}
