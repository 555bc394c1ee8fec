// Harmony conversation values: roles, messages, system/developer content and tool namespaces.
//
// These mirror openai-harmony 0.0.8's Python/Rust types and read and write its JSON form
// (`Conversation.to_dict()` / `Conversation.from_json`):
//   {"messages": [{"role", "name", "content": [...] | "text", "channel"?, "recipient"?, "content_type"?}]}
// with content items `{"type": "text" | "system_content" | "developer_content", ...}`.
// A key that is *missing* from system content takes the Python default (identity, medium effort,
// 2024-06 cutoff, the three required channels); a key set to `null` means "leave it out", which
// is what harmony's pydantic models do. The JSON work goes through HarmonyJSON so tool-schema
// property order survives; the Codable conformances route through it as well (note that a
// Foundation JSONDecoder has already lost object key order by then, so prefer `init(jsonText:)`).
// Rendering lives in HarmonyRenderer.swift, parsing of completions in HarmonyParser.swift.

import Foundation

/// Errors from reading, validating or rendering harmony conversations.
public enum HarmonyError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidJSON(String)
    /// A field at `path` (e.g. `messages[2].content[0].text`) is missing or has the wrong type.
    case invalidField(path: String, reason: String)
    /// A `tool` message needs a `name` (the tool that speaks, e.g. `functions.get_weather`).
    case toolMessageWithoutName(messageIndex: Int)
    /// System content outside a system message, or developer content outside a developer message.
    case contentNotAllowed(content: String, role: HarmonyRole, messageIndex: Int)
    /// The tokenizer has no single id for a harmony formatting token.
    case missingSpecialToken(String)

    public var description: String {
        switch self {
        case .invalidJSON(let why): return "invalid JSON: \(why)"
        case .invalidField(let path, let reason): return "\(path): \(reason)"
        case .toolMessageWithoutName(let i): return "messages[\(i)]: tool messages need a name"
        case .contentNotAllowed(let content, let role, let i):
            return "messages[\(i)]: \(content) may only appear in \(content == "system_content" ? "system" : "developer") messages, found in a \(role.rawValue) message"
        case .missingSpecialToken(let t): return "the tokenizer has no single token for \(t)"
        }
    }
}

/// Who wrote a message. Order of authority: system > developer > user > assistant > tool.
public enum HarmonyRole: String, Sendable, Codable, CaseIterable {
    case user, assistant, system, developer, tool
}

/// How much the model should reason; rendered as `Reasoning: low|medium|high`.
public enum HarmonyReasoningEffort: String, Sendable, Codable, CaseIterable {
    case low = "Low", medium = "Medium", high = "High"
}

/// The channels a model may write to, rendered as `# Valid channels: ...`.
public struct HarmonyChannelConfig: Sendable, Equatable {
    public var validChannels: [String]
    public var channelRequired: Bool

    public init(validChannels: [String], channelRequired: Bool) {
        self.validChannels = validChannels
        self.channelRequired = channelRequired
    }

    /// `analysis`, `commentary` and `final`, required: harmony's default.
    public static let standard = HarmonyChannelConfig(validChannels: ["analysis", "commentary", "final"], channelRequired: true)
}

/// One tool: a name, a description and an optional JSON-schema of its single argument.
public struct HarmonyToolDescription: Sendable, Equatable {
    public var name: String
    public var description: String
    public var parameters: HarmonyJSON?

    public init(name: String, description: String, parameters: HarmonyJSON? = nil) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

/// A namespace of tools (`functions`, `browser`, `python`, or a custom one).
public struct HarmonyToolNamespace: Sendable, Equatable {
    public var name: String
    public var description: String?
    public var tools: [HarmonyToolDescription]

    public init(name: String, description: String? = nil, tools: [HarmonyToolDescription]) {
        self.name = name
        self.description = description
        self.tools = tools
    }
}

/// The content of the system message: identity, dates, reasoning effort, channels, builtin tools.
public struct HarmonySystemContent: Sendable, Equatable {
    public var modelIdentity: String? = "You are ChatGPT, a large language model trained by OpenAI."
    public var reasoningEffort: HarmonyReasoningEffort? = .medium
    public var conversationStartDate: String? = nil
    public var knowledgeCutoff: String? = "2024-06"
    public var channelConfig: HarmonyChannelConfig? = .standard
    /// Tool namespaces keyed by name; rendered in key order (byte-wise), as harmony's BTreeMap does.
    public var tools: [String: HarmonyToolNamespace]? = nil

    /// Harmony's defaults (`SystemContent.new()`).
    public init() {}
}

/// The content of a developer message: instructions and function tools.
public struct HarmonyDeveloperContent: Sendable, Equatable {
    public var instructions: String?
    public var tools: [String: HarmonyToolNamespace]?

    public init(instructions: String? = nil, tools: [String: HarmonyToolNamespace]? = nil) {
        self.instructions = instructions
        self.tools = tools
    }
}

/// One item of a message's content.
public enum HarmonyContent: Sendable, Equatable {
    case text(String)
    case system(HarmonySystemContent)
    case developer(HarmonyDeveloperContent)
}

/// A harmony message: author, content, and the header fields channel, recipient and content type.
public struct HarmonyMessage: Sendable, Equatable {
    public var role: HarmonyRole
    /// The author's name; for `tool` messages the tool that speaks (e.g. `functions.get_weather`).
    public var name: String?
    public var content: [HarmonyContent]
    public var channel: String?
    public var recipient: String?
    /// e.g. `<|constrain|>json`, `json` or `code`.
    public var contentType: String?

    public init(role: HarmonyRole, name: String? = nil, content: [HarmonyContent], channel: String? = nil,
                recipient: String? = nil, contentType: String? = nil) {
        self.role = role
        self.name = name
        self.content = content
        self.channel = channel
        self.recipient = recipient
        self.contentType = contentType
    }

    public init(role: HarmonyRole, text: String, channel: String? = nil) {
        self.init(role: role, content: [.text(text)], channel: channel)
    }

    /// All text content joined, e.g. a parsed completion's text.
    public var text: String {
        content.reduce(into: "") { out, item in if case .text(let t) = item { out += t } }
    }
}

/// A list of messages, as `openai_harmony.Conversation`.
public struct HarmonyConversation: Sendable, Equatable {
    public var messages: [HarmonyMessage]

    public init(messages: [HarmonyMessage]) { self.messages = messages }

    /// Reads harmony's JSON form (`Conversation.to_json()`), keeping tool-schema property order.
    public init(jsonText: String) throws(HarmonyError) {
        try self.init(json: HarmonyJSON.parse(jsonText))
    }
}

// MARK: - Reading the JSON form

private struct FieldReader {
    let object: HarmonyJSON.Object
    let path: String

    init(_ value: HarmonyJSON, path: String) throws(HarmonyError) {
        guard case .object(let o) = value else { throw .invalidField(path: path, reason: "expected an object") }
        object = o
        self.path = path
    }

    func has(_ key: String) -> Bool { object[key] != nil }

    func string(_ key: String) throws(HarmonyError) -> String {
        guard let v = try optionalString(key) else { throw .invalidField(path: "\(path).\(key)", reason: "expected a string") }
        return v
    }

    func optionalString(_ key: String) throws(HarmonyError) -> String? {
        switch object[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw .invalidField(path: "\(path).\(key)", reason: "expected a string or null")
        }
    }

    // Python-default semantics: missing key -> `fallback`, explicit null -> nil.
    func defaultedString(_ key: String, _ fallback: String?) throws(HarmonyError) -> String? {
        has(key) ? try optionalString(key) : fallback
    }
}

extension HarmonyConversation {
    /// Reads harmony's JSON form from a parsed value.
    public init(json: HarmonyJSON) throws(HarmonyError) {
        let r = try FieldReader(json, path: "conversation")
        guard case .array(let items)? = r.object["messages"] else {
            throw .invalidField(path: "conversation.messages", reason: "expected an array")
        }
        var messages: [HarmonyMessage] = []
        for (i, item) in items.enumerated() {
            messages.append(try HarmonyMessage(json: item, path: "messages[\(i)]"))
        }
        self.messages = messages
    }

    /// Harmony's JSON form.
    public var json: HarmonyJSON {
        .object(.init([("messages", .array(messages.map(\.json)))]))
    }
}

extension HarmonyMessage {
    public init(json: HarmonyJSON, path: String = "message") throws(HarmonyError) {
        let r = try FieldReader(json, path: path)
        let roleText = try r.string("role")
        guard let role = HarmonyRole(rawValue: roleText) else {
            throw .invalidField(path: "\(path).role", reason: "unknown role '\(roleText)'")
        }
        var content: [HarmonyContent] = []
        switch r.object["content"] {
        case .string(let s)?:
            content = [.text(s)]
        case .array(let items)?:
            for (i, item) in items.enumerated() {
                content.append(try HarmonyContent(json: item, path: "\(path).content[\(i)]"))
            }
        default:
            throw .invalidField(path: "\(path).content", reason: "expected an array of content items or a string")
        }
        self.init(role: role, name: try r.optionalString("name"), content: content,
                  channel: try r.optionalString("channel"), recipient: try r.optionalString("recipient"),
                  contentType: try r.optionalString("content_type"))
    }

    public var json: HarmonyJSON {
        var o = HarmonyJSON.Object()
        o["role"] = .string(role.rawValue)
        o["name"] = name.map(HarmonyJSON.string) ?? .null
        o["content"] = .array(content.map(\.json))
        if let channel { o["channel"] = .string(channel) }
        if let recipient { o["recipient"] = .string(recipient) }
        if let contentType { o["content_type"] = .string(contentType) }
        return .object(o)
    }
}

extension HarmonyContent {
    public init(json: HarmonyJSON, path: String) throws(HarmonyError) {
        let r = try FieldReader(json, path: path)
        switch try r.optionalString("type") {
        case "text":
            self = .text(try r.string("text"))
        case "system_content":
            var sys = HarmonySystemContent()
            sys.modelIdentity = try r.defaultedString("model_identity", sys.modelIdentity)
            if let effort = try r.defaultedString("reasoning_effort", sys.reasoningEffort?.rawValue) {
                guard let e = HarmonyReasoningEffort(rawValue: effort) else {
                    throw .invalidField(path: "\(path).reasoning_effort", reason: "expected Low, Medium or High")
                }
                sys.reasoningEffort = e
            } else {
                sys.reasoningEffort = nil
            }
            sys.conversationStartDate = try r.optionalString("conversation_start_date")
            sys.knowledgeCutoff = try r.defaultedString("knowledge_cutoff", sys.knowledgeCutoff)
            if let config = r.object["channel_config"] {
                sys.channelConfig = config == .null ? nil : try HarmonyChannelConfig(json: config, path: "\(path).channel_config")
            }
            sys.tools = try Self.namespaces(r.object["tools"], path: "\(path).tools")
            self = .system(sys)
        case "developer_content":
            self = .developer(HarmonyDeveloperContent(
                instructions: try r.optionalString("instructions"),
                tools: try Self.namespaces(r.object["tools"], path: "\(path).tools")))
        default:
            throw .invalidField(path: "\(path).type", reason: "expected text, system_content or developer_content")
        }
    }

    private static func namespaces(_ value: HarmonyJSON?, path: String) throws(HarmonyError) -> [String: HarmonyToolNamespace]? {
        switch value {
        case nil, .null?: return nil
        case .object(let o)?:
            var out: [String: HarmonyToolNamespace] = [:]
            for (key, ns) in o.members {
                out[key] = try HarmonyToolNamespace(json: ns, path: "\(path).\(key)")
            }
            return out
        default: throw .invalidField(path: path, reason: "expected an object of tool namespaces")
        }
    }

    public var json: HarmonyJSON {
        var o = HarmonyJSON.Object()
        switch self {
        case .text(let t):
            o["type"] = .string("text")
            o["text"] = .string(t)
        case .system(let s):
            if let v = s.modelIdentity { o["model_identity"] = .string(v) }
            if let v = s.reasoningEffort { o["reasoning_effort"] = .string(v.rawValue) }
            if let v = s.conversationStartDate { o["conversation_start_date"] = .string(v) }
            if let v = s.knowledgeCutoff { o["knowledge_cutoff"] = .string(v) }
            if let v = s.channelConfig { o["channel_config"] = v.json }
            if let v = s.tools { o["tools"] = Self.namespacesJSON(v) }
            o["type"] = .string("system_content")
        case .developer(let d):
            if let v = d.instructions { o["instructions"] = .string(v) }
            if let v = d.tools { o["tools"] = Self.namespacesJSON(v) }
            o["type"] = .string("developer_content")
        }
        return .object(o)
    }

    private static func namespacesJSON(_ tools: [String: HarmonyToolNamespace]) -> HarmonyJSON {
        .object(.init(tools.keys.sorted(by: HarmonyToolNamespace.byteOrder).map { ($0, tools[$0]!.json) }))
    }
}

extension HarmonyChannelConfig {
    init(json: HarmonyJSON, path: String) throws(HarmonyError) {
        let r = try FieldReader(json, path: path)
        guard case .array(let items)? = r.object["valid_channels"] else {
            throw .invalidField(path: "\(path).valid_channels", reason: "expected an array of strings")
        }
        var channels: [String] = []
        for item in items {
            guard case .string(let s) = item else {
                throw .invalidField(path: "\(path).valid_channels", reason: "expected an array of strings")
            }
            channels.append(s)
        }
        guard case .bool(let required)? = r.object["channel_required"] else {
            throw .invalidField(path: "\(path).channel_required", reason: "expected a boolean")
        }
        self.init(validChannels: channels, channelRequired: required)
    }

    var json: HarmonyJSON {
        .object(.init([("valid_channels", .array(validChannels.map(HarmonyJSON.string))),
                       ("channel_required", .bool(channelRequired))]))
    }
}

extension HarmonyToolNamespace {
    init(json: HarmonyJSON, path: String) throws(HarmonyError) {
        let r = try FieldReader(json, path: path)
        guard case .array(let items)? = r.object["tools"] else {
            throw .invalidField(path: "\(path).tools", reason: "expected an array of tools")
        }
        var tools: [HarmonyToolDescription] = []
        for (i, item) in items.enumerated() {
            let t = try FieldReader(item, path: "\(path).tools[\(i)]")
            let parameters = t.object["parameters"]
            tools.append(HarmonyToolDescription(name: try t.string("name"), description: try t.string("description"),
                                                parameters: parameters == .null ? nil : parameters))
        }
        self.init(name: try r.string("name"), description: try r.optionalString("description"), tools: tools)
    }

    var json: HarmonyJSON {
        var o = HarmonyJSON.Object()
        o["name"] = .string(name)
        if let description { o["description"] = .string(description) }
        o["tools"] = .array(tools.map { tool in
            var t = HarmonyJSON.Object()
            t["name"] = .string(tool.name)
            t["description"] = .string(tool.description)
            if let p = tool.parameters { t["parameters"] = p }
            return .object(t)
        })
        return .object(o)
    }

    // Rust's `String` ordering: byte-wise on UTF-8.
    static func byteOrder(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }
}

// MARK: - Codable, through HarmonyJSON

extension HarmonyConversation: Codable {
    public init(from decoder: any Decoder) throws { try self.init(json: HarmonyJSON(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}

extension HarmonyMessage: Codable {
    public init(from decoder: any Decoder) throws { try self.init(json: HarmonyJSON(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}

extension HarmonyContent: Codable {
    public init(from decoder: any Decoder) throws { try self.init(json: HarmonyJSON(from: decoder), path: "content") }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}

extension HarmonyToolNamespace: Codable {
    public init(from decoder: any Decoder) throws { try self.init(json: HarmonyJSON(from: decoder), path: "namespace") }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}

extension HarmonyChannelConfig: Codable {
    public init(from decoder: any Decoder) throws { try self.init(json: HarmonyJSON(from: decoder), path: "channel_config") }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
