// Errors shared across targets and the logger. Each target adds its own typed errors for what it
// owns (safetensors, configs, tokenizers); these are the ones every layer may raise.
import Logging

/// Errors any part of the engine may raise; messages name the thing at fault.
public enum OspreyError: Error, CustomStringConvertible, Equatable {
    /// A tensor had a shape or dtype the operation cannot take.
    case invalidTensor(String)
    /// A device or backend is not available here.
    case unavailable(String)
    /// A request or argument was out of range.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .invalidTensor(let m): "invalid tensor: \(m)"
        case .unavailable(let m): "unavailable: \(m)"
        case .invalidArgument(let m): "invalid argument: \(m)"
        }
    }
}

/// The engine's logger (swift-log); the CLI configures the handler and level.
public let log = Logger(label: "osprey")
