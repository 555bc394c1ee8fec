// Every bundled kernel compiles with NVRTC for Hopper (sm_90a) and Ampere (sm_80). NVRTC needs no
// GPU, so this runs in CI on the CPU machine (pip's nvidia-cuda-nvrtc wheel); a kernel that does
// not compile fails here. Without NVRTC this test fails with the search list, it never skips.
import Foundation
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
        for layer in ["Embedding", "RMSNorm", "Linear", "RoPE", "Attention", "MoE", "MoEDecode", "MoEPrefill", "Sampling", "Add"] {
            #expect(try !registry.source(for: layer).text.isEmpty)
        }
    }

    /// Every `context.launch("Layer", "kernel", ...)` in the launchers names a kernel that the
    /// source registered for that layer defines (an interpolated name, e.g. "moe_mxfp4_q8_c\\(n)",
    /// must match at least one kernel of that prefix). Catches a kernel moved between files.
    @Test func everyLaunchNamesAKernelOfItsLayer() throws {
        let registry = try KernelRegistry.builtIn()
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/OspreyCUDA")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }
        let launch = try Regex(#"launch\("([A-Za-z]+)", ([^,]+),"#)
        var checked = 0
        for file in files {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            for match in text.matches(of: launch) {
                let layer = String(match.output[1].substring ?? "")
                var name = String(match.output[2].substring ?? "").trimmingCharacters(in: .whitespaces)
                let source = try registry.source(for: layer).text
                let kernels = Set(source.matches(of: try Regex(#"extern "C" __global__ void (?:__launch_bounds__\([0-9, ]+\) )?([A-Za-z0-9_]+)\("#))
                    .map { String($0.output[1].substring ?? "") })
                if name.hasPrefix("loads.map") || !name.hasPrefix("\"") {
                    // A computed name (a ternary or a map): every quoted literal in it must be a kernel of the layer.
                    let literals = name.matches(of: try Regex(#""([A-Za-z0-9_]+)""#)).map { String($0.output[1].substring ?? "") }
                    for l in literals { #expect(kernels.contains(l), "\(file): \(l) is not in \(layer)'s source") }
                    checked += 1
                    continue
                }
                name = String(name.dropFirst().dropLast())
                if let cut = name.range(of: "\\(") {
                    let prefix = String(name[..<cut.lowerBound])
                    #expect(kernels.contains { $0.hasPrefix(prefix) }, "\(file): no \(prefix)* kernel in \(layer)'s source")
                } else {
                    #expect(kernels.contains(name), "\(file): \(name) is not in \(layer)'s source")
                }
                checked += 1
            }
        }
        #expect(checked >= 20)
    }

    /// Built-in kernels are launched before the kernel ahead of them has finished (programmatic
    /// dependent launch), so each entry point must begin with `pdl_trigger(); pdl_wait();`. The
    /// kernels that prefetch weights first (the decode linears, staged, direct or resident; the fused router) begin with
    /// `pdl_trigger();` and must wait before their first read of an input. A kernel added without
    /// these would read its inputs before they are written.
    @Test func everyKernelWaitsForTheKernelAhead() throws {
        let entry = try Regex(#"extern "C" __global__ void (?:__launch_bounds__\([0-9, ]+\) )?([A-Za-z0-9_]+)\([^{]*\{\s*([^;]*;)\s*([^;]*;)?"#)
        var checked = 0
        for source in try BundledKernels.all() {
            for match in source.text.matches(of: entry) {
                let name = String(match.output[1].substring ?? "")
                let first = String(match.output[2].substring ?? ""), second = String(match.output[3].substring ?? "")
                #expect(first == "pdl_trigger();", "\(source.name): \(name) does not begin with pdl_trigger()")
                if name.hasPrefix("linear_bf16_decode_") {  // _nN and _direct_nN
                    #expect(second.hasPrefix("linear_decode_preloaded<") && source.text.contains("pdl_wait();  // weights requested"),
                            "\(source.name): \(name)")
                } else if name.hasPrefix("linear_bf16_resident_") {  // bulk copies requested, then the wait
                    #expect(second.hasPrefix("linear_resident<") && source.text.contains("__syncthreads();\n    pdl_wait();  // weights requested"),
                            "\(source.name): \(name)")
                } else if name == "add_rms_norm_route" {
                    let rest = source.text[match.range.upperBound...]
                    let body = rest[..<(rest.range(of: "\n}\n")?.lowerBound ?? rest.endIndex)]
                    #expect(body.contains("pdl_wait();"), "\(source.name): \(name) never waits for the kernel ahead")
                } else {
                    #expect(second == "pdl_wait();", "\(source.name): \(name) does not wait for the kernel ahead first")
                }
                checked += 1
            }
        }
        #expect(checked >= 100)
    }

    @Test func cacheKeysDependOnEveryInput() {
        #expect(fnv1a64("a") != fnv1a64("b"))
        #expect(fnv1a64("kernel\u{0}sm_90a") != fnv1a64("kernel\u{0}sm_80"))
        #expect(fnv1a64("") == 0xcbf2_9ce4_8422_2325)
    }
}
