// `osprey kernels`: list the bundled kernel sources by layer and compile each with NVRTC (no GPU
// needed), so a broken toolkit or a missing resource shows up before a model is loaded.
import ArgumentParser
import Foundation
import OspreyCUDA

struct Kernels: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compile every bundled CUDA kernel with NVRTC and list them by layer.")

    @Option(help: "GPU architecture to compile for.")
    var arch = "sm_90a"

    func run() throws {
        try reportingErrors {
            let nvrtc = try NVRTC.shared()
            let registry = try KernelRegistry.builtIn()
            emit("NVRTC \(nvrtc.version.major).\(nvrtc.version.minor), compiling for \(arch)")
            for layer in registry.layers.keys.sorted() { emit("  \(layer): \(try registry.source(for: layer).name)") }
            for source in try BundledKernels.all() {
                let cubin = try nvrtc.compileToCubin(source: source.text, name: source.name, headers: registry.headers, architecture: arch)
                emit("\(source.name): \(cubin.count) bytes of CUBIN")
            }
        }
    }
}
