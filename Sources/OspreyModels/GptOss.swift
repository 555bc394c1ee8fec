// gpt-oss (openai/gpt-oss-20b and -120b), read top to bottom: Config → Attention → MoE → Block →
// Model. Reference: transformers `models/gpt_oss/modeling_gpt_oss.py` and openai/gpt-oss
// `gpt_oss/torch/model.py`; the facts reproduced are in REFERENCE.md §4.1–4.3.
// Each block: x += Attn(RMSNorm(x)); x += MoE(RMSNorm(x)). Attention has biases, GQA, one learned
// sink logit per query head, YaRN RoPE (half-split), and a sliding window on the layers
// `layer_types` marks "sliding_attention". The MoE router picks top-k experts on raw logits and
// softmaxes over those k; experts use interleaved gate/up and clamped SwiGLU. MXFP4 experts stay
// packed (decoded by the backend as it reads them); bf16 experts are kept with rows = outputs.
import Foundation
import OspreyCore

// MARK: - Config

/// config.json of a gpt-oss checkpoint (the published one and transformers 5's both decode).
public struct GptOssConfig: Decodable, Sendable {
    public var modelType: String
    public var architectures: [String]?
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var numLocalExperts: Int
    public var numExpertsPerTok: Int?
    public var expertsPerToken: Int?
    public var rmsNormEps: Float
    public var slidingWindow: Int?
    public var layerTypes: [String]?
    public var ropeTheta: Double?
    public var ropeScaling: RopeParameters?
    public var ropeParameters: RopeParameters?
    public var maxPositionEmbeddings: Int?
    public var initialContextLength: Int?
    public var swigluLimit: Float?
    public var attentionBias: Bool?
    public var attentionDropout: Double?
    public var hiddenAct: String?
    public var tieWordEmbeddings: Bool?
    public var quantizationConfig: QuantizationConfig?
    public var eosTokenId: TokenIDs?
    public var bosTokenId: Int?
    public var padTokenId: Int?
    public var routerAuxLossCoef: Double?
    public var outputRouterLogits: Bool?
    public var initializerRange: Double?
    public var useCache: Bool?
    public var transformersVersion: String?
    /// `dtype` (transformers 5) or `torch_dtype` (earlier): the dtype the checkpoint was saved in.
    public var dtype: String?
    public var torchDtype: String?

    // Defaults are transformers' GptOssConfig defaults for fields a config.json leaves out.
    public var resolvedHeadDim: Int { headDim ?? hiddenSize / max(numAttentionHeads, 1) }
    public var resolvedKVHeads: Int { numKeyValueHeads ?? numAttentionHeads }
    public var resolvedTopK: Int { numExpertsPerTok ?? expertsPerToken ?? 4 }
    public var resolvedMaxPositions: Int { maxPositionEmbeddings ?? 131_072 }
    public var resolvedWindow: Int { slidingWindow ?? 128 }
    /// `rope_parameters` (transformers 5) or `rope_scaling` (published); gpt-oss's YaRN when neither is given.
    public var resolvedRope: RopeParameters {
        ropeParameters ?? ropeScaling ?? RopeParameters(ropeType: "yarn", factor: 32, originalMaxPositionEmbeddings: 4096,
                                                        betaFast: 32, betaSlow: 1, truncate: false)
    }
    public var resolvedRopeTheta: Double { ropeParameters?.ropeTheta ?? ropeScaling?.ropeTheta ?? ropeTheta ?? 150_000 }
    /// Per layer: the sliding window, or nil for full attention (default: even layers slide).
    public var resolvedWindows: [Int?] {
        (0..<numHiddenLayers).map { i in
            let sliding = layerTypes.map { $0[i] == "sliding_attention" } ?? (i % 2 == 0)
            return sliding ? resolvedWindow : nil
        }
    }

    /// Rejects configs the forward pass cannot run, naming the field.
    public func validate() throws {
        func need(_ ok: Bool, _ field: String, _ why: String) throws {
            if !ok { throw ModelError.invalidConfig(field: field, why) }
        }
        for (v, f) in [(vocabSize, "vocab_size"), (hiddenSize, "hidden_size"), (intermediateSize, "intermediate_size"),
                       (numHiddenLayers, "num_hidden_layers"), (numAttentionHeads, "num_attention_heads"),
                       (resolvedKVHeads, "num_key_value_heads"), (numLocalExperts, "num_local_experts"),
                       (resolvedMaxPositions, "max_position_embeddings"),
                       (resolvedHeadDim, "head_dim")] {
            try need(v > 0, f, "must be positive, got \(v)")
        }
        try need(numAttentionHeads % resolvedKVHeads == 0, "num_key_value_heads", "\(resolvedKVHeads) does not divide num_attention_heads \(numAttentionHeads)")
        try need(resolvedHeadDim % 2 == 0, "head_dim", "must be even for RoPE, got \(resolvedHeadDim)")
        try need((1...numLocalExperts).contains(resolvedTopK), "num_experts_per_tok", "\(resolvedTopK) not in 1...\(numLocalExperts)")
        if let types = layerTypes {
            try need(types.count == numHiddenLayers, "layer_types", "\(types.count) entries for \(numHiddenLayers) layers")
            for t in types { try need(t == "sliding_attention" || t == "full_attention", "layer_types", "unknown layer type \"\(t)\"") }
        }
        if resolvedWindows.contains(where: { $0 != nil }) {
            try need(resolvedWindow > 0, "sliding_window", "sliding layers need a positive window, got \(resolvedWindow)")
        }
        if let q = quantizationConfig {
            try need(q.quantMethod == "mxfp4", "quantization_config.quant_method", "\"\(q.quantMethod)\" is not supported (mxfp4 is)")
        }
    }
}

/// `quantization_config` of an MXFP4 checkpoint.
public struct QuantizationConfig: Decodable, Sendable, Equatable {
    public var quantMethod: String
    public var modulesToNotConvert: [String]?
}

// MARK: - Attention

struct GptOssAttention: Sendable {
    let qProj, kProj, vProj, oProj: Linear
    let sinks: Tensor
    let window: Int?
    let heads, kvHeads, headDim: Int
    let rope: RotaryEmbedding
    let invFreq: Tensor  // rope.invFreq on the backend's device

    init(_ w: WeightLoader, _ p: String, _ c: GptOssConfig, window: Int?, rope: RotaryEmbedding, invFreq: Tensor) throws {
        (heads, kvHeads, headDim) = (c.numAttentionHeads, c.resolvedKVHeads, c.resolvedHeadDim)
        let H = c.hiddenSize, bias = c.attentionBias ?? true
        qProj = try Linear(w, "\(p).q_proj", out: heads * headDim, in: H, bias: bias)
        kProj = try Linear(w, "\(p).k_proj", out: kvHeads * headDim, in: H, bias: bias)
        vProj = try Linear(w, "\(p).v_proj", out: kvHeads * headDim, in: H, bias: bias)
        oProj = try Linear(w, "\(p).o_proj", out: H, in: heads * headDim, bias: bias)
        sinks = try w.tensor("\(p).sinks", [heads])
        (self.window, self.rope, self.invFreq) = (window, rope, invFreq)
    }

    func callAsFunction(_ x: Tensor, layer: Int, cache: any AttentionCache, on b: any Backend) throws -> Tensor {
        let T = x.shape[0]
        // q, k and v read the same x: one call (one launch for decode on a GPU).
        let qkv = try b.linears(x, [(qProj.weight, qProj.bias), (kProj.weight, kProj.bias), (vProj.weight, vProj.bias)])
        // q [T, Hq, D], k/v [T, Hkv, D]
        let (q, k, v) = (qkv[0].reshaped([T, heads, headDim]), qkv[1].reshaped([T, kvHeads, headDim]), qkv[2].reshaped([T, kvHeads, headDim]))
        let o = try cache.ropeAttention(layer: layer, q: q, k: k, v: v, invFreq: invFreq, scaling: rope.attentionScaling, sinks: sinks,
                                        window: window, scale: 1 / Float(headDim).squareRoot(), on: b)
        return try oProj(o, on: b)
    }
}

// MARK: - MoE

struct GptOssMoE: Sendable {
    let router: Linear
    let bank: ExpertBank
    let topK: Int

    init(_ w: WeightLoader, _ p: String, _ c: GptOssConfig) throws {
        let (E, H, I) = (c.numLocalExperts, c.hiddenSize, c.intermediateSize)
        router = try Linear(w, "\(p).router", out: E, in: H, bias: true)
        topK = c.resolvedTopK
        let e = "\(p).experts"
        let weights: ExpertWeights
        var tiled = false
        if w.contains("\(e).gate_up_proj_blocks") {
            // MXFP4: rows are outputs, 32 inputs per 16-byte block; kept packed, in the layout the
            // backend's kernels read fastest (the CUDA backend tiles them; both halves alike).
            let gateUp = try w.backend.uploadExpertBlocks(w.host("\(e).gate_up_proj_blocks", [E, 2 * I, H / 32, 16]))
            let down = try w.backend.uploadExpertBlocks(w.host("\(e).down_proj_blocks", [E, H, I / 32, 16]))
            guard gateUp.tiled == down.tiled else { throw ModelError.invalidConfig(field: "\(e)", "expert halves loaded in different layouts") }
            tiled = gateUp.tiled
            weights = .mxfp4(
                gateUpBlocks: gateUp.blocks,
                gateUpScales: try w.tensor("\(e).gate_up_proj_scales", [E, 2 * I, H / 32]),
                downBlocks: down.blocks,
                downScales: try w.tensor("\(e).down_proj_scales", [E, H, I / 32]))
        } else {
            // transformers stores dense experts for x @ W: gate_up [E, H, 2I], down [E, I, H];
            // sanitize to rows = outputs once at load.
            weights = .dense(
                gateUp: try w.backend.upload(transposeLastTwo(w.host("\(e).gate_up_proj", [E, H, 2 * I]))),
                down: try w.backend.upload(transposeLastTwo(w.host("\(e).down_proj", [E, I, H]))))
        }
        bank = ExpertBank(weights: weights,
                          gateUpBias: try w.tensor("\(e).gate_up_proj_bias", [E, 2 * I]),
                          downBias: try w.tensor("\(e).down_proj_bias", [E, H]),
                          swigluLimit: c.swigluLimit ?? 7, tiledBlocks: tiled)
    }
}

// MARK: - Block

struct GptOssBlock: Sendable {
    let inputNorm, postAttentionNorm: Tensor
    let attention: GptOssAttention
    let mlp: GptOssMoE
    let eps: Float

    init(_ w: WeightLoader, _ i: Int, _ c: GptOssConfig, rope: RotaryEmbedding, invFreq: Tensor) throws {
        let p = "model.layers.\(i)"
        inputNorm = try w.tensor("\(p).input_layernorm.weight", [c.hiddenSize])
        postAttentionNorm = try w.tensor("\(p).post_attention_layernorm.weight", [c.hiddenSize])
        attention = try GptOssAttention(w, "\(p).self_attn", c, window: c.resolvedWindows[i], rope: rope, invFreq: invFreq)
        mlp = try GptOssMoE(w, "\(p).mlp", c)
        eps = c.rmsNormEps
    }

    /// x [T, H] with `normed` = RMSNorm(x) by this block's input norm; returns the block's output
    /// and that output normalized by `nextNorm` (the next block's input norm, or the final norm):
    /// each residual add is fused with the norm that follows it, the first also with the routing and
    /// the second with the experts' combine.
    func callAsFunction(_ x: Tensor, normed: Tensor, nextNorm: Tensor, layer: Int, cache: any AttentionCache,
                        on b: any Backend) throws -> (out: Tensor, normed: Tensor) {
        let routed = try b.addRMSNormRoute(x, attention(normed, layer: layer, cache: cache, on: b), weight: postAttentionNorm, eps: eps,
                                           router: mlp.router.weight, routerBias: mlp.router.bias, k: mlp.topK)
        let (out, outNormed) = try b.expertsAddRMSNorm(routed.normed, bank: mlp.bank, ids: routed.ids, weights: routed.weights,
                                                       residual: routed.sum, weight: nextNorm, eps: eps)
        return (out, outNormed)
    }
}

// MARK: - Model

/// gpt-oss for causal LM: embeddings, blocks, final norm, untied lm_head.
public struct GptOssModel: LanguageModel {
    public let config: GptOssConfig
    public let backend: any Backend
    let embedTokens, norm: Tensor
    let layers: [GptOssBlock]
    let lmHead: Linear

    public var vocabularySize: Int { config.vocabSize }

    public init(folder: ModelFolder, backend: any Backend) throws {
        let c = try folder.config(as: GptOssConfig.self)
        try c.validate()
        let w = WeightLoader(source: folder.weights, backend: backend)
        // MXFP4 experts may be stored tiled, which pads rows to 128 and blocks to pairs (MXFP4Tiling).
        let halves = [(2 * c.intermediateSize, c.hiddenSize / 32), (c.hiddenSize, c.intermediateSize / 32)]
        let tilePadding = halves.reduce(0) { sum, half in
            let t = MXFP4Tiling(experts: c.numLocalExperts, rows: half.0, blocksPerRow: half.1)
            return sum + t.byteCount - c.numLocalExperts * half.0 * half.1 * MXFP4.bytesPerBlock
        }
        try backend.reserveWeights(bytes: folder.weights.totalBytes + (c.quantizationConfig == nil ? 0 : c.numHiddenLayers * tilePadding))
        let rope = try RotaryEmbedding(headDim: c.resolvedHeadDim, theta: c.resolvedRopeTheta,
                                       parameters: c.resolvedRope, maxPositionEmbeddings: c.resolvedMaxPositions)
        config = c
        self.backend = backend
        embedTokens = try w.tensor("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize])
        let invFreq = try backend.upload(Tensor(rope.invFreq, shape: [rope.invFreq.count]))
        layers = try (0..<c.numHiddenLayers).map { try GptOssBlock(w, $0, c, rope: rope, invFreq: invFreq) }
        norm = try w.tensor("model.norm.weight", [c.hiddenSize])
        lmHead = (c.tieWordEmbeddings ?? false) && !w.contains("lm_head.weight")
            ? Linear(weight: embedTokens, bias: nil)
            : try Linear(w, "lm_head", out: c.vocabSize, in: c.hiddenSize, bias: false)
    }

    public func makeCache() -> any KVCache { DynamicCache(windows: config.resolvedWindows, backend: backend) }

    public func makeCache(maxLength: Int) throws -> any KVCache {
        try StaticCache(windows: config.resolvedWindows, maxLength: maxLength,
                        rowShape: [config.resolvedKVHeads, config.resolvedHeadDim], backend: backend)
    }

    public var attentionWindows: [Int?] { config.resolvedWindows }
    public var kvRowShape: [Int] { [config.resolvedKVHeads, config.resolvedHeadDim] }

    public func forward(_ ids: [Int32], cache: any KVCache, allPositions: Bool) throws -> Tensor {
        guard !ids.isEmpty else { throw OspreyError.invalidArgument("forward of an empty token list") }
        try backend.beginStep()
        return try run(backend.embedding(embedTokens, ids: ids), cache: cache, rows: allPositions ? .all : .last)
    }

    public func forward(tokens: Tensor, cache: any KVCache, allPositions: Bool) throws -> Tensor {
        try checkTokens(tokens)
        try backend.beginStep()
        return try run(backend.embedding(embedTokens, tokens: tokens), cache: cache, rows: allPositions ? .all : .last)
    }

    public func forward(tokens: Tensor, cache: any AttentionCache, logitRows: Tensor) throws -> Tensor {
        try checkTokens(tokens)
        guard logitRows.count > 0, logitRows.dtype == .i32 else { throw OspreyError.invalidArgument("logits of \(logitRows.count) \(logitRows.dtype) rows") }
        try backend.beginStep()
        return try run(backend.embedding(embedTokens, tokens: tokens), cache: cache, rows: .picked(logitRows))
    }

    private func checkTokens(_ tokens: Tensor) throws {
        guard tokens.count > 0, tokens.dtype == .i32 else { throw OspreyError.invalidArgument("forward of \(tokens.count) \(tokens.dtype) token ids") }
    }

    private enum LogitRows { case all, last, picked(Tensor) }

    /// The blocks, final norm and lm_head over embedded tokens h [T, H].
    private func run(_ embedded: Tensor, cache: any AttentionCache, rows: LogitRows) throws -> Tensor {
        let b = backend, T = embedded.shape[0]
        var h = embedded
        var normed = try b.rmsNorm(h, weight: layers.first?.inputNorm ?? norm, eps: config.rmsNormEps)
        for (i, layer) in layers.enumerated() {
            let next = i + 1 < layers.count ? layers[i + 1].inputNorm : norm
            let r = try layer(h, normed: normed, nextNorm: next, layer: i, cache: cache, on: b)
            let kept = try b.keepOnly([r.out, r.normed])
            (h, normed) = (kept[0], kept[1])
        }
        cache.advance(by: T)
        switch rows {
        case .all: break
        case .last: normed = normed.rows((T - 1)..<T)
        case .picked(let r): normed = try b.gatherRows(normed, rows: r)
        }
        return try lmHead(normed, on: b)  // [R, V]
    }
}
