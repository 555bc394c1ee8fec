// Random-weight gpt-oss checkpoints of any shape, in the Hugging Face layout (bf16 non-expert
// weights; experts either bf16 `gate_up_proj` [E, H, 2I] / `down_proj` [E, I, H] or MXFP4
// `*_blocks` / `*_scales` with a quantization_config). Tests use them to check invariants on
// shapes no fixture has; benchmarks use them at real sizes. Deterministic for a given seed.
import Foundation
import OspreyCore
import OspreyIO

/// The shape of a random gpt-oss checkpoint.
public struct GptOssShape: Sendable {
    public var vocab = 256, hidden = 64, intermediate = 64, layers = 2
    public var heads = 4, kvHeads = 2, headDim = 16
    public var experts = 4, topK = 2, window = 8
    public var layerTypes: [String]? = nil
    public var mxfp4 = false
    /// Also write a byte-level tokenizer.json with harmony's special tokens (RandomTokenizer.swift).
    public var tokenizer = false
    public init() {}
}

/// Writes random gpt-oss checkpoints.
public enum RandomGptOss {
    /// Writes config.json, generation_config.json and model.safetensors for `shape` into `directory`
    /// (and tokenizer.json when `shape.tokenizer` is set).
    public static func write(_ shape: GptOssShape, to directory: URL, seed: UInt64 = 0) throws {
        let s = shape
        guard !s.mxfp4 || (s.hidden % 32 == 0 && s.intermediate % 32 == 0) else {
            throw OspreyError.invalidArgument("MXFP4 experts need hidden and intermediate sizes that are multiples of 32")
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var rng = seed &+ 0x5DEE_CE66
        func random(_ dims: Shape, _ scale: Float, dtype: DType = .bf16) -> Tensor {
            let t = Tensor(zeros: dims, dtype: dtype)
            for i in 0..<dims.count {
                rng = rng &* 6364136223846793005 &+ 1442695040888963407
                let v = (Float(rng >> 40) / Float(1 << 24) * 2 - 1) * scale
                if dtype == .bf16 { t.mutableRaw.storeBytes(of: bf16Bits(v), toByteOffset: 2 * i, as: UInt16.self) }
                else { t.mutableRaw.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self) }
            }
            return t
        }
        let (V, H, I, E, D) = (s.vocab, s.hidden, s.intermediate, s.experts, s.headDim)
        let types = s.layerTypes ?? (0..<s.layers).map { $0 % 2 == 0 ? "sliding_attention" : "full_attention" }
        var tensors: [(name: String, tensor: Tensor)] = [
            ("model.embed_tokens.weight", random([V, H], 1)),
            ("model.norm.weight", random([H], 1)),
            ("lm_head.weight", random([V, H], 0.5)),
        ]
        let w = 1 / Float(H).squareRoot()
        for l in 0..<s.layers {
            let p = "model.layers.\(l)"
            tensors += [
                ("\(p).input_layernorm.weight", random([H], 1)),
                ("\(p).post_attention_layernorm.weight", random([H], 1)),
                ("\(p).self_attn.q_proj.weight", random([s.heads * D, H], 2 * w)), ("\(p).self_attn.q_proj.bias", random([s.heads * D], 0.1)),
                ("\(p).self_attn.k_proj.weight", random([s.kvHeads * D, H], 2 * w)), ("\(p).self_attn.k_proj.bias", random([s.kvHeads * D], 0.1)),
                ("\(p).self_attn.v_proj.weight", random([s.kvHeads * D, H], w)), ("\(p).self_attn.v_proj.bias", random([s.kvHeads * D], 0.1)),
                ("\(p).self_attn.o_proj.weight", random([H, s.heads * D], w)), ("\(p).self_attn.o_proj.bias", random([H], 0.1)),
                ("\(p).self_attn.sinks", random([s.heads], 1)),
                ("\(p).mlp.router.weight", random([E, H], w)), ("\(p).mlp.router.bias", random([E], 0.1)),
                ("\(p).mlp.experts.gate_up_proj_bias", random([E, 2 * I], 0.1)),
                ("\(p).mlp.experts.down_proj_bias", random([E, H], 0.1)),
            ]
            if s.mxfp4 {
                // Random nibbles (RMS ~3.2) with scales that keep each row's output near unit size:
                // 2^-round(log2(3.2 * sqrt(fan-in))), jittered by one step. Row-major [E, out, in/32].
                func mx(_ rows: Int, _ cols: Int, gain: Float) -> (Tensor, Tensor) {
                    let blocks = Tensor(zeros: [E, rows, cols / 32, 16], dtype: .u8), scales = Tensor(zeros: [E, rows, cols / 32], dtype: .u8)
                    let b = blocks.mutableRaw.assumingMemoryBound(to: UInt64.self)
                    for i in 0..<(blocks.count / 8) { rng = rng &* 6364136223846793005 &+ 1442695040888963407; b[i] = rng ^ (rng >> 29) }
                    let base = 127 - Int((log2(3.2 * Float(cols).squareRoot() / gain)).rounded())
                    let sp = scales.mutableRaw.assumingMemoryBound(to: UInt8.self)
                    for i in 0..<scales.count { rng = rng &* 6364136223846793005 &+ 1442695040888963407; sp[i] = UInt8(base - Int(rng >> 63)) }
                    return (blocks, scales)
                }
                let (gub, gus) = mx(2 * I, H, gain: 2), (db, ds) = mx(H, I, gain: 2)
                tensors += [
                    ("\(p).mlp.experts.gate_up_proj_blocks", gub), ("\(p).mlp.experts.gate_up_proj_scales", gus),
                    ("\(p).mlp.experts.down_proj_blocks", db), ("\(p).mlp.experts.down_proj_scales", ds),
                ]
            } else {
                tensors += [
                    ("\(p).mlp.experts.gate_up_proj", random([E, H, 2 * I], 2 * w)),
                    ("\(p).mlp.experts.down_proj", random([E, I, H], 2 / Float(I).squareRoot())),
                ]
            }
        }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
        var config: [String: Any] = [
            "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "vocab_size": V, "hidden_size": H,
            "intermediate_size": I, "num_hidden_layers": s.layers, "num_attention_heads": s.heads,
            "num_key_value_heads": s.kvHeads, "head_dim": D, "num_local_experts": E, "num_experts_per_tok": s.topK,
            "experts_per_token": s.topK, "rms_norm_eps": 1e-5, "sliding_window": s.window, "layer_types": types,
            "max_position_embeddings": 131072, "rope_theta": 150000, "swiglu_limit": 7.0, "attention_bias": true,
            "tie_word_embeddings": false, "eos_token_id": V - 1, "pad_token_id": V - 2, "initial_context_length": 4096,
            "rope_scaling": ["rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                             "original_max_position_embeddings": 4096, "truncate": false],
        ]
        if s.mxfp4 {
            config["quantization_config"] = ["quant_method": "mxfp4", "modules_to_not_convert": [
                "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]]
        }
        // Foundation writes the Double 7.0 as `7`; the published config (and newer transformers, which
        // type-checks it) has the float `7.0`.
        var json = String(decoding: try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self)
        json = json.replacingOccurrences(of: #"("swiglu_limit"\s*:\s*)7(\s*[,}\n])"#, with: "$17.0$2", options: .regularExpression)
        try Data(json.utf8).write(to: directory.appendingPathComponent("config.json"))
        let gen = try JSONSerialization.data(withJSONObject: ["eos_token_id": [V - 1], "pad_token_id": V - 2], options: [.sortedKeys])
        try gen.write(to: directory.appendingPathComponent("generation_config.json"))
        if s.tokenizer { try writeTokenizer(vocabularySize: V, to: directory) }
    }
}
