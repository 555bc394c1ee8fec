// `osprey profile-decode`: a prefill step's and a batched decode step's GPU time per kernel, on one thread (a
// BatchEngine stepped directly, no engine thread), so profilers that cannot follow the serving
// engine's threads (ncu aborted inside `bench-batch`, 2026-11-29) can look at the same kernels:
//   ncu -k regex:moe_mxfp4_tma --launch-skip 400 --launch-count 2 osprey profile-decode --model M
// It fills `--sequences` requests of `--prompt-length` random ids; while the prompts fill it times
// one full prefill step of `--max-batch-tokens` tokens and each launch of the next alone (when the
// prompts hold three such steps); then it steps until all of them decode, times 16 steps, and
// each launch of one more alone (the tables gpu-check prints).
import ArgumentParser
import Foundation
import OspreyCUDA
import OspreyModels

struct ProfileDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile-decode",
        abstract: "Time a prefill step and a batched decode step on the GPU, per kernel, on a single thread (for profilers).")

    @Option(help: "A model folder (e.g. a random gpt-oss-20b-shaped checkpoint).")
    var model: String
    @Option(help: "Sequences decoding together.")
    var sequences = 64
    @Option(name: .customLong("prompt-length"), help: "Prompt ids per sequence (random).")
    var promptLength = 200
    @Option(name: .customLong("kv-blocks"), help: "KV pool blocks (default: sized from the free GPU memory).")
    var kvBlocks: Int?
    @Option(name: .customLong("max-batch-tokens"), help: "Tokens per engine step at most (the prompts' prefill chunks).")
    var maxBatchTokens = 2048

    func validate() throws {
        guard sequences >= 1, sequences <= 256 else { throw ValidationError("--sequences must be in 1...256") }
        guard promptLength >= 1 else { throw ValidationError("--prompt-length must be ≥ 1") }
        if let kvBlocks, kvBlocks < 1 { throw ValidationError("--kv-blocks must be ≥ 1") }
        guard maxBatchTokens >= sequences else { throw ValidationError("--max-batch-tokens must be ≥ --sequences") }
    }

    func run() throws {
        try reportingErrors {
            let gpu = try CUDABackend(ordinal: 0)
            let m = try ModelRegistry.load(ModelFolder(directory: URL(fileURLWithPath: model)), backend: gpu)
            let lines = try BatchCheck.profileDecode(m, gpu: gpu, sequences: sequences, promptLength: promptLength, kvBlocks: kvBlocks,
                                                     maxBatchTokens: maxBatchTokens)
            emit(lines.joined(separator: "\n"))
        }
    }
}
