// Errors of model loading: configs, missing or misshapen weights, unsupported families.

/// A model folder could not be loaded; each case names the file, field or tensor at fault.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(field: String, String)
    case unreadableFile(path: String, String)
    case unknownModelType(String, supported: [String])
    case missingWeight(String)
    case badWeightShape(String, expected: String, got: String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .invalidConfig(let field, let m): "config.json: field \"\(field)\": \(m)"
        case .unreadableFile(let path, let m): "\(path): \(m)"
        case .unknownModelType(let t, let s): "unsupported model_type \"\(t)\"; supported: \(s.joined(separator: ", "))"
        case .missingWeight(let n): "checkpoint has no tensor \"\(n)\""
        case .badWeightShape(let n, let e, let g): "tensor \"\(n)\" has shape \(g), expected \(e)"
        case .unsupported(let m): "unsupported: \(m)"
        }
    }
}
