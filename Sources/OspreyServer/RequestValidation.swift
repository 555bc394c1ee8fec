// Turning a decoded request into an engine request: the prompt ids, the GenerationConfig and the
// stop strings, with every limit checked first so a bad request is a 400 naming its `param` and
// never reaches the engine. Chat messages map to OspreyGeneration's ChatMessage (tool results
// find their function through `tool_call_id`); tools become ToolSpecs whose schema text keeps the
// client's property order (harmony renders properties in that order). A tool_choice of "required"
// or a named function is enforced by prefilling the start of the reply (ChatFormat.replyPrefix).
import Foundation
import OspreyGeneration
import OspreyTokenizers

/// A request ready for the engine.
struct GenerationPlan: Sendable {
    var prompt: [Int32]
    var config: GenerationConfig
    /// Matched on the reply text by the handler (the engine knows ids only).
    var stop: [String]
    var stream: Bool
    var includeUsage: Bool
    /// The end of `prompt` that starts the reply (a forced tool call's prefilled header); the
    /// reply parser reads it first.
    var replyPrefix: [Int32] = []
}

/// A chat request's prompt as planned: the messages, tools and forced call to render.
struct ChatInputs {
    var messages: [ChatMessage]
    var effort: ReasoningEffort?
    var tools: [ToolSpec]
    var forcing: ForcedToolCall?
}

extension ServedModel {
    /// The plan of a chat request; `body` is the raw JSON (re-read for the tools' schema order).
    func planChat(_ request: ChatCompletionRequest, body: Data) throws -> GenerationPlan {
        try checkModel(request.model)
        let inputs = try Self.chatInputs(request, body: body)
        let maxTokens = request.maxCompletionTokens ?? request.maxTokens
        let param = request.maxCompletionTokens != nil ? "max_completion_tokens" : "max_tokens"
        return try planChatMessages(inputs, sampling: request, maxTokens: maxTokens, maxTokensParam: param,
                                    promptParam: "messages", stop: try Self.stops(request),
                                    includeUsage: request.streamOptions?.includeUsage ?? false)
    }

    /// The prompt ids /v1/chat/completions feeds the model for the request `body` (JSON), ending
    /// with `replyPrefix` when tool_choice forces a call. `osprey chat-prompt` prints them, so that
    /// tools which make or check models (tools/train_tool_caller.py) use the server's own prompts.
    public static func chatPrompt(body: Data, loaded: LoadedModel) throws -> (prompt: [Int32], replyPrefix: [Int32]) {
        let request = try JSONDecoder().decode(ChatCompletionRequest.self, from: body)
        return try renderChat(chatInputs(request, body: body), loaded: loaded, promptParam: "messages")
    }

    /// A chat request's messages, reasoning effort, tools and forced call, checked.
    static func chatInputs(_ request: ChatCompletionRequest, body: Data) throws -> ChatInputs {
        guard !request.messages.isEmpty else { throw APIError.invalid("messages must not be empty", param: "messages") }
        let messages = try chatMessages(request.messages)
        let effort = try reasoningEffort(request.reasoningEffort, param: "reasoning_effort")
        // The schemas as the client wrote them (property order kept), from the raw body.
        let rawTools = (try? HarmonyJSON.parse(body))?["tools"]?.arrayValue ?? []
        let tools = try toolSpecs(request.tools ?? [], choice: request.toolChoice,
                                  rawSchemas: rawTools.map { $0["function"]?["parameters"] })
        return ChatInputs(messages: messages, effort: effort, tools: tools, forcing: forcedCall(request.toolChoice, tools: tools))
    }

    /// The plan of chat messages, whichever endpoint they came from (chat completions, responses):
    /// the same chat template / harmony rendering, the same limits.
    func planChatMessages(_ inputs: ChatInputs, sampling: some SamplingRequest, maxTokens: Int?, maxTokensParam: String,
                          promptParam: String, stop: [String], includeUsage: Bool) throws -> GenerationPlan {
        let (prompt, prefix) = try Self.renderChat(inputs, loaded: loaded, promptParam: promptParam)
        let config = try generationConfig(sampling, maxTokens: maxTokens, maxTokensParam: maxTokensParam, prompt: prompt,
                                          promptParam: promptParam, base: loaded.chatConfig())
        return GenerationPlan(prompt: prompt, config: config, stop: stop, stream: sampling.stream ?? false,
                              includeUsage: includeUsage, replyPrefix: prefix)
    }

    /// The prompt ids of `inputs`: the rendered chat, then the reply prefix that forces a tool call
    /// (ChatFormat.replyPrefix; none for a template model, where tool_choice is only declared).
    static func renderChat(_ inputs: ChatInputs, loaded: LoadedModel, promptParam: String) throws -> (prompt: [Int32], replyPrefix: [Int32]) {
        do {
            let prompt = try loaded.applyChatTemplate(inputs.messages, reasoningEffort: inputs.effort, tools: inputs.tools)
            let prefix = try inputs.forcing.flatMap { try loaded.requireChatFormat().replyPrefix(forcing: $0) } ?? []
            return (prompt + prefix, prefix)
        } catch let error as ChatError {
            // 400 naming the message (APIError.swift), or the model's lack of a chat format
            if promptParam == "messages" { throw error }
            throw APIError.invalid(error.description, param: promptParam)
        } catch {
            throw APIError.invalid("the \(promptParam) could not be rendered: \(error)", param: promptParam)
        }
    }

    static func reasoningEffort(_ e: String?, param: String) throws(APIError) -> ReasoningEffort? {
        guard let e else { return nil }
        guard let v = ReasoningEffort(rawValue: e) else {
            throw APIError.invalid("\(param) must be low, medium or high, got \"\(e)\"", param: param)
        }
        return v
    }

    /// The plan of a text completion.
    func planCompletion(_ request: CompletionRequest) throws -> GenerationPlan {
        try checkModel(request.model)
        _ = try loaded.requireTokenizer()
        let prompt: [Int32]
        switch request.prompt {
        case .text(let text):
            do { prompt = try loaded.encode(text) } catch {
                throw APIError.invalid("the prompt could not be encoded: \(error)", param: "prompt")
            }
        case .tokens(let ids):
            let vocab = loaded.model.vocabularySize
            if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= vocab }) {
                throw APIError.invalid("prompt[\(bad)] = \(ids[bad]) is not a token id of this model (0..<\(vocab))", param: "prompt")
            }
            prompt = ids.map { Int32($0) }
        }
        guard !prompt.isEmpty else { throw APIError.invalid("prompt must not be empty", param: "prompt") }
        if request.echo == true { throw APIError.invalid("echo is not supported", param: "echo") }
        let config = try generationConfig(request, maxTokens: request.maxTokens ?? 16, maxTokensParam: "max_tokens",
                                          prompt: prompt, promptParam: "prompt", base: loaded.generationConfig)
        return GenerationPlan(prompt: prompt, config: config, stop: try Self.stops(request), stream: request.stream ?? false,
                              includeUsage: request.streamOptions?.includeUsage ?? false)
    }

    // MARK: - Shared checks

    /// 404 for a model other than the served one, as OpenAI and vLLM answer (no `model` is accepted).
    func checkModel(_ model: String?) throws(APIError) {
        guard let model, model != name else { return }
        throw APIError(status: .notFound, message: "the model \(model) does not exist; this server serves \(name)",
                       type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    private func generationConfig(_ request: some SamplingRequest, maxTokens: Int?, maxTokensParam: String, prompt: [Int32],
                                  promptParam: String, base: GenerationConfig) throws(APIError) -> GenerationConfig {
        if let n = request.n, n != 1 { throw APIError.invalid("only n = 1 is supported, got \(n)", param: "n") }
        if request.asksForLogprobs {
            // Picks happen on the device; log probabilities would need each asking request's logits row on
            // the host. Refused rather than answered with `logprobs: null`.
            throw APIError.invalid("logprobs are not supported by this server", param: "logprobs")
        }
        let room = maxPositions - prompt.count
        guard room >= 1 else {
            throw APIError.invalid("the prompt is \(prompt.count) tokens but the model's context is \(maxPositions)",
                                   param: promptParam, code: "context_length_exceeded")
        }
        var c = base
        // The OpenAI API has no top_k: transformers' default of 50 applies only where the folder's
        // generation_config.json sets top_k itself (vLLM does the same), so a plain request samples
        // from the whole distribution (and is drawn on the device).
        if loaded.folder.generationDefaults?.topK == nil { c.topK = nil }
        if let m = maxTokens {
            guard m >= 1 else { throw APIError.invalid("\(maxTokensParam) must be ≥ 1, got \(m)", param: maxTokensParam) }
            guard m <= room else {
                throw APIError.invalid("the prompt (\(prompt.count) tokens) plus \(maxTokensParam) (\(m)) exceeds the model's context of \(maxPositions)",
                                       param: maxTokensParam, code: "context_length_exceeded")
            }
            c.maxNewTokens = m
        } else {
            c.maxNewTokens = min(options.defaultMaxTokens, room)
        }
        c.minNewTokens = min(c.minNewTokens, c.maxNewTokens)
        if let t = request.temperature {
            guard t.isFinite, t >= 0, t <= 2 else { throw APIError.invalid("temperature must be in [0, 2], got \(t)", param: "temperature") }
            c.temperature = Float(t)
            c.doSample = t > 0
        }
        if let p = request.topP {
            guard p.isFinite, p > 0, p <= 1 else { throw APIError.invalid("top_p must be in (0, 1], got \(p)", param: "top_p") }
            c.topP = Float(p)
        }
        c.seed = request.seed.map { UInt64(bitPattern: $0) } ?? UInt64.random(in: 0...UInt64.max)
        c.stopStrings = []
        return c
    }

    private static func stops(_ request: some SamplingRequest) throws(APIError) -> [String] {
        let stops = request.stop?.values ?? []
        guard stops.count <= 16 else { throw APIError.invalid("stop takes at most 16 strings, got \(stops.count)", param: "stop") }
        guard !stops.contains("") else { throw APIError.invalid("stop strings must not be empty", param: "stop") }
        return stops
    }

    // MARK: - Messages and tools

    static func chatMessages(_ messages: [RequestMessage]) throws(APIError) -> [ChatMessage] {
        var callNames: [String: String] = [:]  // tool_call_id -> function name
        var out: [ChatMessage] = []
        for (i, m) in messages.enumerated() {
            guard let role = ChatRole(rawValue: m.role) else {
                throw APIError.invalid("messages[\(i)].role must be system, developer, user, assistant or tool, got \"\(m.role)\"",
                                       param: "messages[\(i)].role")
            }
            let text: String
            switch m.content {
            case .text(let s)?: text = s
            case .parts(let parts)?:
                var joined = ""
                for (j, part) in parts.enumerated() {
                    guard part.type == "text", let t = part.text else {
                        throw APIError.invalid("messages[\(i)].content[\(j)]: only text parts are supported, got type \"\(part.type)\"",
                                               param: "messages[\(i)].content")
                    }
                    joined += t
                }
                text = joined
            case nil:
                guard role == .assistant else {
                    throw APIError.invalid("messages[\(i)].content is required for role \(m.role)", param: "messages[\(i)].content")
                }
                text = ""
            }
            var message = ChatMessage(role: role, content: text, reasoning: m.reasoningContent ?? m.reasoning)
            if role == .assistant {
                for call in m.toolCalls ?? [] {
                    message.toolCalls.append(ToolCall(name: call.function.name, arguments: call.function.arguments))
                    if let id = call.id { callNames[id] = call.function.name }
                }
            }
            if role == .tool { message.name = m.toolCallId.flatMap { callNames[$0] } ?? m.name }
            out.append(message)
        }
        return out
    }

    /// The call tool_choice forces: a named function, or for "required" the only tool when there is
    /// one (then the whole header can be prefilled), else any function.
    static func forcedCall(_ choice: ToolChoice?, tools: [ToolSpec]) -> ForcedToolCall? {
        switch choice {
        case .function(let name)?: return .function(name)
        case .mode("required")?: return tools.count == 1 ? .function(tools[0].name) : .anyFunction
        default: return nil
        }
    }

    /// The tools the prompt declares (none for tool_choice "none"); `rawSchemas[i]` is tool i's
    /// `parameters` as the client wrote it (property order kept), when the raw body had it.
    static func toolSpecs(_ tools: [ToolDefinition], choice: ToolChoice?, rawSchemas: [HarmonyJSON?]) throws(APIError) -> [ToolSpec] {
        for (i, tool) in tools.enumerated() where tool.type != "function" {
            throw APIError.invalid("tools[\(i)].type must be \"function\", got \"\(tool.type)\"", param: "tools[\(i)].type")
        }
        switch choice {
        case nil, .mode("auto")?, .mode("required")?: break
        case .mode("none")?: return []
        case .mode(let other)?:
            throw APIError.invalid("tool_choice must be auto, none, required or a function, got \"\(other)\"", param: "tool_choice")
        case .function(let name)?:
            guard tools.contains(where: { $0.function.name == name }) else {
                throw APIError.invalid("tool_choice names \(name), which is not among tools", param: "tool_choice")
            }
        }
        if case .mode("required")? = choice, tools.isEmpty {
            throw APIError.invalid("tool_choice \"required\" needs tools", param: "tool_choice")
        }
        return tools.enumerated().map { i, tool in
            let schema = i < rawSchemas.count ? rawSchemas[i] : tool.function.parameters
            return ToolSpec(name: tool.function.name, description: tool.function.description ?? "",
                            parameters: schema.flatMap { $0.isNull ? nil : $0.compactText })
        }
    }
}
