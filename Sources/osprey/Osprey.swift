// The `osprey` command-line tool: one subcommand per file; this file only lists them.
import ArgumentParser

@main
struct Osprey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "osprey",
        abstract: "Run open-weight LLMs (gpt-oss first) on the CPU and NVIDIA GPUs.",
        version: "0.1.0-dev",
        subcommands: [Generate.self, Chat.self, Inspect.self, RandomModel.self, GPUCheck.self, Kernels.self, Tokenize.self, Detokenize.self, RenderHarmony.self, ChatTemplateCommand.self, ChatPrompt.self, Quantize.self, Bench.self, BenchBatch.self, Serve.self, ProfileDecode.self])
}
