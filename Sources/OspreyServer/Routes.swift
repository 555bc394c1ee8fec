// The routes of the OpenAI-compatible API and the middleware in front of them. Adding an endpoint
// is one line here plus a handler file beside ChatHandler.swift (ResponsesHandler.swift was the last).
import Foundation
import Hummingbird

extension ServedModel {
    /// The router of every endpoint, behind the request count, error, API key and body limit middleware.
    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RequestCountMiddleware(metrics: metrics))
        router.add(middleware: ErrorMiddleware())
        if let key = options.apiKey { router.add(middleware: APIKeyMiddleware(key: key)) }
        router.add(middleware: BodyLimitMiddleware(maxBytes: options.maxBodyBytes))
        router.get("/health") { _, _ in Self.json(#"{"status":"ok"}"#) }
        router.get("/v1/models") { [self] _, _ in
            Self.json(APIJSON.encode(ModelList(data: [.init(id: name, created: created)])))
        }
        router.get("/metrics") { [self] _, _ in metricsResponse() }
        router.post("/v1/chat/completions") { [self] request, _ in try await chatCompletions(request) }
        router.post("/v1/completions") { [self] request, _ in try await completions(request) }
        router.post("/v1/responses") { [self] request, _ in try await responses(request) }
        return router
    }
}
