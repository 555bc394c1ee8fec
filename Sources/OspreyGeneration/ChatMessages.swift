// The values of a chat, in the shape OpenAI's and transformers' chat APIs use: messages with a
// role and content, an assistant's reasoning and tool calls, tool results, tool declarations, and
// the parsed reply. ChatFormat.swift renders them to prompt ids; ChatReplyParser.swift reads a
// reply back into them.

/// Who wrote a chat message.
public enum ChatRole: String, Sendable, Equatable, CaseIterable {
    case system, developer, user, assistant, tool
}

/// How much a reasoning model should think (harmony's `Reasoning: low|medium|high`).
public enum ReasoningEffort: String, Sendable, Equatable, CaseIterable {
    case low, medium, high
}

/// A call the assistant makes to a function tool.
public struct ToolCall: Sendable, Equatable {
    /// The function's name (without harmony's `functions.` namespace).
    public var name: String
    /// The arguments as JSON text.
    public var arguments: String

    public init(name: String, arguments: String) {
        self.name = name
        self.arguments = arguments
    }
}

/// A function tool the assistant may call.
public struct ToolSpec: Sendable, Equatable {
    public var name: String
    public var description: String
    /// The JSON schema of the arguments, as JSON text (property order is kept).
    public var parameters: String?

    public init(name: String, description: String, parameters: String? = nil) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

/// One message of a chat.
public struct ChatMessage: Sendable, Equatable {
    public var role: ChatRole
    public var content: String
    /// An assistant's reasoning (harmony's analysis channel; `thinking`/`reasoning_content` in templates).
    public var reasoning: String?
    /// An assistant's tool calls.
    public var toolCalls: [ToolCall]
    /// For a `tool` message: the function whose result it is (default: the last call's).
    public var name: String?

    public init(role: ChatRole, content: String, reasoning: String? = nil, toolCalls: [ToolCall] = [], name: String? = nil) {
        (self.role, self.content, self.reasoning, self.toolCalls, self.name) = (role, content, reasoning, toolCalls, name)
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: .system, content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: .user, content: content) }
    public static func assistant(_ content: String, reasoning: String? = nil, toolCalls: [ToolCall] = []) -> ChatMessage {
        ChatMessage(role: .assistant, content: content, reasoning: reasoning, toolCalls: toolCalls)
    }
    public static func tool(_ content: String, name: String? = nil) -> ChatMessage {
        ChatMessage(role: .tool, content: content, name: name)
    }
}

/// An assistant reply read back from generated ids.
public struct ChatReply: Sendable, Equatable {
    /// What the model reasoned (harmony's analysis channel, or a template model's `<think>` block).
    public var reasoning = ""
    /// The answer (harmony's final channel and commentary preambles).
    public var content = ""
    public var toolCalls: [ToolCall] = []
    /// Set when the reply did not follow the model's format; from there on it was read as plain text.
    public var formatError: String?

    public init(reasoning: String = "", content: String = "", toolCalls: [ToolCall] = [], formatError: String? = nil) {
        (self.reasoning, self.content, self.toolCalls, self.formatError) = (reasoning, content, toolCalls, formatError)
    }

    /// The reply as the assistant message to append to the chat history.
    public var message: ChatMessage {
        .assistant(content, reasoning: reasoning.isEmpty ? nil : reasoning, toolCalls: toolCalls)
    }
}

/// A piece of a reply as it streams.
public enum ChatDelta: Sendable, Equatable {
    case reasoning(String)
    case content(String)
    case toolCall(ToolCall)
}

/// Why a chat could not be rendered or generated.
public enum ChatError: Error, CustomStringConvertible, Equatable {
    /// The folder has neither a harmony vocabulary nor a Jinja chat template.
    case noChatTemplate(folder: String)
    /// A message the format cannot express; names the message.
    case invalidMessage(index: Int, String)
    /// A tool's parameter schema is not valid JSON.
    case invalidToolSchema(tool: String, String)
    /// The chat template failed to render (a `raise_exception`, a type error).
    case template(String)

    public var description: String {
        switch self {
        case .noChatTemplate(let folder):
            "\(folder) has no chat template (chat_template.jinja or tokenizer_config.json \"chat_template\") and is not a harmony model"
        case .invalidMessage(let i, let m): "messages[\(i)]: \(m)"
        case .invalidToolSchema(let tool, let m): "tool \(tool): parameters are not valid JSON: \(m)"
        case .template(let m): "chat template: \(m)"
        }
    }
}
