// Quantize a bf16/f32 gpt-oss checkpoint's experts to MXFP4 and save the folder as the published
// openai/gpt-oss checkpoints are laid out, so that transformers (`Mxfp4Config`) and Osprey load it.
// transformers keeps dense experts input-major for `x @ W`: `mlp.experts.gate_up_proj` [E, H, 2I]
// (gate/up interleaved along the outputs) and `down_proj` [E, I, H]. MXFP4 stores rows = outputs
// with blocks of 32 along the inputs: `gate_up_proj_blocks` [E, 2I, H/32, 16] + `_scales`
// [E, 2I, H/32], `down_proj_blocks` [E, H, I/32, 16] + `_scales` [E, H, I/32]. So each expert is
// transposed, then quantized row by row (MXFP4Codec). Every other tensor is copied byte for byte,
// as are the experts of modules matched by `modules_to_not_convert` (transformers' matching: the
// pattern as a regular expression anchored at the start of the module name, or a name suffix).
// config.json gets `quantization_config` and keeps every other byte; tokenizer and generation
// files are copied. Shards are written one at a time (only one shard's quantized tensors are in
// memory), each `_blocks`/`_scales` pair in one file.
import Dispatch
import Foundation
import OspreyCore
import OspreyIO

/// Settings of one MXFP4 quantization.
public struct MXFP4QuantizeOptions: Sendable {
    /// The scale rule (default `.transformers`: byte-identical to transformers' own quantizer).
    public var rule: MXFP4Rule = .transformers
    /// Module patterns whose experts stay unquantized, added to `CheckpointQuantizer.defaultModulesToNotConvert`.
    public var modulesToNotConvert: [String] = []
    /// Most tensor bytes per shard (transformers' "5GB" default).
    public var maxShardBytes = 5_000_000_000
    public init() {}
}

/// What a quantization did.
public struct MXFP4QuantizeReport: Sendable {
    /// Source expert tensors converted to `_blocks` + `_scales`.
    public var quantized: [String] = []
    /// Source tensors written unchanged.
    public var kept: [String] = []
    /// Files copied beside the weights (tokenizer, generation config, ...).
    public var copiedFiles: [String] = []
    /// Tensor bytes read and written.
    public var bytesIn = 0, bytesOut = 0
}

/// Quantizes checkpoint folders.
public enum CheckpointQuantizer {
    /// The families whose expert layout this quantizer knows.
    public static let supportedModelTypes = ["gpt_oss"]
    /// `modules_to_not_convert` of the published gpt-oss checkpoints.
    public static let defaultModulesToNotConvert = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]
    static let expertSuffixes = [".mlp.experts.gate_up_proj", ".mlp.experts.down_proj"]
    static let weightExtensions: Set<String> = ["safetensors", "bin", "pt", "pth", "ckpt", "gguf", "h5", "msgpack"]

    /// Reads the checkpoint in `model`, writes its MXFP4 version to `out`.
    public static func quantizeMXFP4(model: URL, out: URL, options: MXFP4QuantizeOptions = MXFP4QuantizeOptions()) throws -> MXFP4QuantizeReport {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: model.path, isDirectory: &isDir), isDir.boolValue else {
            throw QuantizeError.modelFolderMissing(path: model.path)
        }
        guard model.standardizedFileURL.resolvingSymlinksInPath() != out.standardizedFileURL.resolvingSymlinksInPath() else {
            throw QuantizeError.outputIsInput(path: out.path)
        }
        let configURL = model.appendingPathComponent("config.json")
        let (configText, config) = try readConfig(configURL)
        let type = config["model_type"] as? String ?? ""
        guard supportedModelTypes.contains(type) else { throw QuantizeError.unsupportedModelType(type, supported: supportedModelTypes) }
        if let q = config["quantization_config"], !(q is NSNull) {
            throw QuantizeError.alreadyQuantized(path: model.path, method: (q as? [String: Any])?["quant_method"] as? String ?? "?")
        }
        let checkpoint = try SafetensorsCheckpoint(directory: model)
        if let packed = checkpoint.tensorNames.first(where: { $0.hasSuffix("_blocks") || $0.hasSuffix("_scales") }) {
            throw QuantizeError.alreadyQuantized(path: model.path, method: "mxfp4 (tensor \(packed))")
        }
        let notConvert = defaultModulesToNotConvert + options.modulesToNotConvert.filter { !defaultModulesToNotConvert.contains($0) }
        let patterns = try notConvert.map { p in
            do { return (p, try Regex(p)) } catch { throw QuantizeError.invalidPattern(p, reason: "\(error)") }
        }
        func converts(_ module: String) -> Bool {
            !patterns.contains { module.prefixMatch(of: $0.1) != nil || module.hasSuffix($0.0) }
        }
        let H = config["hidden_size"] as? Int ?? -1, I = config["intermediate_size"] as? Int ?? -1
        let E = config["num_local_experts"] as? Int ?? -1

        // Plan: every source tensor in natural order; converted experts become a blocks+scales group.
        var report = MXFP4QuantizeReport()
        var groups: [[(name: String, byteCount: Int)]] = []
        var sources: [String: String] = [:]  // output `_blocks` name -> source expert name
        for name in checkpoint.tensorNames.sorted(by: naturalOrder) {
            let t = try checkpoint.tensor(name)
            report.bytesIn += t.byteCount
            guard let suffix = expertSuffixes.first(where: { name.hasSuffix($0) }),
                  converts(String(name.dropLast(suffix.count - ".mlp.experts".count))) else {
                groups.append([(name, t.byteCount)])
                report.kept.append(name)
                continue
            }
            let expected = suffix.hasSuffix("gate_up_proj") ? [E, H, 2 * I] : [E, I, H]
            guard t.shape.dims == expected else { throw QuantizeError.badExpertShape(tensor: name, shape: t.shape.dims, expected: expected) }
            guard t.dtype.isFloatingPoint else { throw QuantizeError.unsupportedDType(tensor: name, dtype: t.dtype.rawValue) }
            let (inputs, outputs) = (t.shape[1], t.shape[2])
            guard inputs % MXFP4.blockSize == 0 else {
                throw QuantizeError.notDivisibleBy32(tensor: name, dimension: suffix.hasSuffix("gate_up_proj") ? "hidden_size" : "intermediate_size", size: inputs)
            }
            let scales = E * outputs * (inputs / MXFP4.blockSize)
            groups.append([(name + "_blocks", scales * MXFP4.bytesPerBlock), (name + "_scales", scales)])
            sources[name + "_blocks"] = name
            report.quantized.append(name)
        }
        guard !report.quantized.isEmpty else { throw QuantizeError.noExpertWeights(path: model.path) }

        // Write: shard by shard; a blocks tensor computes its pair, the scales are picked up after.
        var pendingScales: [String: Tensor] = [:]
        try SafetensorsWriter.writeSharded(groups: groups, metadata: ["format": "pt"], directory: out,
                                           maxShardBytes: options.maxShardBytes) { name in
            if let source = sources[name] {
                let (blocks, scales) = try quantizeExperts(checkpoint.tensor(source), name: source, rule: options.rule)
                pendingScales[String(name.dropLast("_blocks".count)) + "_scales"] = scales
                return blocks
            }
            if let scales = pendingScales.removeValue(forKey: name) { return scales }
            return try checkpoint.tensor(name)
        }
        report.bytesOut = groups.joined().reduce(0) { $0 + $1.byteCount }

        try writeConfig(configText, config, modulesToNotConvert: notConvert, to: out.appendingPathComponent("config.json"))
        report.copiedFiles = try copySideFiles(from: model, to: out)
        return report
    }

    // MARK: - Experts

    /// [E, in, out] float experts -> blocks u8 [E, out, in/32, 16] and scales u8 [E, out, in/32].
    static func quantizeExperts(_ w: Tensor, name: String, rule: MXFP4Rule) throws -> (Tensor, Tensor) {
        let (E, inputs, outputs) = (w.shape[0], w.shape[1], w.shape[2])
        let nb = inputs / MXFP4.blockSize
        let blocks = Tensor(zeros: [E, outputs, nb, MXFP4.bytesPerBlock], dtype: .u8)
        let scales = Tensor(zeros: [E, outputs, nb], dtype: .u8)
        // Experts write disjoint slices of blocks/scales, so they run in parallel (Swift cannot see
        // that the raw pointers are shared safely, hence the opt-outs).
        nonisolated(unsafe) let bp = blocks.mutableRaw.assumingMemoryBound(to: UInt8.self)
        nonisolated(unsafe) let sp = scales.mutableRaw.assumingMemoryBound(to: UInt8.self)
        nonisolated(unsafe) var failed = false
        DispatchQueue.concurrentPerform(iterations: E) { e in
            let rowsT = UnsafeMutablePointer<Float>.allocate(capacity: outputs * inputs)  // expert e as [out, in]
            defer { rowsT.deallocate() }
            for i in 0..<inputs {
                for o in 0..<outputs { rowsT[o * inputs + i] = element(w, (e * inputs + i) * outputs + o) }
            }
            for r in 0..<(outputs * nb) {
                let blk = e * outputs * nb + r
                guard let s = MXFP4Codec.quantizeBlock(rowsT + r * MXFP4.blockSize, rule: rule, into: bp + blk * MXFP4.bytesPerBlock) else {
                    failed = true
                    return
                }
                sp[blk] = s
            }
        }
        if failed { throw QuantizeError.nonFiniteWeight(tensor: name) }
        return (blocks, scales)
    }

    @inline(__always)
    private static func element(_ t: Tensor, _ i: Int) -> Float {
        switch t.dtype {
        case .bf16: floatFromBF16(t.raw.load(fromByteOffset: 2 * i, as: UInt16.self))
        case .f16: floatFromF16(t.raw.load(fromByteOffset: 2 * i, as: UInt16.self))
        default: t.raw.load(fromByteOffset: 4 * i, as: Float.self)
        }
    }

    // MARK: - Config and side files

    private static func readConfig(_ url: URL) throws -> (String, [String: Any]) {
        guard let data = try? Data(contentsOf: url), let text = String(data: data, encoding: .utf8) else {
            throw QuantizeError.invalidConfig(path: url.path, reason: "cannot read config.json (is \(url.deletingLastPathComponent().path) a model folder?)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw QuantizeError.invalidConfig(path: url.path, reason: "not a JSON object")
        }
        return (text, object)
    }

    /// The source config with `quantization_config` added. The other keys keep their bytes: the
    /// new key is spliced in before the closing brace (a null `quantization_config` is re-encoded).
    private static func writeConfig(_ text: String, _ config: [String: Any], modulesToNotConvert: [String], to url: URL) throws {
        let q: [String: Any] = ["quant_method": "mxfp4", "modules_to_not_convert": modulesToNotConvert]
        var output: String
        do {
            if config["quantization_config"] == nil, let close = text.lastIndex(of: "}") {
                let body = text[..<close].trimmingCharacters(in: .whitespacesAndNewlines)
                let qText = String(decoding: try JSONSerialization.data(withJSONObject: q, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
                output = body + (body == "{" ? "" : ",") + "\n  \"quantization_config\": " + qText + "\n}\n"
            } else {
                var c = config
                c["quantization_config"] = q
                output = String(decoding: try JSONSerialization.data(withJSONObject: c, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
            }
            try output.write(to: url, atomically: true, encoding: .utf8)
        } catch {
            throw QuantizeError.writeFailed(path: url.path, reason: "\(error)")
        }
    }

    /// Copies the folder's top-level regular files other than config.json and weights.
    private static func copySideFiles(from model: URL, to out: URL) throws -> [String] {
        let fm = FileManager.default
        var copied: [String] = []
        for name in ((try? fm.contentsOfDirectory(atPath: model.path)) ?? []).sorted() {
            let src = model.appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard !name.hasPrefix("."), name != "config.json", !name.hasSuffix(".index.json"),
                  !weightExtensions.contains(src.pathExtension.lowercased()),
                  fm.fileExists(atPath: src.path, isDirectory: &isDir), !isDir.boolValue else { continue }
            let dst = out.appendingPathComponent(name)
            do {
                if fm.fileExists(atPath: dst.path) { try fm.removeItem(at: dst) }
                try fm.copyItem(at: src, to: dst)
            } catch {
                throw QuantizeError.writeFailed(path: dst.path, reason: "\(error)")
            }
            copied.append(name)
        }
        return copied
    }

    /// Tensor names in natural order: numeric path components compare as numbers (layer 2 < 10).
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        let (x, y) = (a.split(separator: "."), b.split(separator: "."))
        for (p, q) in zip(x, y) where p != q {
            if let i = Int(p), let j = Int(q) { return i < j }
            return p < q
        }
        return x.count < y.count
    }
}
