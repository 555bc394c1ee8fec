// The response bodies of the OpenAI-compatible API: chat completions and their stream chunks,
// text completions and their chunks, responses (/v1/responses) and their stream events, the model
// list, and usage. Fields OpenAI sends as `null`
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

// MARK: - /v1/responses

/// One item of a response's `output`: reasoning, an assistant message, or a function call. While
/// streaming, an item is first sent open (`done` false: status in_progress, no text yet).
public struct ResponseOutputItem: Encodable, Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case reasoning, message, functionCall(callID: String, name: String) }

    public var kind: Kind
    public var id: String
    /// The reasoning or message text, or the call's arguments.
    public var text: String
    public var done: Bool

    enum CodingKeys: String, CodingKey {
        case type, id, role, status, content, summary, name, arguments, callId = "call_id"
    }

    private struct Part: Encodable {
        var type: String, text: String, annotations: [String]? = nil
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        switch kind {
        case .reasoning:
            try c.encode("reasoning", forKey: .type)
            try c.encode([String](), forKey: .summary)
            try c.encode(done ? [Part(type: "reasoning_text", text: text)] : [], forKey: .content)
        case .message:
            try c.encode("message", forKey: .type)
            try c.encode("assistant", forKey: .role)
            try c.encode(done ? "completed" : "in_progress", forKey: .status)
            try c.encode(done ? [Part(type: "output_text", text: text, annotations: [])] : [], forKey: .content)
        case .functionCall(let callID, let name):
            try c.encode("function_call", forKey: .type)
            try c.encode(callID, forKey: .callId)
            try c.encode(name, forKey: .name)
            try c.encode(done ? text : "", forKey: .arguments)
            try c.encode(done ? "completed" : "in_progress", forKey: .status)
        }
    }
}

/// `usage` of a response.
public struct ResponseUsage: Codable, Sendable, Equatable {
    public var inputTokens: Int
    public var outputTokens: Int
    public var totalTokens: Int

    public init(input: Int, output: Int) { (inputTokens, outputTokens, totalTokens) = (input, output, input + output) }

    enum CodingKeys: String, CodingKey {
        case inputTokens = "input_tokens", outputTokens = "output_tokens", totalTokens = "total_tokens"
    }
}

/// The body of a response (`object: "response"`), whole or inside the stream's lifecycle events.
public struct ResponseObject: Encodable, Sendable, Equatable {
    public var id: String
    public var object = "response"
    public var createdAt: Int
    /// `in_progress` (stream start), `completed` or `incomplete`.
    public var status: String
    /// `max_output_tokens` when the reply was cut by the token limit.
    public var incompleteReason: String?
    public var model: String
    public var output: [ResponseOutputItem]
    public var usage: ResponseUsage?
    public var instructions: String?
    public var maxOutputTokens: Int?
    public var temperature: Double?
    public var topP: Double?

    enum CodingKeys: String, CodingKey {
        case id, object, status, model, output, usage, instructions, temperature, error, tools
        case createdAt = "created_at", incompleteDetails = "incomplete_details", maxOutputTokens = "max_output_tokens"
        case topP = "top_p", parallelToolCalls = "parallel_tool_calls", toolChoice = "tool_choice", metadata
    }

    private struct Incomplete: Encodable { var reason: String }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(status, forKey: .status)
        try c.encode(incompleteReason.map(Incomplete.init), forKey: .incompleteDetails)
        try c.encode(model, forKey: .model)
        try c.encode(output, forKey: .output)
        try c.encode(usage, forKey: .usage)
        try c.encode(instructions, forKey: .instructions)
        try c.encode(maxOutputTokens, forKey: .maxOutputTokens)
        try c.encode(temperature, forKey: .temperature)
        try c.encode(topP, forKey: .topP)
        try c.encodeNil(forKey: .error)
        try c.encode(true, forKey: .parallelToolCalls)
        try c.encode("auto", forKey: .toolChoice)
        try c.encode([String](), forKey: .tools)
        try c.encode([String: String](), forKey: .metadata)
    }
}

/// One event of a /v1/responses stream: `type` is the SSE event name; the other fields are those its type carries.
public struct ResponseStreamEvent: Encodable, Sendable {
    public var type: String
    public var sequenceNumber: Int
    public var response: ResponseObject?
    public var outputIndex: Int?
    public var item: ResponseOutputItem?
    public var itemId: String?
    public var contentIndex: Int?
    public var delta: String?
    public var text: String?
    public var arguments: String?
    public var part: ResponseContentPart?
    /// The `error` event's fields.
    public var message: String?
    public var code: String?
    public var param: String?

    enum CodingKeys: String, CodingKey {
        case type, response, item, delta, text, arguments, part, message, code, param
        case sequenceNumber = "sequence_number", outputIndex = "output_index", itemId = "item_id", contentIndex = "content_index"
    }
}

/// `part` of the content_part events.
public struct ResponseContentPart: Encodable, Sendable {
    public var type: String
    public var text: String
    public var annotations: [String]?
}
