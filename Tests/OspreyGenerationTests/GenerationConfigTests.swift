// GenerationConfig: read from generation_config.json over transformers' defaults, every field
// overridable; min_new_tokens keeps end-of-sequence ids out until reached (transformers'
// MinNewTokensLengthLogitsProcessor); extra logits processors compose with the built-in ones; the
// static cache generates the same tokens as the dynamic one; bad settings are rejected by name.
import Foundation
import Testing
import OspreyCore
import OspreyCPU
import OspreyModels
@testable import OspreyGeneration

/// Bans ids outright (a user-defined processor).
struct Ban: LogitsProcessor {
    let ids: [Int32]
    func process(_ scores: inout [Float], history: [Int32]) { for id in ids { scores[Int(id)] = -.infinity } }
}

@Suite struct GenerationConfigTests {
    static func defaults(_ json: String) throws -> GenerationDefaults {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(GenerationDefaults.self, from: Data(json.utf8))
    }

    @Test func readsGenerationConfigOverTransformersDefaults() throws {
        let base = GenerationConfig()
        #expect(base.maxNewTokens == 256 && base.minNewTokens == 0 && !base.doSample && base.topK == 50)
        #expect(base.sampling == SamplingParameters())  // greedy
        var c = GenerationConfig(defaults: try Self.defaults("""
            {"do_sample": true, "eos_token_id": [200002, 199999], "pad_token_id": 199999, "temperature": 0.7, "top_k": 20,
             "top_p": 0.9, "min_p": 0.05, "repetition_penalty": 1.1, "max_new_tokens": 99, "min_new_tokens": 3, "stop_strings": "END"}
            """))
        #expect(c.eosTokenIds == [200002, 199999] && c.padTokenId == 199999)
        #expect(c.maxNewTokens == 99 && c.minNewTokens == 3 && c.stopStrings == ["END"])
        #expect(c.sampling == SamplingParameters(temperature: 0.7, topK: 20, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1))
        // Every field is a plain override.
        c.doSample = false
        #expect(c.sampling == SamplingParameters(repetitionPenalty: 1.1))
        c.stopStrings = ["a", "b"]
        c.seed = 9
        #expect(c.sampling.seed == 9 && c.stopStrings == ["a", "b"])
        // A single eos id and a list of stop strings read too; gpt-oss's own file gives its eos list.
        let one = GenerationConfig(defaults: try Self.defaults(#"{"eos_token_id": 7, "stop_strings": ["x", "yz"]}"#))
        #expect(one.eosTokenIds == [7] && one.stopStrings == ["x", "yz"])
        if SharedData.available {
            let data = try Data(contentsOf: SharedData.data.appendingPathComponent("gpt-oss-20b.generation_config.json"))
            let gptOss = GenerationConfig(defaults: try Self.defaults(String(decoding: data, as: UTF8.self)))
            #expect(gptOss.eosTokenIds == [200002, 199999] && gptOss.doSample && gptOss.sampling.topK == 50)
        }
    }

    @Test func minNewTokensKeepsEndOfSequenceOut() throws {
        var scores: [Float] = [1, 5, 2, 0]
        MinNewTokens(minNewTokens: 2, promptLength: 3, eosTokenIds: [1, 3]).process(&scores, history: [9, 9, 9, 4])
        #expect(scores == [1, -.infinity, 2, -.infinity])
        scores = [1, 5, 2, 0]
        MinNewTokens(minNewTokens: 2, promptLength: 3, eosTokenIds: [1, 3]).process(&scores, history: [9, 9, 9, 4, 4])
        #expect(scores == [1, 5, 2, 0])

        try withRandomFolder(tokenizer: false) { dir in
            let model = try ModelRegistry.load(ModelFolder(directory: dir), backend: CPUBackend())
            let free = try generate(model: model, prompt: [5, 6], config: GenerationConfig(maxNewTokens: 12))
            var config = GenerationConfig(maxNewTokens: 12, eosTokenIds: [free[0]])
            let early = try generate(model: model, prompt: [5, 6], config: config)
            #expect(early == [free[0]])
            config.minNewTokens = 5
            let held = try generate(model: model, prompt: [5, 6], config: config)
            #expect(held.count >= 5)
            #expect(!held.prefix(5).contains(free[0]), "\(held)")
        }
    }

    @Test func extraProcessorsComposeAndStaticCacheMatches() throws {
        try withRandomFolder(tokenizer: false) { dir in
            let model = try ModelRegistry.load(ModelFolder(directory: dir), backend: CPUBackend())
            var config = GenerationConfig(maxNewTokens: 16, temperature: 0.8, seed: 3)
            config.repetitionPenalty = 1.2
            let dynamic = try generate(model: model, prompt: [1, 2, 3], config: config)
            config.cache = .static
            #expect(try generate(model: model, prompt: [1, 2, 3], config: config) == dynamic)
            config.logitsProcessors = [Ban(ids: Array(Set(dynamic)))]
            let banned = try generate(model: model, prompt: [1, 2, 3], config: config)
            #expect(Set(banned).isDisjoint(with: dynamic))
            let processors = Sampler(config, promptLength: 3).processors  // penalty, the ban, then the temperature warper
            #expect(processors.count == 3 && processors[0] is RepetitionPenalty && processors[1] is Ban && processors[2] is Temperature)
        }
    }

    @Test func badSettingsAreRejectedByName() {
        func message(_ edit: (inout GenerationConfig) -> Void) -> String {
            var c = GenerationConfig()
            edit(&c)
            do { try c.validate(); return "" } catch { return "\(error)" }
        }
        #expect(message { $0.maxNewTokens = -1 }.contains("max_new_tokens"))
        #expect(message { $0.minNewTokens = -2 }.contains("min_new_tokens"))
        #expect(message { $0.stopStrings = ["ok", ""] }.contains("stop strings"))
        #expect(message { $0.topP = 0 }.contains("top_p"))
        #expect(message { $0.temperature = .nan }.contains("temperature"))
        #expect(message { _ in }.isEmpty)
    }
}
