// NVRTC, opened with dlopen: compiles a kernel's CUDA C++ source to a CUBIN for one GPU
// architecture. It needs no GPU, which is how CI checks every kernel compiles. NVRTC opens its
// builtins library (libnvrtc-builtins.so.13.x) by bare name; where that is not on the loader's
// path (pip's wheel), we open it first by full path with RTLD_GLOBAL so that lookup succeeds.
import Foundation

/// The NVRTC compiler.
public struct NVRTC: @unchecked Sendable {  // immutable table of C function pointers
    let library: DynamicLibrary
    private let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
                                        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    private let compile: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    private let logSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    private let getLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32
    private let cubinSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    private let getCubin: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32
    private let destroy: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    private let versionFn: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    private let errorString: @convention(c) (Int32) -> UnsafePointer<CChar>?

    /// The process's NVRTC, opened once (OSPREY_NVRTC may name the library file).
    public static func shared() throws -> NVRTC { try sharedResult.get() }

    private static let sharedResult: Result<NVRTC, CUDAError> = {
        do { return .success(try NVRTC()) } catch let e as CUDAError { return .failure(e) } catch {
            return .failure(.libraryNotFound("libnvrtc.so.13", searched: ["\(error)"]))
        }
    }()

    /// NVRTC loads its builtins lazily on the first compilation; concurrent first compilations
    /// were seen to fail to find them, so compilations are serialised (they are cached anyway).
    private static let compileLock = NSLock()

    private init() throws {
        let candidates = DynamicLibrary.candidates("libnvrtc.so.13", override: "OSPREY_NVRTC")
        let l = try DynamicLibrary.open("libnvrtc.so.13", candidates: candidates)
        // Preload the builtins from the same folder, if they are there.
        let folder = URL(fileURLWithPath: l.path).deletingLastPathComponent().path
        if l.path.contains("/"), let builtins = (try? FileManager.default.contentsOfDirectory(atPath: folder))?
            .filter({ $0.hasPrefix("libnvrtc-builtins.so") && !$0.contains(".alt.") }).sorted().last {
            _ = try? DynamicLibrary.open(builtins, candidates: ["\(folder)/\(builtins)"], global: true)
        }
        library = l
        create = try l.function("nvrtcCreateProgram", as: type(of: create))
        compile = try l.function("nvrtcCompileProgram", as: type(of: compile))
        logSize = try l.function("nvrtcGetProgramLogSize", as: type(of: logSize))
        getLog = try l.function("nvrtcGetProgramLog", as: type(of: getLog))
        cubinSize = try l.function("nvrtcGetCUBINSize", as: type(of: cubinSize))
        getCubin = try l.function("nvrtcGetCUBIN", as: type(of: getCubin))
        destroy = try l.function("nvrtcDestroyProgram", as: type(of: destroy))
        versionFn = try l.function("nvrtcVersion", as: type(of: versionFn))
        errorString = try l.function("nvrtcGetErrorString", as: type(of: errorString))
    }

    /// NVRTC's version, e.g. (13, 0).
    public var version: (major: Int, minor: Int) {
        var a: Int32 = 0, b: Int32 = 0
        _ = versionFn(&a, &b)
        return (Int(a), Int(b))
    }

    /// Compiles `source` (with `headers`: include name → text) to a CUBIN for `architecture`
    /// (e.g. "sm_90a"). Throws `.compilation` with NVRTC's log when the source does not compile.
    public func compileToCubin(source: String, name: String, headers: [String: String] = [:],
                               architecture: String, extraOptions: [String] = []) throws -> [UInt8] {
        Self.compileLock.lock()
        defer { Self.compileLock.unlock() }
        let options = ["--gpu-architecture=\(architecture)", "-std=c++17", "-default-device", "-lineinfo"] + extraOptions
        let headerNames = headers.keys.sorted()
        let cStrings = (headerNames.map { headers[$0]! } + headerNames + options).map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        let n = headerNames.count
        let contents = cStrings[0..<n].map { UnsafePointer<CChar>($0) }
        let includeNames = cStrings[n..<(2 * n)].map { UnsafePointer<CChar>($0) }
        let opts = cStrings[(2 * n)...].map { UnsafePointer<CChar>($0) }
        var program: OpaquePointer?
        try check(source.withCString { src in
            name.withCString { create(&program, src, $0, Int32(n), contents, includeNames) }
        }, "nvrtcCreateProgram")
        defer { _ = destroy(&program) }
        let status = compile(program, Int32(opts.count), opts)
        if status != 0 {
            var size = 0
            _ = logSize(program, &size)
            var log = [CChar](repeating: 0, count: max(size, 1))
            _ = getLog(program, &log)
            throw CUDAError.compilation(kernel: name, log: String(decoding: log.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        var size = 0
        try check(cubinSize(program, &size), "nvrtcGetCUBINSize")
        var cubin = [CChar](repeating: 0, count: size)
        try check(getCubin(program, &cubin), "nvrtcGetCUBIN")
        return cubin.map { UInt8(bitPattern: $0) }
    }

    private func check(_ status: Int32, _ call: String) throws {
        guard status != 0 else { return }
        throw CUDAError.nvrtc(call: call, status: status, message: errorString(status).map { String(cString: $0) } ?? "unknown")
    }
}
