// What every subcommand shares: choosing the backend from --device, and reporting errors on
// stderr with a non-zero exit instead of a crash or a backtrace.
import ArgumentParser
import Foundation
import OspreyCore
import OspreyCPU
import OspreyCUDA

/// `--device cpu|cuda|auto`.
enum DeviceChoice: String, ExpressibleByArgument, CaseIterable {
    case cpu, cuda, auto

    /// The backend for this choice: `auto` is the GPU when one can be opened, else the CPU (said on stderr).
    func backend() throws -> any Backend {
        switch self {
        case .cpu: return CPUBackend()
        case .cuda: return try CUDABackend(ordinal: 0)
        case .auto:
            do {
                return try CUDABackend(ordinal: 0)
            } catch {
                let reason: String
                if case CUDAError.libraryNotFound(let library, _) = error { reason = "\(library) not found" } else { reason = "\(error)" }
                FileHandle.standardError.write(Data("osprey: no usable GPU (\(reason)); running on the CPU\n".utf8))
                return CPUBackend()
            }
        }
    }
}

/// A message for the user, printed as is.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Runs `body`, turning any error into one line on stderr and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// Writes a line to stdout without buffering surprises.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
