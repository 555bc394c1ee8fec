// POST /v1/chat/completions: decode, plan (RequestValidation.swift), take an admission ticket, add
// the request to the engine, then either collect the whole reply or stream it as
// `chat.completion.chunk` events. Both paths feed the same ChatReplyStream, so a streamed reply
// concatenates to the non-streamed one. A stop string ends the reply early and cancels the
// engine request; so does a client that disconnects mid-stream (SSE.swift).
import Foundation
import Hummingbird
import OspreyGeneration

extension ServedModel {
    func chatCompletions(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: options.maxBodyBytes)
        let data = Data(body.readableBytesView)
        let chat = try JSONDecoder().decode(ChatCompletionRequest.self, from: data)
        let plan = try planChat(chat, body: data)
        let format = try loaded.requireChatFormat()
        let ticket = try admission.enter()
        let (id, tokens) = try enqueue(prompt: plan.prompt, generation: plan.config)
        let (responseID, created, model) = ("chatcmpl-" + UUID().uuidString.lowercased(), Int(Date().timeIntervalSince1970), name)

        guard plan.stream else {
            defer { withExtendedLifetime(ticket) {} }
            var reply = ChatReplyStream(format: format, stop: plan.stop, replyPrefix: plan.replyPrefix)
            var reader = TokenReader(tokens)
            let (generated, finish) = await reader.drain(cancelling: id, on: engine) { t in _ = reply.append(t); return reply.stopped }
            if let error = reader.error ?? Self.cancellation(finish) { throw Self.engineFailure(error) }
            _ = reply.finish()
            let completion = ChatCompletion(id: responseID, created: created, model: model,
                                            choices: [.init(message: reply.message, finishReason: reply.finishReason(finish))],
                                            usage: Usage(prompt: plan.prompt.count, completion: generated))
            return Self.json(APIJSON.encode(completion))
        }

        let engine = self.engine
        return SSE.response(engine: engine, requestID: id, ticket: ticket) { writer in
            func chunk(_ delta: ChatDeltaBody, finish: String? = nil) -> ByteBuffer {
                SSE.event(APIJSON.encode(ChatCompletionChunk(id: responseID, created: created, model: model,
                                                             choices: [.init(delta: delta, finishReason: finish)])))
            }
            try await writer.write(chunk(ChatDeltaBody(role: "assistant", content: "")))
            var reply = ChatReplyStream(format: format, stop: plan.stop, replyPrefix: plan.replyPrefix)
            var reader = TokenReader(tokens)
            let (generated, finish) = try await reader.drain(cancelling: id, on: engine) { t in
                for delta in reply.append(t) { try await writer.write(chunk(delta)) }
                return reply.stopped
            }
            if let error = reader.error ?? Self.cancellation(finish) {
                try await writer.write(SSE.event(Self.engineFailure(error).json))
            } else {
                for delta in reply.finish() { try await writer.write(chunk(delta)) }
                try await writer.write(chunk(ChatDeltaBody(), finish: reply.finishReason(finish)))
                if plan.includeUsage {
                    try await writer.write(SSE.event(APIJSON.encode(ChatCompletionChunk(
                        id: responseID, created: created, model: model, choices: [],
                        usage: Usage(prompt: plan.prompt.count, completion: generated)))))
                }
            }
            try await writer.write(SSE.done)
        }
    }

    /// An error that ended an engine stream (a device failure, a shutdown): never the client's fault.
    static func engineFailure(_ error: any Error) -> APIError {
        if let e = error as? APIError { return e }
        return APIError(status: .internalServerError, message: "generation failed: \(error)", type: "server_error")
    }

    /// A request the engine cancelled (not this handler: a stop string breaks out before the finish) — a shutdown.
    static func cancellation(_ finish: FinishReason?) -> (any Error)? {
        guard finish == .cancelled else { return nil }
        return APIError(status: .serviceUnavailable, message: "the request was cancelled: the server is shutting down",
                        type: "server_error", code: "cancelled")
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
