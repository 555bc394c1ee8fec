// The request bodies of the OpenAI-compatible API, as clients send them: /v1/chat/completions,
// /v1/completions and /v1/responses. They decode with a plain JSONDecoder (explicit snake_case keys, no strategy, so
// the arbitrary JSON of tool schemas keeps its keys); fields this server does not read (`user`,
// `presence_penalty`, ...) are ignored, except a request for logprobs, which is refused (400) rather
// than answered without them. Decoding checks types only: ranges, roles and
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

    /// Chat's `{"type": "function", "function": {"name": ...}}` or the Responses API's `{"type": "function", "name": ...}`.
    private struct Named: Decodable {
        struct Function: Decodable { var name: String }
        var type: String
        var function: Function?
        var name: String?
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .mode(s); return }
        let named = try c.decode(Named.self)
        guard named.type == "function", let name = named.function?.name ?? named.name else {
            throw DecodingError.typeMismatch(ToolChoice.self, .init(codingPath: decoder.codingPath,
                debugDescription: "tool_choice must be auto, none, required or {\"type\": \"function\", \"name\": ...}"))
        }
        self = .function(name: name)
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
    /// Whether the request asks for log probabilities (which this server does not compute).
    var asksForLogprobs: Bool { get }
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
    public var logprobs: Bool?
    public var topLogprobs: Int?

    public var asksForLogprobs: Bool { logprobs == true || (topLogprobs ?? 0) > 0 }

    enum CodingKeys: String, CodingKey {
        case model, messages, tools, temperature, seed, stop, n, stream, logprobs
        case toolChoice = "tool_choice", reasoningEffort = "reasoning_effort", maxTokens = "max_tokens"
        case maxCompletionTokens = "max_completion_tokens", topP = "top_p", streamOptions = "stream_options"
        case topLogprobs = "top_logprobs"
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
    /// The legacy API's logprobs: how many alternatives per token (0: the picked token's only).
    public var logprobs: Int?

    public var asksForLogprobs: Bool { logprobs != nil }

    enum CodingKeys: String, CodingKey {
        case model, prompt, temperature, seed, stop, n, stream, echo, logprobs
        case maxTokens = "max_tokens", topP = "top_p", streamOptions = "stream_options"
    }
}

// MARK: - /v1/responses

/// `input` of /v1/responses: a user message as text, or a list of input items.
public enum ResponseInput: Decodable, Sendable, Equatable {
    case text(String)
    case items([ResponseInputItem])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .text(s) } else { self = .items(try c.decode([ResponseInputItem].self)) }
    }
}

/// One input item: a message (`type` "message" or absent), a `function_call`, a
/// `function_call_output`, or a `reasoning` item of an earlier reply. Which fields an item needs is
/// checked in ResponsesHandler.swift.
public struct ResponseInputItem: Decodable, Sendable, Equatable {
    public var type: String?
    public var role: String?
    public var content: MessageContent?
    public var callId: String?
    public var name: String?
    public var arguments: String?
    public var output: String?

    enum CodingKeys: String, CodingKey {
        case type, role, content, name, arguments, output, callId = "call_id"
    }
}

/// A tool of /v1/responses: `{"type": "function", "name", "description", "parameters"}`.
public struct ResponseTool: Decodable, Sendable, Equatable {
    public var type: String
    public var name: String?
    public var description: String?
    public var parameters: HarmonyJSON?
}

/// `reasoning` of /v1/responses.
public struct ResponseReasoning: Decodable, Sendable, Equatable {
    public var effort: String?
}

/// The body of POST /v1/responses (stateless: `previous_response_id` is refused).
public struct ResponsesRequest: Decodable, SamplingRequest, Equatable {
    public var model: String?
    public var input: ResponseInput
    public var instructions: String?
    public var reasoning: ResponseReasoning?
    public var tools: [ResponseTool]?
    public var toolChoice: ToolChoice?
    public var maxOutputTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var seed: Int64?
    public var stream: Bool?
    public var previousResponseId: String?

    public var maxTokens: Int? { maxOutputTokens }
    public var stop: StringOrList? { nil }
    public var n: Int? { nil }
    public var streamOptions: StreamOptions? { nil }
    public var asksForLogprobs: Bool { false }

    enum CodingKeys: String, CodingKey {
        case model, input, instructions, reasoning, tools, temperature, seed, stream
        case toolChoice = "tool_choice", maxOutputTokens = "max_output_tokens", topP = "top_p"
        case previousResponseId = "previous_response_id"
    }
}
