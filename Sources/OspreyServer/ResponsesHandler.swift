// POST /v1/responses: the stateless form of OpenAI's Responses API. The input items become the
// same chat messages chat completions renders (planChatMessages in RequestValidation.swift: the
// same chat template or harmony prompt, the same limits), the engine generates, and the same
// ChatReplyStream parses the reply. ResponseOutputBuilder turns its deltas into output items —
// reasoning, an assistant message, function calls — and the stream's named events, so a streamed
// response and a whole one are built by the same code and always agree. `previous_response_id`
// is refused: nothing is stored; the client sends the whole conversation each time.
import Foundation
import Hummingbird
import OspreyGeneration
import OspreyTokenizers

/// Makes the ids of responses and their items (`resp_...`, `msg_...`, `rs_...`, `fc_...`).
enum ResponseID {
    static func make(_ prefix: String) -> String {
        prefix + "_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }
}

/// A response's output items as the reply streams, and the stream events that build them.
struct ResponseOutputBuilder {
    /// The items so far; the last is still open while `open`.
    private(set) var items: [ResponseOutputItem] = []
    private var open = false
    private var sequence = 0
    private let makeID: (String) -> String

    init(makeID: @escaping (String) -> String = ResponseID.make) { self.makeID = makeID }

    /// An event, numbered.
    mutating func event(_ type: String, _ fill: (inout ResponseStreamEvent) -> Void = { _ in }) -> ResponseStreamEvent {
        var e = ResponseStreamEvent(type: type, sequenceNumber: sequence)
        sequence += 1
        fill(&e)
        return e
    }

    /// The events one reply delta adds.
    mutating func add(_ delta: ChatDeltaBody) -> [ResponseStreamEvent] {
        var out: [ResponseStreamEvent] = []
        if let text = delta.reasoningContent, !text.isEmpty {
            out += ensureOpen(.reasoning)
            out.append(appendText(text, type: "response.reasoning_text.delta"))
        }
        if let text = delta.content, !text.isEmpty {
            out += ensureOpen(.message)
            out.append(appendText(text, type: "response.output_text.delta"))
        }
        for call in delta.toolCalls ?? [] {
            out += close()
            let item = ResponseOutputItem(kind: .functionCall(callID: call.id, name: call.function.name), id: makeID("fc"),
                                          text: call.function.arguments, done: false)
            let index = items.count
            items.append(item)
            open = true
            out.append(event("response.output_item.added") { $0.outputIndex = index; $0.item = item })
            out.append(event("response.function_call_arguments.delta") {
                $0.outputIndex = index; $0.itemId = item.id; $0.delta = item.text
            })
            out += close()
        }
        return out
    }

    /// Closes the open item; a reply with neither a message nor a function call gets an empty message.
    mutating func finish() -> [ResponseStreamEvent] {
        var out = close()
        let answered = items.contains { item in
            if case .reasoning = item.kind { return false } else { return true }
        }
        if !answered { out += ensureOpen(.message); out += close() }
        return out
    }

    private mutating func ensureOpen(_ kind: ResponseOutputItem.Kind) -> [ResponseStreamEvent] {
        if open, items.last?.kind == kind { return [] }
        var out = close()
        let item = ResponseOutputItem(kind: kind, id: makeID(kind == .reasoning ? "rs" : "msg"), text: "", done: false)
        let index = items.count
        items.append(item)
        open = true
        out.append(event("response.output_item.added") { $0.outputIndex = index; $0.item = item })
        let part = ResponseContentPart(type: kind == .reasoning ? "reasoning_text" : "output_text", text: "",
                                       annotations: kind == .reasoning ? nil : [])
        out.append(event("response.content_part.added") {
            $0.outputIndex = index; $0.itemId = item.id; $0.contentIndex = 0; $0.part = part
        })
        return out
    }

    private mutating func appendText(_ text: String, type: String) -> ResponseStreamEvent {
        let index = items.count - 1
        items[index].text += text
        let id = items[index].id
        return event(type) { $0.outputIndex = index; $0.itemId = id; $0.contentIndex = 0; $0.delta = text }
    }

    private mutating func close() -> [ResponseStreamEvent] {
        guard open, let last = items.indices.last else { return [] }
        open = false
        items[last].done = true
        let item = items[last]
        var out: [ResponseStreamEvent] = []
        switch item.kind {
        case .reasoning, .message:
            let isMessage = item.kind == .message
            out.append(event(isMessage ? "response.output_text.done" : "response.reasoning_text.done") {
                $0.outputIndex = last; $0.itemId = item.id; $0.contentIndex = 0; $0.text = item.text
            })
            let part = ResponseContentPart(type: isMessage ? "output_text" : "reasoning_text", text: item.text,
                                           annotations: isMessage ? [] : nil)
            out.append(event("response.content_part.done") {
                $0.outputIndex = last; $0.itemId = item.id; $0.contentIndex = 0; $0.part = part
            })
        case .functionCall:
            out.append(event("response.function_call_arguments.done") {
                $0.outputIndex = last; $0.itemId = item.id; $0.arguments = item.text
            })
        }
        out.append(event("response.output_item.done") { $0.outputIndex = last; $0.item = item })
        return out
    }
}

extension ServedModel {
    func responses(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: options.maxBodyBytes)
        let data = Data(body.readableBytesView)
        let req = try JSONDecoder().decode(ResponsesRequest.self, from: data)
        let plan = try planResponses(req, body: data)
        let format = try loaded.requireChatFormat()
        let ticket = try admission.enter()
        let (id, tokens) = try enqueue(prompt: plan.prompt, generation: plan.config)
        let base = ResponseObject(id: ResponseID.make("resp"), createdAt: Int(Date().timeIntervalSince1970), status: "in_progress",
                                  model: name, output: [], usage: nil, instructions: req.instructions,
                                  maxOutputTokens: req.maxOutputTokens, temperature: req.temperature, topP: req.topP)
        guard plan.stream else {
            defer { withExtendedLifetime(ticket) {} }
            var reply = ChatReplyStream(format: format, stop: plan.stop, replyPrefix: plan.replyPrefix)
            var builder = ResponseOutputBuilder()
            var reader = TokenReader(tokens)
            let (generated, finish) = await reader.drain(cancelling: id, on: engine) { t in
                for d in reply.append(t) { _ = builder.add(d) }
                return reply.stopped
            }
            if let error = reader.error ?? Self.cancellation(finish) { throw Self.engineFailure(error) }
            for d in reply.finish() { _ = builder.add(d) }
            _ = builder.finish()
            return Self.json(APIJSON.encode(Self.finalResponse(base, reply: reply, finish: finish, output: builder.items, prompt: plan.prompt.count, generated: generated)))
        }

        let engine = self.engine
        return SSE.response(engine: engine, requestID: id, ticket: ticket) { writer in
            var builder = ResponseOutputBuilder()
            var events = [builder.event("response.created") { $0.response = base },
                          builder.event("response.in_progress") { $0.response = base }]
            var reply = ChatReplyStream(format: format, stop: plan.stop, replyPrefix: plan.replyPrefix)
            for e in events { try await writer.write(SSE.event(e.type, APIJSON.encode(e))) }
            events = []
            var reader = TokenReader(tokens)
            let (generated, finish) = try await reader.drain(cancelling: id, on: engine) { t in
                for d in reply.append(t) {
                    for e in builder.add(d) { try await writer.write(SSE.event(e.type, APIJSON.encode(e))) }
                }
                return reply.stopped
            }
            if let error = reader.error ?? Self.cancellation(finish) {
                let e = Self.engineFailure(error)
                events.append(builder.event("error") { $0.message = e.message; $0.code = e.code ?? e.type; $0.param = e.param })
            } else {
                for d in reply.finish() { events += builder.add(d) }
                events += builder.finish()
                let response = Self.finalResponse(base, reply: reply, finish: finish, output: builder.items, prompt: plan.prompt.count, generated: generated)
                events.append(builder.event(response.status == "completed" ? "response.completed" : "response.incomplete") {
                    $0.response = response
                })
            }
            for e in events { try await writer.write(SSE.event(e.type, APIJSON.encode(e))) }
        }
    }

    /// The finished response: `incomplete` when the token limit cut the reply.
    static func finalResponse(_ base: ResponseObject, reply: ChatReplyStream, finish: FinishReason?, output: [ResponseOutputItem],
                              prompt: Int, generated: Int) -> ResponseObject {
        var r = base
        let cut = reply.finishReason(finish) == "length"
        (r.status, r.incompleteReason) = cut ? ("incomplete", "max_output_tokens") : ("completed", nil)
        r.output = output
        r.usage = ResponseUsage(input: prompt, output: generated)
        return r
    }

    /// The plan of a responses request: its input items as chat messages, its tools as tool specs.
    func planResponses(_ request: ResponsesRequest, body: Data) throws -> GenerationPlan {
        try checkModel(request.model)
        if request.previousResponseId != nil {
            throw APIError.invalid("previous_response_id is not supported: this server stores no responses; send the whole conversation in input",
                                   param: "previous_response_id")
        }
        var messages: [ChatMessage] = []
        if let instructions = request.instructions { messages.append(ChatMessage(role: .system, content: instructions)) }
        messages += try Self.inputMessages(request.input)
        let effort = try Self.reasoningEffort(request.reasoning?.effort, param: "reasoning.effort")
        let tools = request.tools ?? []
        var definitions: [ToolDefinition] = []
        for (i, tool) in tools.enumerated() {
            guard tool.type == "function" else {
                throw APIError.invalid("tools[\(i)].type must be \"function\", got \"\(tool.type)\"", param: "tools[\(i)].type")
            }
            guard let name = tool.name, !name.isEmpty else {
                throw APIError.invalid("tools[\(i)].name is required", param: "tools[\(i)].name")
            }
            definitions.append(ToolDefinition(type: tool.type, function: .init(name: name, description: tool.description,
                                                                               parameters: tool.parameters)))
        }
        let rawTools = definitions.isEmpty ? [] : (try? HarmonyJSON.parse(body))?["tools"]?.arrayValue ?? []
        let specs = try Self.toolSpecs(definitions, choice: request.toolChoice, rawSchemas: rawTools.map { $0["parameters"] })
        let inputs = ChatInputs(messages: messages, effort: effort, tools: specs, forcing: Self.forcedCall(request.toolChoice, tools: specs))
        return try planChatMessages(inputs, sampling: request, maxTokens: request.maxOutputTokens,
                                    maxTokensParam: "max_output_tokens", promptParam: "input", stop: [], includeUsage: false)
    }

    /// `input` as chat messages: function calls join the assistant message before them, and each
    /// output finds its function through `call_id`; a reasoning item goes with the assistant turn after it.
    static func inputMessages(_ input: ResponseInput) throws(APIError) -> [ChatMessage] {
        let items: [ResponseInputItem]
        switch input {
        case .text(let text): return [.user(text)]
        case .items(let list): items = list
        }
        guard !items.isEmpty else { throw APIError.invalid("input must not be empty", param: "input") }
        var (out, callNames, reasoning) = ([ChatMessage](), [String: String](), String?.none)
        func text(_ content: MessageContent?, _ p: String, types: Set<String>) throws(APIError) -> String? {
            switch content {
            case nil: return nil
            case .text(let s)?: return s
            case .parts(let parts)?:
                var joined = ""
                for (j, part) in parts.enumerated() {
                    guard types.contains(part.type), let t = part.text else {
                        throw APIError.invalid("\(p).content[\(j)]: only \(types.sorted().joined(separator: ", ")) parts are supported, got type \"\(part.type)\"",
                                               param: "\(p).content")
                    }
                    joined += t
                }
                return joined
            }
        }
        for (i, item) in items.enumerated() {
            let p = "input[\(i)]"
            switch item.type ?? "message" {
            case "message":
                guard let roleName = item.role, let role = ChatRole(rawValue: roleName), role != .tool else {
                    throw APIError.invalid("\(p).role must be user, system, developer or assistant, got \(item.role.map { "\"\($0)\"" } ?? "none")",
                                           param: "\(p).role")
                }
                guard let content = try text(item.content, p, types: ["input_text", "output_text", "text"]) else {
                    throw APIError.invalid("\(p).content is required", param: "\(p).content")
                }
                var message = ChatMessage(role: role, content: content)
                if role == .assistant { (message.reasoning, reasoning) = (reasoning, nil) }
                out.append(message)
            case "function_call":
                guard let callID = item.callId else { throw APIError.invalid("\(p).call_id is required", param: "\(p).call_id") }
                guard let name = item.name else { throw APIError.invalid("\(p).name is required", param: "\(p).name") }
                guard let arguments = item.arguments else { throw APIError.invalid("\(p).arguments is required", param: "\(p).arguments") }
                callNames[callID] = name
                let call = ToolCall(name: name, arguments: arguments)
                if let last = out.indices.last, out[last].role == .assistant {
                    out[last].toolCalls.append(call)
                } else {
                    out.append(ChatMessage(role: .assistant, content: "", reasoning: reasoning, toolCalls: [call]))
                    reasoning = nil
                }
            case "function_call_output":
                guard let callID = item.callId else { throw APIError.invalid("\(p).call_id is required", param: "\(p).call_id") }
                guard let output = item.output else { throw APIError.invalid("\(p).output is required", param: "\(p).output") }
                guard let name = callNames[callID] else {
                    throw APIError.invalid("\(p).call_id \(callID) answers no function_call earlier in input", param: "\(p).call_id")
                }
                out.append(ChatMessage(role: .tool, content: output, name: name))
            case "reasoning":
                reasoning = try text(item.content, p, types: ["reasoning_text"])
            case let other:
                throw APIError.invalid("\(p).type must be message, function_call, function_call_output or reasoning, got \"\(other)\"",
                                       param: "\(p).type")
            }
        }
        guard out.contains(where: { $0.role != .assistant || !$0.content.isEmpty || !$0.toolCalls.isEmpty }) else {
            throw APIError.invalid("input has no message", param: "input")
        }
        return out
    }
}
