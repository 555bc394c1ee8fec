// Errors of the CUDA backend: a library that could not be found or opened, a failed driver,
// NVRTC or cuBLAS call (named, with the library's own message), or a kernel that did not compile
// (with NVRTC's log).

/// A CUDA failure; every case names the call or library at fault.
public enum CUDAError: Error, CustomStringConvertible, Equatable {
    /// No copy of the library could be opened; lists where we looked.
    case libraryNotFound(String, searched: [String])
    /// A symbol was missing from a library that did open (a driver too old, say).
    case missingSymbol(String, library: String)
    /// A driver call returned an error status.
    case driver(call: String, status: Int32, message: String)
    /// An NVRTC call returned an error status.
    case nvrtc(call: String, status: Int32, message: String)
    /// A cuBLASLt call returned an error status.
    case cublas(call: String, status: Int32)
    /// A kernel source did not compile.
    case compilation(kernel: String, log: String)
    /// No CUDA device is present (the driver loaded, but it sees no GPU).
    case noDevice
    /// A kernel source file is missing from the bundled resources.
    case missingKernelSource(String)

    public var description: String {
        switch self {
        case .libraryNotFound(let lib, let searched):
            "cannot open \(lib) (looked in: \(searched.joined(separator: ", "))); set OSPREY_CUDA_HOME or use --device cpu"
        case .missingSymbol(let s, let lib): "\(lib) has no symbol \(s) (driver or toolkit too old?)"
        case .driver(let call, let status, let m): "\(call) failed: CUDA error \(status) (\(m))"
        case .nvrtc(let call, let status, let m): "\(call) failed: NVRTC error \(status) (\(m))"
        case .cublas(let call, let status): "\(call) failed: cuBLAS status \(status)"
        case .compilation(let k, let log): "kernel \(k) did not compile:\n\(log)"
        case .noDevice: "no CUDA device found (the driver loaded but reports no GPU); use --device cpu"
        case .missingKernelSource(let name): "kernel source \(name) is missing from the bundled resources"
        }
    }
}
