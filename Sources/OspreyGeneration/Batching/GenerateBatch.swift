// `generateBatch`, transformers' `generate_batch`: many prompts through the continuous-batching
// engine at once, each with the same generation settings, returning every request's ids when all
// are done. The KV pool is sized from the device when the batch config does not say, without
// taking more than the prompts can use.
import OspreyModels

/// One request's result.
public struct BatchOutput: Sendable, Equatable {
    public let promptIds: [Int32]
    public var generatedTokens: [Int32] = []
    /// Why it ended (`.eos`, `.length`).
    public var finishReason: FinishReason?
    public var timing: RequestTiming?
}

extension LanguageModel {
    /// Generates for every prompt in `inputs` with continuous batching; request i has id i.
    public func generateBatch(inputs: [[Int32]], config: GenerationConfig, batch: BatchConfig = BatchConfig()) throws -> [RequestID: BatchOutput] {
        var batch = batch
        if batch.numBlocks == nil {
            // No more blocks than these prompts can hold at once (a small pool is quick to allocate).
            let (layout, slots) = try KVBlockLayout.grouping(layerWindows: attentionWindows, blockSize: batch.blockSize)
            let need = inputs.reduce(0) { $0 + layout.peakBlocks(length: $1.count + config.maxNewTokens) }
            batch.numBlocks = max(1, min(need, try BatchEngine.blocksFitting(model: self, layout: layout, slots: slots, config: batch)))
        }
        let engine = try BatchEngine(model: self, config: batch)
        var outputs: [RequestID: BatchOutput] = [:]
        for (i, prompt) in inputs.enumerated() {
            let id = try engine.add(prompt: prompt, generation: config, id: RequestID(i))
            outputs[id] = BatchOutput(promptIds: prompt)
        }
        while engine.hasWork {
            for u in try engine.step() {
                if let t = u.token { outputs[u.id]?.generatedTokens.append(t) }
                if let f = u.finish { outputs[u.id]?.finishReason = f; outputs[u.id]?.timing = engine.timings[u.id] }
            }
        }
        return outputs
    }
}

extension LoadedModel {
    /// `generateBatch` with this model's generation defaults unless `config` is given.
    public func generateBatch(inputs: [[Int32]], config: GenerationConfig? = nil, batch: BatchConfig = BatchConfig()) throws -> [RequestID: BatchOutput] {
        try model.generateBatch(inputs: inputs, config: config ?? generationConfig, batch: batch)
    }
}
