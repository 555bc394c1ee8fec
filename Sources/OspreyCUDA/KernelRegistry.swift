// Kernel sources and the layer-name registry. Every kernel-backed layer (Embedding, RMSNorm,
// Linear, RoPE, Attention, MoE, ...) names the source file that implements it; the built-in
// sources ship as package resources (Kernels/*.cu, with the shared headers common.cuh and
// mxfp4_mma.cuh). A kernel hub will register other sources under the same layer names; the
// built-ins stay the fallback.
import Foundation

/// One CUDA C++ source file (a module of kernels).
public struct KernelSource: Sendable, Hashable {
    public var name: String
    public var text: String

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }
}

/// Which kernel source implements each layer.
public struct KernelRegistry: Sendable {
    /// The layer names Osprey's forward passes use, with the built-in source file for each.
    public static let builtInLayers: [String: String] = [
        "Embedding": "elementwise", "Add": "elementwise", "RMSNorm": "elementwise",
        "Linear": "linear", "RoPE": "rope", "Attention": "attention", "MoE": "moe", "MoEDecode": "moe_decode",
        "MoEPrefill": "moe_prefill", "Sampling": "sampling", "PagedAttention": "paged_attention",
        "PagedAttentionMMA": "paged_attention_mma", "MoEGrouped": "moe_grouped", "MoEGroupedTMA": "moe_grouped_tma",
    ]

    public private(set) var layers: [String: KernelSource]
    /// Headers every source may include, by include name.
    public let headers: [String: String]

    /// The built-in kernels from the bundled resources.
    public static func builtIn() throws -> KernelRegistry {
        var layers: [String: KernelSource] = [:]
        for (layer, file) in builtInLayers { layers[layer] = try BundledKernels.source(file) }
        return KernelRegistry(layers: layers, headers: try BundledKernels.headers())
    }

    /// Replaces the source implementing `layer` (kernel packages use this).
    public mutating func register(layer: String, source: KernelSource) { layers[layer] = source }

    /// The source implementing `layer`.
    public func source(for layer: String) throws -> KernelSource {
        guard let s = layers[layer] else { throw CUDAError.missingKernelSource("layer \(layer)") }
        return s
    }
}

/// The .cu files bundled with Osprey.
public enum BundledKernels {
    /// Every bundled kernel source (what CI compiles with NVRTC).
    public static func all() throws -> [KernelSource] {
        try Set(KernelRegistry.builtInLayers.values).sorted().map { try source($0) }
    }

    static func source(_ name: String) throws -> KernelSource {
        KernelSource(name: "\(name).cu", text: try text(name, ext: "cu"))
    }

    static func text(_ name: String, ext: String) throws -> String {
        guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Kernels")
                ?? Bundle.module.url(forResource: name, withExtension: ext),
              let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw CUDAError.missingKernelSource("\(name).\(ext)")
        }
        return text
    }

    /// The shared headers, by include name.
    public static func headers() throws -> [String: String] {
        ["common.cuh": try text("common", ext: "cuh"), "mxfp4_mma.cuh": try text("mxfp4_mma", ext: "cuh"),
         "paged_common.cuh": try text("paged_common", ext: "cuh")]
    }
}

/// Compiles kernel sources with NVRTC, caching CUBINs on disk under the user's cache folder
/// ($XDG_CACHE_HOME or ~/.cache, then osprey/kernels), keyed by a hash of source, headers,
/// options, architecture, NVRTC version and driver version.
public struct KernelCompiler: Sendable {
    public let nvrtc: NVRTC
    public let architecture: String
    public let driverVersion: Int
    let cacheFolder: URL

    public init(nvrtc: NVRTC, architecture: String, driverVersion: Int) {
        self.nvrtc = nvrtc
        self.architecture = architecture
        self.driverVersion = driverVersion
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: env["HOME"] ?? NSTemporaryDirectory()).appendingPathComponent(".cache")
        cacheFolder = base.appendingPathComponent("osprey/kernels")
    }

    /// The CUBIN for `source`, from the cache or freshly compiled (and then cached).
    public func cubin(for source: KernelSource, headers: [String: String]) throws -> (cubin: [UInt8], compiled: Bool) {
        let v = nvrtc.version
        var key = "\(source.text)\u{0}\(architecture)\u{0}nvrtc \(v.major).\(v.minor)\u{0}driver \(driverVersion)"
        for name in headers.keys.sorted() { key += "\u{0}\(name)\u{0}\(headers[name]!)" }
        let file = cacheFolder.appendingPathComponent("\(source.name)-\(String(fnv1a64(key), radix: 16)).cubin")
        if let data = try? Data(contentsOf: file), !data.isEmpty { return ([UInt8](data), false) }
        let cubin = try nvrtc.compileToCubin(source: source.text, name: source.name, headers: headers, architecture: architecture)
        try? FileManager.default.createDirectory(at: cacheFolder, withIntermediateDirectories: true)
        try? Data(cubin).write(to: file, options: .atomic)
        return (cubin, true)
    }
}

/// FNV-1a, 64-bit: a stable hash for cache keys (Swift's Hasher is seeded per process).
func fnv1a64(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}
