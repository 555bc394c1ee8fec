// Which device a model loads onto: the CPU, a CUDA GPU by ordinal, or `auto` (the first GPU when
// the driver and a GPU are there, else the CPU, with a note saying why). The CUDA libraries are
// opened at run time, so `auto` works on machines without them.
import OspreyCore
import OspreyCPU
import OspreyCUDA

/// Where to run a model.
public enum DeviceChoice: Sendable, Hashable, CustomStringConvertible {
    /// GPU 0 when one can be opened, else the CPU.
    case auto
    case cpu
    /// The CUDA GPU of this ordinal.
    case cuda(Int)

    /// Reads `auto`, `cpu`, `cuda` or `cuda:N`.
    public init?(_ text: String) {
        switch text {
        case "auto": self = .auto
        case "cpu": self = .cpu
        case "cuda": self = .cuda(0)
        default:
            guard text.hasPrefix("cuda:"), let n = Int(text.dropFirst(5)), n >= 0 else { return nil }
            self = .cuda(n)
        }
    }

    public var description: String {
        switch self {
        case .auto: "auto"
        case .cpu: "cpu"
        case .cuda(let n): "cuda:\(n)"
        }
    }

    /// The backend for this choice, and for `auto` on a machine without a usable GPU a one-line
    /// note saying why the CPU is used.
    public func makeBackend() throws -> (backend: any Backend, note: String?) {
        switch self {
        case .cpu: return (CPUBackend(), nil)
        case .cuda(let n): return (try CUDABackend(ordinal: n), nil)
        case .auto:
            do {
                return (try CUDABackend(ordinal: 0), nil)
            } catch {
                let reason: String
                if case CUDAError.libraryNotFound(let library, _) = error { reason = "\(library) not found" } else { reason = "\(error)" }
                return (CPUBackend(), "no usable GPU (\(reason)); running on the CPU")
            }
        }
    }
}
