// Server-sent events as OpenAI streams them: each event is `data: <json>\n\n`, the last one
// `data: [DONE]\n\n` (the Responses API names its events instead: `event: NAME\ndata: <json>\n\n`, no [DONE]). `SSE.response` wraps a body writer so that however the body ends — done,
// an engine error (sent as a `data: {"error": ...}` event), or a client that went away (the
// write throws) — the engine request is cancelled if it was still running, which frees its KV
// blocks; the admission ticket is held until then. `TokenReader` reads an engine stream for every
// handler, streamed or not, and times each token's arrival for /metrics (Metrics.swift).
import Hummingbird
import OspreyGeneration

enum SSE {
    /// One event.
    static func event(_ json: String) -> ByteBuffer { ByteBuffer(string: "data: \(json)\n\n") }

    /// One named event (the Responses API's `event: NAME\ndata: <json>\n\n`).
    static func event(_ name: String, _ json: String) -> ByteBuffer { ByteBuffer(string: "event: \(name)\ndata: \(json)\n\n") }

    static let done = ByteBuffer(string: "data: [DONE]\n\n")

    /// A text/event-stream response whose events `produce` writes; `requestID` is cancelled when it returns or throws.
    static func response(engine: Engine, requestID: OspreyGeneration.RequestID, ticket: Admission.Ticket,
                         produce: @escaping @Sendable (inout any ResponseBodyWriter) async throws -> Void) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let body = ResponseBody { writer in
            defer {
                engine.cancel(requestID)  // a no-op when the request already finished
                withExtendedLifetime(ticket) {}
            }
            try await produce(&writer)
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}

/// Reads an engine stream, turning its error into a value so the writer can still report it, and
/// timing each token's arrival for /metrics (time to first token, then every inter-token gap).
struct TokenReader {
    private var iterator: AsyncThrowingStream<GeneratedToken, Error>.AsyncIterator
    private let metrics: ServerMetrics
    /// When the request was added, then when its last token arrived.
    private var previous: ContinuousClock.Instant
    /// The engine's error, once one ended the stream.
    private(set) var error: (any Error)?

    init(_ tokens: TimedTokens) {
        iterator = tokens.stream.makeAsyncIterator()
        (metrics, previous) = (tokens.metrics, tokens.added)
    }

    /// The next event, or nil at the end (or after an error).
    mutating func next() async -> GeneratedToken? {
        do { return try await iterator.next() } catch {
            self.error = error
            return nil
        }
    }

    /// Hands every token to `onToken` until the engine ends the request, or `onToken` says the
    /// reply stopped (a stop string), which cancels request `id` on `engine`. Returns the tokens
    /// generated and the engine's finish reason; an engine error is left in `error`.
    mutating func drain(cancelling id: OspreyGeneration.RequestID, on engine: Engine,
                        _ onToken: (Int32) async throws -> Bool) async rethrows -> (generated: Int, finish: FinishReason?) {
        var (generated, finish) = (0, FinishReason?.none)
        while let event = await next() {
            var stopped = false
            if let t = event.token {
                metrics.tokenArrived(first: generated == 0, previous: &previous)
                generated += 1
                stopped = try await onToken(t)
            }
            if let f = event.finish { finish = f }
            if stopped { engine.cancel(id); break }
        }
        return (generated, finish)
    }
}
