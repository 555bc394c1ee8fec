// A Hugging Face model folder on disk: config.json (decoded lazily by each family into its own
// config type), the optional generation_config.json, and the safetensors checkpoint.
// Config decoding uses one decoder with `.convertFromSnakeCase` (STYLE habit 3): families declare
// plain Decodable structs with the checkpoint's field names in camel case, optional fields
// resolved by computed properties, and no CodingKeys.
import Foundation
import OspreyCore
import OspreyIO

/// A model folder: its config, generation defaults and weights.
public struct ModelFolder: Sendable {
    public let directory: URL
    /// The raw bytes of config.json (each family decodes its own config type from them).
    public let configData: Data
    /// `model_type` from config.json.
    public let modelType: String
    /// generation_config.json, when the folder has one.
    public let generationDefaults: GenerationDefaults?
    /// The weights (replaceable, e.g. by `DequantizedWeights` for the dequantize option).
    public var weights: any WeightSource

    /// Reads config.json (and generation_config.json if present) and opens the checkpoint.
    public init(directory: URL) throws {
        self.directory = directory
        let configURL = directory.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: configURL) else {
            throw ModelError.unreadableFile(path: configURL.path, "cannot read (is \(directory.path) a model folder?)")
        }
        configData = data
        struct Head: Decodable { var modelType: String? }
        let head = try ModelFolder.decode(Head.self, from: data, file: configURL.path)
        guard let type = head.modelType else { throw ModelError.invalidConfig(field: "model_type", "missing") }
        modelType = type
        let genURL = directory.appendingPathComponent("generation_config.json")
        if let g = try? Data(contentsOf: genURL) {
            generationDefaults = try ModelFolder.decode(GenerationDefaults.self, from: g, file: genURL.path)
        } else {
            generationDefaults = nil
        }
        weights = try SafetensorsCheckpoint(directory: directory)
    }

    /// Decodes this folder's config.json as `T`.
    public func config<T: Decodable>(as type: T.Type) throws -> T {
        try ModelFolder.decode(T.self, from: configData, file: directory.appendingPathComponent("config.json").path)
    }

    /// Decodes snake_case JSON, turning decoding failures into errors that name the field.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw ModelError.invalidConfig(field: fieldPath(ctx.codingPath + [key]), "missing (\(file))")
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            throw ModelError.invalidConfig(field: fieldPath(ctx.codingPath), "\(ctx.debugDescription) (\(file))")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ModelError.unreadableFile(path: file, "not valid JSON: \(ctx.debugDescription) \(fieldPath(ctx.codingPath))")
        } catch {
            throw ModelError.unreadableFile(path: file, "\(error)")
        }
    }

    private static func fieldPath(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? snakeCase($0.stringValue) }.joined(separator: ".")
    }

    private static func snakeCase(_ s: String) -> String {
        s.reduce(into: "") { out, c in
            if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
        }
    }
}

/// One token id or a list of them (config files use both for `eos_token_id`).
public struct TokenIDs: Decodable, Sendable, Equatable {
    public var ids: [Int]
    public init(_ ids: [Int]) { self.ids = ids }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(Int.self) { ids = [one] } else { ids = try c.decode([Int].self) }
    }
}

/// One string or a list of them (`stop_strings` may be either).
public struct StringList: Decodable, Sendable, Equatable {
    public var values: [String]
    public init(_ values: [String]) { self.values = values }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(String.self) { values = [one] } else { values = try c.decode([String].self) }
    }
}

/// generation_config.json: the defaults a model folder ships for generation.
public struct GenerationDefaults: Decodable, Sendable, Equatable {
    public var bosTokenId: Int?
    public var eosTokenId: TokenIDs?
    public var padTokenId: Int?
    public var doSample: Bool?
    public var temperature: Double?
    public var topK: Int?
    public var topP: Double?
    public var minP: Double?
    public var repetitionPenalty: Double?
    public var maxNewTokens: Int?
    public var minNewTokens: Int?
    public var maxLength: Int?
    public var stopStrings: StringList?
}

extension SafetensorsCheckpoint: WeightSource {}
