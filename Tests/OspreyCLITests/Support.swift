// Library-side greedy decoding, to compare with the CLI's output.
import OspreyCPU
import OspreyGeneration
import OspreyModels

typealias OspreyCPUBackend = CPUBackend

func greedyIds(_ model: any LanguageModel, prompt: [Int32], count: Int) throws -> [Int] {
    try generate(model: model, prompt: prompt, config: GenerationConfig(maxNewTokens: count)).map(Int.init)
}
