// What every subcommand shares: choosing the backend from --device, and reporting errors on
// stderr with a non-zero exit instead of a crash or a backtrace.
import ArgumentParser
import Foundation
import OspreyCore
import OspreyCPU

/// `--device cpu|cuda|auto`.
enum DeviceChoice: String, ExpressibleByArgument, CaseIterable {
    case cpu, cuda, auto

    func backend() throws -> any Backend {
        switch self {
        case .cpu, .auto: return CPUBackend()
        case .cuda: throw CLIError("the CUDA backend is not available in this build yet; use --device cpu")
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
