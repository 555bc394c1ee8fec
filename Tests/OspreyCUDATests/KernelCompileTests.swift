// Every bundled kernel compiles with NVRTC for Hopper (sm_90a) and Ampere (sm_80). NVRTC needs no
// GPU, so this runs in CI on the CPU machine (pip's nvidia-cuda-nvrtc wheel); a kernel that does
// not compile fails here. Without NVRTC this test fails with the search list, it never skips.
import Testing
@testable import OspreyCUDA

@Suite struct KernelCompileTests {
    @Test(arguments: ["sm_90a", "sm_80"])
    func everyKernelCompiles(architecture: String) throws {
        let nvrtc = try NVRTC.shared()
        let headers = try BundledKernels.headers()
        let sources = try BundledKernels.all()
        #expect(sources.count >= 5)
        for source in sources {
            let cubin = try nvrtc.compileToCubin(source: source.text, name: source.name, headers: headers, architecture: architecture)
            #expect(cubin.count > 1000, "\(source.name)")
            #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(source.name) is not an ELF cubin")
        }
    }

    @Test func brokenSourcesReportTheLog() throws {
        let nvrtc = try NVRTC.shared()
        #expect {
            _ = try nvrtc.compileToCubin(source: "extern \"C\" __global__ void f() { undefined_thing(); }", name: "broken.cu", architecture: "sm_90a")
        } throws: { error in
            guard case CUDAError.compilation(let name, let log) = error else { return false }
            return name == "broken.cu" && log.contains("undefined_thing")
        }
    }

    @Test func everyLayerHasASource() throws {
        let registry = try KernelRegistry.builtIn()
        for layer in ["Embedding", "RMSNorm", "Linear", "RoPE", "Attention", "MoE", "Add"] {
            #expect(try !registry.source(for: layer).text.isEmpty)
        }
    }

    @Test func cacheKeysDependOnEveryInput() {
        #expect(fnv1a64("a") != fnv1a64("b"))
        #expect(fnv1a64("kernel\u{0}sm_90a") != fnv1a64("kernel\u{0}sm_80"))
        #expect(fnv1a64("") == 0xcbf2_9ce4_8422_2325)
    }
}
