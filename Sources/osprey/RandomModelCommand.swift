// `osprey random-model`: write a random-weight gpt-oss checkpoint of a chosen shape (for
// benchmarks and for trying the engine without downloading weights; its output is noise).
import ArgumentParser
import Foundation
import OspreyModels

struct RandomModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "random-model",
        abstract: "Write a random-weight gpt-oss checkpoint (for benchmarks and tests; it generates noise).")

    @Option(help: "Output folder.") var out: String
    @Option(help: "Vocabulary size.") var vocab = 256
    @Option(help: "Hidden size.") var hidden = 64
    @Option(help: "Expert intermediate size.") var intermediate = 64
    @Option(help: "Number of layers (alternating sliding/full).") var layers = 2
    @Option(help: "Query heads.") var heads = 4
    @Option(name: .customLong("kv-heads"), help: "Key/value heads.") var kvHeads = 2
    @Option(name: .customLong("head-dim"), help: "Head dimension.") var headDim = 16
    @Option(help: "Experts per layer.") var experts = 4
    @Option(name: .customLong("top-k"), help: "Experts per token.") var topK = 2
    @Option(help: "Sliding window.") var window = 8
    @Flag(help: "Store experts in MXFP4 (hidden and intermediate must be multiples of 32).") var mxfp4 = false
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Flag(help: "Also write a byte-level tokenizer.json with harmony's special tokens (needs --vocab ≥ 265), for generate --prompt and chat.")
    var tokenizer = false

    func run() throws {
        try reportingErrors {
            var s = GptOssShape()
            (s.vocab, s.hidden, s.intermediate, s.layers, s.heads, s.kvHeads, s.headDim) = (vocab, hidden, intermediate, layers, heads, kvHeads, headDim)
            (s.experts, s.topK, s.window, s.mxfp4, s.tokenizer) = (experts, topK, window, mxfp4, tokenizer)
            let sizes = [vocab, hidden, intermediate, layers, heads, kvHeads, headDim, experts, topK, window]
            guard sizes.allSatisfy({ $0 > 0 }), heads % kvHeads == 0, headDim % 2 == 0, topK <= experts else {
                throw CLIError("sizes must be positive, kv-heads must divide heads, head-dim must be even, top-k ≤ experts")
            }
            try RandomGptOss.write(s, to: URL(fileURLWithPath: out), seed: seed)
            emit("wrote \(out)")
        }
    }
}
