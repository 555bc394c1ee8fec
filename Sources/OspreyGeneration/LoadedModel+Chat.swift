// Chat on a loaded model: the prompt from messages (harmony or the Jinja template, ChatFormat.swift),
// generation with the chat format's end-of-turn ids added to the eos ids, and the reply read back
// into reasoning, answer and tool calls (ChatReplyParser.swift).
import OspreyCore
import OspreyModels
import OspreyTokenizers

extension LoadedModel {
    /// The chat format, or `ChatError.noChatTemplate` (`GenerationError.noTokenizer` without a tokenizer).
    public func requireChatFormat() throws -> ChatFormat {
        _ = try requireTokenizer()
        guard let chatFormat else { throw ChatError.noChatTemplate(folder: folder.directory.path) }
        return chatFormat
    }

    /// The prompt ids of `messages` (transformers' `apply_chat_template(..., tokenize=True)`).
    public func applyChatTemplate(_ messages: [ChatMessage], addGenerationPrompt: Bool = true,
                                  reasoningEffort: ReasoningEffort? = nil, tools: [ToolSpec] = [],
                                  date: String? = nil) throws -> [Int32] {
        try requireChatFormat().render(messages, addGenerationPrompt: addGenerationPrompt, reasoningEffort: reasoningEffort,
                                       tools: tools, date: date)
    }

    /// `config` (default: this folder's) with the chat format's end-of-turn ids among the eos ids.
    public func chatConfig(_ config: GenerationConfig? = nil) -> GenerationConfig {
        var c = config ?? generationConfig
        for id in chatFormat?.stopTokenIds ?? [] where !c.eosTokenIds.contains(id) { c.eosTokenIds.append(id) }
        return c
    }

    /// The assistant's reply to `messages`.
    public func chat(_ messages: [ChatMessage], config: GenerationConfig? = nil, reasoningEffort: ReasoningEffort? = nil,
                     tools: [ToolSpec] = []) throws -> ChatReply {
        let format = try requireChatFormat()
        let prompt = try format.render(messages, reasoningEffort: reasoningEffort, tools: tools)
        let ids = try OspreyGeneration.generate(model: model, prompt: prompt, config: chatConfig(config))
        return format.parseReply(ids)
    }
}
