// Opening the NVIDIA libraries at run time (DESIGN decision 1: no CUDA at build time). Each
// library is searched in order: the folder named by an explicit environment variable
// (OSPREY_CUDA_HOME, or a library-specific override), the dynamic loader's own path, the CUDA
// toolkit folders, then the folders pip's nvidia-* wheels install into. Never the driver's
// `compat/` or `stubs/` copies, which load but cannot run anything.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A dlopen'd library handle and its symbols. Handles stay open for the life of the process.
struct DynamicLibrary: @unchecked Sendable {  // a dlopen handle is process-global and immutable
    let name: String
    let path: String
    let handle: UnsafeMutableRawPointer

    /// Opens the first of `candidates` that loads.
    static func open(_ name: String, candidates: [String], global: Bool = false) throws -> DynamicLibrary {
        var tried: [String] = []
        for path in candidates where !path.contains("/stubs/") && !path.contains("/compat/") {
            tried.append(path)
            if let h = dlopen(path, RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL)) {
                return DynamicLibrary(name: name, path: path, handle: h)
            }
        }
        throw CUDAError.libraryNotFound(name, searched: tried)
    }

    /// The symbol `symbol` as a C function of type `T`.
    func function<T>(_ symbol: String, as type: T.Type) throws -> T {
        guard let p = dlsym(handle, symbol) else { throw CUDAError.missingSymbol(symbol, library: path) }
        return unsafeBitCast(p, to: type)
    }

    /// Candidate paths for `file` (e.g. "libnvrtc.so.13") in the usual places, most explicit first.
    static func candidates(_ file: String, override: String? = nil, pipSubfolder: String = "cu13/lib") -> [String] {
        let env = ProcessInfo.processInfo.environment
        var list: [String] = []
        if let override, let p = env[override], !p.isEmpty { list.append(p) }
        if let home = env["OSPREY_CUDA_HOME"], !home.isEmpty {
            list += ["lib64", "lib", "targets/x86_64-linux/lib"].map { "\(home)/\($0)/\(file)" }
        }
        list.append(file)  // LD_LIBRARY_PATH, ldconfig's cache, RUNPATH
        list += ["/usr/local/nvidia/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/cuda/lib64",
                 "/usr/local/cuda-13.0/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"].map { "\($0)/\(file)" }
        list += pipFolders(pipSubfolder).map { "\($0)/\(file)" }
        return list
    }

    /// Folders where pip's nvidia wheels put their libraries (virtual environments, pyenv, system Python).
    static func pipFolders(_ subfolder: String) -> [String] {
        let fm = FileManager.default
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        var sitePackages: [String] = []
        for root in ["/opt/torch/.venv/lib", "/usr/local/lib", "/usr/lib", "\(home)/.local/lib"] {
            for py in (try? fm.contentsOfDirectory(atPath: root)) ?? [] where py.hasPrefix("python3") {
                sitePackages += ["\(root)/\(py)/site-packages", "\(root)/\(py)/dist-packages"]
            }
        }
        let pyenv = "\(home)/.pyenv/versions"
        for v in (try? fm.contentsOfDirectory(atPath: pyenv)) ?? [] {
            for py in (try? fm.contentsOfDirectory(atPath: "\(pyenv)/\(v)/lib")) ?? [] where py.hasPrefix("python3") {
                sitePackages.append("\(pyenv)/\(v)/lib/\(py)/site-packages")
            }
        }
        return sitePackages.map { "\($0)/nvidia/\(subfolder)" }.filter { fm.fileExists(atPath: $0) }
    }
}
