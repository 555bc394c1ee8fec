// The request bodies of the OpenAI-compatible API, as clients send them: /v1/chat/completions and
// /v1/completions. They decode with a plain JSONDecoder (explicit snake_case keys, no strategy, so
// the arbitrary JSON of tool schemas keeps its keys); fields this server does not read (`user`,
// `presence_penalty`, `logprobs`, ...) are ignored. Decoding checks types only: ranges, roles and
// limits are checked in RequestValidation.swift, which names the offending `param`.
import OspreyTokenizers

/// A string, or a list of strings (`stop`).
public enum StringOrList: Decodable, Sendable, Equatable {
    case one(String)
    case many([String])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .one(s) } else { self = .many(try c.decode([String].self)) }
    }

    /// The strings, in order.
    public var values: [String] {
        switch self {
        case .one(let s): [s]
        case .many(let list): list
        }
    }
}

/// One part of an array `content` (only `{"type": "text", "text": ...}` is served).
public struct ContentPart: Decodable, Sendable, Equatable {
    public var type: String
    public var text: String?
}

/// A message's `content`: a string or an array of parts.
public enum MessageContent: Decodable, Sendable, Equatable {
    case text(String)
    case parts([ContentPart])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .text(s) } else { self = .parts(try c.decode([ContentPart].self)) }
    }
}

/// A function call in an assistant message of the history, or of a reply.
public struct FunctionCall: Codable, Sendable, Equatable {
    public var name: String
    /// The arguments as JSON text.
    public var arguments: String

    public init(name: String, arguments: String) { (self.name, self.arguments) = (name, arguments) }
}

/// A tool call in an assistant message of the history.
public struct RequestToolCall: Decodable, Sendable, Equatable {
    public var id: String?
    public var type: String?
    public var function: FunctionCall
}

/// One message of `messages`.
public struct RequestMessage: Decodable, Sendable, Equatable {
    public var role: String
    public var content: MessageContent?
    public var name: String?
    public var toolCalls: [RequestToolCall]?
    public var toolCallId: String?
    /// An assistant's earlier reasoning (vLLM's `reasoning_content`; `reasoning` is accepted too).
    public var reasoningContent: String?
    public var reasoning: String?

    enum CodingKeys: String, CodingKey {
        case role, content, name, reasoning
        case toolCalls = "tool_calls", toolCallId = "tool_call_id", reasoningContent = "reasoning_content"
    }
}

/// A function tool the model may call.
public struct ToolDefinition: Decodable, Sendable, Equatable {
    public struct Function: Decodable, Sendable, Equatable {
        public var name: String
        public var description: String?
        /// The JSON schema of the arguments.
        public var parameters: HarmonyJSON?
    }

    public var type: String
    public var function: Function
}

/// `tool_choice`: `"auto"`, `"none"`, `"required"`, or `{"type": "function", "function": {"name": ...}}`.
public enum ToolChoice: Decodable, Sendable, Equatable {
    case mode(String)
    case function(name: String)

    private struct Named: Decodable {
        struct Function: Decodable { var name: String }
        var type: String
        var function: Function
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .mode(s) } else { self = .function(name: try c.decode(Named.self).function.name) }
    }
}

/// `stream_options`.
public struct StreamOptions: Decodable, Sendable, Equatable {
    public var includeUsage: Bool?
    enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
}

/// The sampling and length fields both endpoints share.
public protocol SamplingRequest: Sendable {
    var maxTokens: Int? { get }
    var temperature: Double? { get }
    var topP: Double? { get }
    var seed: Int64? { get }
    var stop: StringOrList? { get }
    var n: Int? { get }
    var stream: Bool? { get }
    var streamOptions: StreamOptions? { get }
}

/// The body of POST /v1/chat/completions.
public struct ChatCompletionRequest: Decodable, SamplingRequest, Equatable {
    public var model: String?
    public var messages: [RequestMessage]
    public var tools: [ToolDefinition]?
    public var toolChoice: ToolChoice?
    public var reasoningEffort: String?
    public var maxTokens: Int?
    public var maxCompletionTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var seed: Int64?
    public var stop: StringOrList?
    public var n: Int?
    public var stream: Bool?
    public var streamOptions: StreamOptions?

    enum CodingKeys: String, CodingKey {
        case model, messages, tools, temperature, seed, stop, n, stream
        case toolChoice = "tool_choice", reasoningEffort = "reasoning_effort", maxTokens = "max_tokens"
        case maxCompletionTokens = "max_completion_tokens", topP = "top_p", streamOptions = "stream_options"
    }
}

/// `prompt` of /v1/completions: text, or token ids.
public enum PromptInput: Decodable, Sendable, Equatable {
    case text(String)
    case tokens([Int])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .text(s); return }
        if let ids = try? c.decode([Int].self) { self = .tokens(ids); return }
        throw DecodingError.typeMismatch(PromptInput.self, .init(
            codingPath: decoder.codingPath,
            debugDescription: "prompt must be a string or an array of token ids (one prompt per request)"))
    }
}

/// The body of POST /v1/completions.
public struct CompletionRequest: Decodable, SamplingRequest, Equatable {
    public var model: String?
    public var prompt: PromptInput
    public var maxTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var seed: Int64?
    public var stop: StringOrList?
    public var n: Int?
    public var stream: Bool?
    public var streamOptions: StreamOptions?
    public var echo: Bool?

    enum CodingKeys: String, CodingKey {
        case model, prompt, temperature, seed, stop, n, stream, echo
        case maxTokens = "max_tokens", topP = "top_p", streamOptions = "stream_options"
    }
}
