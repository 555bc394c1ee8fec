// What every subcommand shares: choosing the backend from --device, and reporting errors on
// stderr with a non-zero exit instead of a crash or a backtrace.
import ArgumentParser
import Foundation
import OspreyCore
import OspreyGeneration

/// `--device cpu|cuda|cuda:N|auto` (the choice itself, and the backend it makes, are OspreyGeneration's).
extension DeviceChoice: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
    public static var allValueStrings: [String] { ["cpu", "cuda", "cuda:N", "auto"] }

    /// The backend for this choice: `auto` is the GPU when one can be opened, else the CPU (said on stderr).
    func backend() throws -> any Backend {
        let (backend, note) = try makeBackend()
        if let note { FileHandle.standardError.write(Data("osprey: \(note)\n".utf8)) }
        return backend
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
