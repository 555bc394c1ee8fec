// Loading a model folder in one call: config.json picks the family from the registry (by
// `model_type`), the weights go to the chosen device (MXFP4 kept packed unless `dequantize`),
// the tokenizer (tokenizer.json, or o200k_base.tiktoken for gpt-oss) and generation_config.json
// are read, and the chat format is chosen — harmony when the vocabulary has harmony's tokens
// (gpt-oss), else the folder's Jinja chat template (chat_template.jinja, or the `chat_template`
// of tokenizer_config.json). Folders without a tokenizer (random checkpoints)
// still load; the text APIs then throw `GenerationError.noTokenizer`.
import Foundation
import OspreyCore
import OspreyJinja
import OspreyModels
import OspreyTokenizers

/// Why a generation could not start.
public enum GenerationError: Error, CustomStringConvertible, Equatable {
    /// Text in or out needs a tokenizer, and the folder has none.
    case noTokenizer(folder: String)

    public var description: String {
        switch self {
        case .noTokenizer(let folder): "\(folder) has no tokenizer (tokenizer.json or o200k_base.tiktoken); give token ids instead of text"
        }
    }
}

/// A model with its tokenizer, generation defaults and chat format.
public struct LoadedModel: Sendable {
    public let folder: ModelFolder
    public let model: any LanguageModel
    public let tokenizer: (any Tokenizer)?
    /// generation_config.json over transformers' defaults (eos from config.json when it has none).
    public let generationConfig: GenerationConfig
    /// nil when the folder has no tokenizer, or neither harmony tokens nor a chat template.
    public let chatFormat: ChatFormat?
    /// Set when loading changed a choice for the device — `.auto` fell back to the CPU, or MXFP4
    /// experts were dequantized because the device cannot run their kernels: why, in one line.
    public let deviceNote: String?

    public init(folder: ModelFolder, model: any LanguageModel, tokenizer: (any Tokenizer)?, generationConfig: GenerationConfig,
                chatFormat: ChatFormat?, deviceNote: String? = nil) {
        (self.folder, self.model, self.tokenizer, self.generationConfig) = (folder, model, tokenizer, generationConfig)
        (self.chatFormat, self.deviceNote) = (chatFormat, deviceNote)
    }

    /// Loads the model folder at `directory` onto `device`.
    public static func load(_ directory: URL, device: DeviceChoice = .auto, dequantize: Bool = false) throws -> LoadedModel {
        let folder = try ModelFolder(directory: directory)  // a missing folder fails before any device starts
        let (backend, note) = try device.makeBackend()
        return try load(folder, backend: backend, dequantize: dequantize, deviceNote: note)
    }

    /// Loads `folder` onto `backend`. MXFP4 experts stay packed unless `dequantize`, or unless the
    /// backend cannot run the MXFP4 kernels: then they are expanded to bf16 as with `dequantize`
    /// (transformers' fallback), and `deviceNote` says why.
    public static func load(_ folder: ModelFolder, backend: any Backend, dequantize: Bool = false,
                            deviceNote: String? = nil) throws -> LoadedModel {
        var (folder, note) = (folder, deviceNote)
        if dequantize {
            folder = try folder.dequantized()
        } else if folder.hasMXFP4Weights, let why = backend.mxfp4Unavailable {
            folder = try folder.dequantized()
            note = "\(why): MXFP4 experts dequantized to bf16 at load (as --dequantize does)"
        }
        let tokenizer = try loadTokenizer(folder)
        let chatFormat = try tokenizer.flatMap { try Self.chatFormat(folder, tokenizer: $0) }
        var config = GenerationConfig(defaults: folder.generationDefaults)
        if config.eosTokenIds.isEmpty {
            struct Head: Decodable { var eosTokenId: TokenIDs? }
            config.eosTokenIds = ((try? folder.config(as: Head.self))?.eosTokenId?.ids ?? []).map { Int32(truncatingIfNeeded: $0) }
        }
        let model = try ModelRegistry.load(folder, backend: backend)
        return LoadedModel(folder: folder, model: model, tokenizer: tokenizer, generationConfig: config,
                           chatFormat: chatFormat, deviceNote: note)
    }

    /// The tokenizer, or `GenerationError.noTokenizer`.
    public func requireTokenizer() throws -> any Tokenizer {
        guard let tokenizer else { throw GenerationError.noTokenizer(folder: folder.directory.path) }
        return tokenizer
    }

    /// The ids of `text`, with the tokenizer's BOS/EOS where it adds them.
    public func encode(_ text: String) throws -> [Int32] {
        try requireTokenizer().encode(text, addSpecialTokens: true).map { Int32($0) }
    }

    // MARK: - Folder contents

    private static func loadTokenizer(_ folder: ModelFolder) throws -> (any Tokenizer)? {
        let dir = folder.directory, files = FileManager.default
        if files.fileExists(atPath: dir.appendingPathComponent("tokenizer.json").path) { return try OspreyTokenizers.loadTokenizer(at: dir) }
        guard files.fileExists(atPath: dir.appendingPathComponent("o200k_base.tiktoken").path) else { return nil }
        return folder.modelType == "gpt_oss" ? try TiktokenEncoding.o200kHarmony(vocabDirectory: dir, definition: .openAIHarmony)
                                             : try OspreyTokenizers.loadTokenizer(at: dir)
    }

    private static func chatFormat(_ folder: ModelFolder, tokenizer: any Tokenizer) throws -> ChatFormat? {
        let hasHarmonyTokens = ["<|start|>", "<|channel|>", "<|message|>"].allSatisfy { tokenizer.tokenID(for: $0) != nil }
        if hasHarmonyTokens, let t = tokenizer as? any Tokenizer & HarmonyTokenizer {
            return try ChatFormat.harmony(tokenizer: t)
        }
        let dir = folder.directory
        var source = try? String(contentsOf: dir.appendingPathComponent("chat_template.jinja"), encoding: .utf8)
        var special: [String: String] = [:]
        let configURL = dir.appendingPathComponent("tokenizer_config.json")
        if let data = try? Data(contentsOf: configURL) {
            guard let config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw ModelError.unreadableFile(path: configURL.path, "not a JSON object")
            }
            for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
                if let s = config[key] as? String { special[key] = s }
                else if let s = (config[key] as? [String: Any])?["content"] as? String { special[key] = s }
            }
            if source == nil {
                source = config["chat_template"] as? String
                    ?? (config["chat_template"] as? [[String: Any]])?.first { $0["name"] as? String == "default" }?["template"] as? String
            }
        }
        guard let source else { return nil }
        do {
            return ChatFormat(template: try ChatTemplate(source: source), tokenizer: tokenizer, specialTokens: special)
        } catch {
            throw ChatError.template("\(dir.path): \(error)")
        }
    }
}
