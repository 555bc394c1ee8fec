// POST /v1/completions: a prompt given as text (encoded with the model's tokenizer) or as token
// ids, continued by the engine; the reply is decoded text (special tokens skipped) cut at stop
// strings, whole or streamed as `text_completion` chunks. Same admission, cancellation and
// usage rules as chat (ChatHandler.swift).
import Foundation
import Hummingbird
import OspreyGeneration

extension ServedModel {
    func completions(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: options.maxBodyBytes)
        let completion = try JSONDecoder().decode(CompletionRequest.self, from: Data(body.readableBytesView))
        let plan = try planCompletion(completion)
        let tokenizer = try loaded.requireTokenizer()
        let ticket = try admission.enter()
        let (id, tokens) = try enqueue(prompt: plan.prompt, generation: plan.config)
        let (responseID, created, model) = ("cmpl-" + UUID().uuidString.lowercased(), Int(Date().timeIntervalSince1970), name)

        guard plan.stream else {
            defer { withExtendedLifetime(ticket) {} }
            var reply = TextReplyStream(tokenizer: tokenizer, stop: plan.stop)
            var reader = TokenReader(tokens)
            let (generated, finish) = await reader.drain(cancelling: id, on: engine) { t in _ = reply.append(t); return reply.stopped }
            if let error = reader.error ?? Self.cancellation(finish) { throw Self.engineFailure(error) }
            _ = reply.finish()
            return Self.json(APIJSON.encode(TextCompletion(
                id: responseID, created: created, model: model,
                choices: [.init(text: reply.text, finishReason: reply.finishReason(finish))],
                usage: Usage(prompt: plan.prompt.count, completion: generated))))
        }

        let engine = self.engine
        return SSE.response(engine: engine, requestID: id, ticket: ticket) { writer in
            func chunk(_ text: String, finish: String? = nil, usage: Usage? = nil, last: Bool = false) -> ByteBuffer {
                SSE.event(APIJSON.encode(TextCompletion(id: responseID, created: created, model: model,
                                                        choices: last ? [] : [.init(text: text, finishReason: finish)], usage: usage)))
            }
            var reply = TextReplyStream(tokenizer: tokenizer, stop: plan.stop)
            var reader = TokenReader(tokens)
            let (generated, finish) = try await reader.drain(cancelling: id, on: engine) { t in
                let text = reply.append(t)
                if !text.isEmpty { try await writer.write(chunk(text)) }
                return reply.stopped
            }
            if let error = reader.error ?? Self.cancellation(finish) {
                try await writer.write(SSE.event(Self.engineFailure(error).json))
            } else {
                try await writer.write(chunk(reply.finish(), finish: reply.finishReason(finish)))
                if plan.includeUsage {
                    try await writer.write(chunk("", usage: Usage(prompt: plan.prompt.count, completion: generated), last: true))
                }
            }
            try await writer.write(SSE.done)
        }
    }
}
