// The response bodies of the OpenAI-compatible API: chat completions and their stream chunks,
// text completions and their chunks, the model list, and usage. Fields OpenAI sends as `null`
// (`finish_reason` while streaming, `content` of a tool-call reply) are written as null, not
// left out, since clients index them. `APIJSON` is the one encoder every body goes through.
import Foundation

/// Token counts of one request.
public struct Usage: Codable, Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int

    public init(prompt: Int, completion: Int) {
        (promptTokens, completionTokens, totalTokens) = (prompt, completion, prompt + completion)
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
    }
}

/// A tool call of a reply (`tool_calls[i]`); in a stream chunk it also carries its `index`.
public struct ResponseToolCall: Codable, Sendable, Equatable {
    public var index: Int?
    public var id: String
    public var type = "function"
    public var function: FunctionCall

    public init(index: Int? = nil, id: String, function: FunctionCall) {
        (self.index, self.id, self.function) = (index, id, function)
    }
}

/// The assistant message of a chat completion.
public struct AssistantMessage: Codable, Sendable, Equatable {
    public var role = "assistant"
    public var content: String?
    public var reasoningContent: String?
    public var toolCalls: [ResponseToolCall]?

    enum CodingKeys: String, CodingKey {
        case role, content, reasoningContent = "reasoning_content", toolCalls = "tool_calls"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(role, forKey: .role)
        try c.encode(content, forKey: .content)  // null when absent, as OpenAI sends it
        try c.encodeIfPresent(reasoningContent, forKey: .reasoningContent)
        try c.encodeIfPresent(toolCalls, forKey: .toolCalls)
    }
}

/// The body of a non-streamed chat completion.
public struct ChatCompletion: Codable, Sendable, Equatable {
    public struct Choice: Codable, Sendable, Equatable {
        public var index = 0
        public var message: AssistantMessage
        public var finishReason: String
        enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason" }
    }

    public var id: String
    public var object = "chat.completion"
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage
}

/// What one stream chunk adds to the reply.
public struct ChatDeltaBody: Codable, Sendable, Equatable {
    public var role: String?
    public var content: String?
    public var reasoningContent: String?
    public var toolCalls: [ResponseToolCall]?

    public init(role: String? = nil, content: String? = nil, reasoningContent: String? = nil, toolCalls: [ResponseToolCall]? = nil) {
        (self.role, self.content, self.reasoningContent, self.toolCalls) = (role, content, reasoningContent, toolCalls)
    }

    enum CodingKeys: String, CodingKey {
        case role, content, reasoningContent = "reasoning_content", toolCalls = "tool_calls"
    }
}

/// One `chat.completion.chunk` of a stream.
public struct ChatCompletionChunk: Codable, Sendable, Equatable {
    public struct Choice: Codable, Sendable, Equatable {
        public var index = 0
        public var delta: ChatDeltaBody
        public var finishReason: String?
        enum CodingKeys: String, CodingKey { case index, delta, finishReason = "finish_reason" }

        public init(delta: ChatDeltaBody, finishReason: String? = nil) { (self.delta, self.finishReason) = (delta, finishReason) }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(finishReason, forKey: .finishReason)
        }
    }

    public var id: String
    public var object = "chat.completion.chunk"
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?
}

/// The body of a text completion, and (object "text_completion" too) each of its stream chunks.
public struct TextCompletion: Codable, Sendable, Equatable {
    public struct Choice: Codable, Sendable, Equatable {
        public var index = 0
        public var text: String
        public var finishReason: String?
        public var logprobs: String? = nil
        enum CodingKeys: String, CodingKey { case index, text, finishReason = "finish_reason", logprobs }

        public init(text: String, finishReason: String?) { (self.text, self.finishReason) = (text, finishReason) }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(text, forKey: .text)
            try c.encode(logprobs, forKey: .logprobs)
            try c.encode(finishReason, forKey: .finishReason)
        }
    }

    public var id: String
    public var object = "text_completion"
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?
}

/// GET /v1/models.
public struct ModelList: Codable, Sendable, Equatable {
    public struct Model: Codable, Sendable, Equatable {
        public var id: String
        public var object = "model"
        public var created: Int
        public var ownedBy = "osprey"
        enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by" }
    }

    public var object = "list"
    public var data: [Model]
}

/// The JSON encoding of every body this server writes.
enum APIJSON {
    static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        // Every body is a plain struct of strings and numbers: encoding cannot fail.
        guard let data = try? encoder.encode(value) else { return #"{"error":{"message":"encoding failed","type":"server_error","param":null,"code":null}}"# }
        return String(decoding: data, as: UTF8.self)
    }
}
