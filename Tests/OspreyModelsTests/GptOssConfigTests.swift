// The published gpt-oss-20b config.json (../shared/data) decodes with every field, and the
// defaults transformers applies to missing fields are Osprey's too.
import Foundation
import Testing
@testable import OspreyModels

@Suite struct GptOssConfigTests {
    static let data = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../shared/data").standardizedFileURL

    func decode(_ json: Data) throws -> GptOssConfig {
        try ModelFolder.decode(GptOssConfig.self, from: json, file: "config.json")
    }

    @Test(arguments: ["gpt-oss-20b.hf-config.json", "gpt-oss-20b.config.json"])
    func publishedConfigDecodesCompletely(file: String) throws {
        let c = try decode(Data(contentsOf: Self.data.appendingPathComponent(file)))
        try c.validate()
        #expect(c.modelType == "gpt_oss" && c.architectures == ["GptOssForCausalLM"])
        #expect((c.vocabSize, c.hiddenSize, c.intermediateSize, c.numHiddenLayers) == (201_088, 2880, 2880, 24))
        #expect((c.numAttentionHeads, c.resolvedKVHeads, c.resolvedHeadDim) == (64, 8, 64))
        #expect((c.numLocalExperts, c.resolvedTopK, c.expertsPerToken) == (32, 4, 4))
        #expect(c.rmsNormEps == 1e-5 && c.swigluLimit == 7 && c.slidingWindow == 128 && c.initialContextLength == 4096)
        #expect(c.resolvedWindows.prefix(4).map { $0 } == [128, nil, 128, nil])
        #expect(c.layerTypes?.count == 24 && c.attentionBias == true && c.tieWordEmbeddings == false)
        #expect(c.eosTokenId?.ids == [200_002] && c.padTokenId == 199_999)
        #expect(c.resolvedRopeTheta == 150_000 && c.resolvedMaxPositions == 131_072)
        let r = c.resolvedRope
        #expect(r.resolvedType == "yarn" && r.factor == 32 && r.betaFast == 32 && r.betaSlow == 1)
        #expect(r.originalMaxPositionEmbeddings == 4096 && r.truncate == false)
        #expect(c.routerAuxLossCoef == 0.9 && c.outputRouterLogits == false && c.useCache == true)
        #expect(c.hiddenAct == "silu" && c.attentionDropout == 0 && c.initializerRange == 0.02)
        #expect(c.transformersVersion == "4.55.0.dev0")
        if file.hasPrefix("gpt-oss-20b.hf") {
            #expect(c.quantizationConfig?.quantMethod == "mxfp4")
            #expect(c.quantizationConfig?.modulesToNotConvert?.contains("model.layers.*.mlp.router") == true)
        }
        // YaRN for the real config: low 8.09 and high 17.40 bracket the ramp, scaling 0.1 ln 32 + 1.
        let rope = try RotaryEmbedding(headDim: 64, theta: c.resolvedRopeTheta, parameters: r, maxPositionEmbeddings: c.resolvedMaxPositions)
        #expect(abs(rope.attentionScaling - 1.3465736) < 1e-6)
        #expect(rope.invFreq[8] == 1 / Float(pow(150_000.0, 16.0 / 64)))             // below low: original
        #expect(abs(rope.invFreq[18] - 1 / (32 * Float(pow(150_000.0, 36.0 / 64)))) < 1e-12)  // above high: / 32
    }

    @Test func generationConfigDecodes() throws {
        let g = try ModelFolder.decode(GenerationDefaults.self,
                                       from: Data(contentsOf: Self.data.appendingPathComponent("gpt-oss-20b.generation_config.json")),
                                       file: "generation_config.json")
        #expect(g.bosTokenId == 199_998 && g.eosTokenId?.ids == [200_002, 199_999] && g.padTokenId == 199_999 && g.doSample == true)
    }

    @Test func missingFieldsTakeTransformersDefaults() throws {
        let json = #"{"model_type": "gpt_oss", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 3, "num_attention_heads": 2, "num_local_experts": 4, "rms_norm_eps": 1e-5}"#
        let c = try decode(Data(json.utf8))
        try c.validate()
        #expect(c.resolvedKVHeads == 2 && c.resolvedHeadDim == 4 && c.resolvedTopK == 4)
        #expect(c.resolvedWindows.map { $0 } == [128, nil, 128])
        #expect(c.resolvedRope.resolvedType == "yarn" && c.resolvedRope.factor == 32 && c.resolvedRopeTheta == 150_000)
    }
}
