// The middleware every route runs behind, outermost first: `ErrorMiddleware` turns anything thrown
// (including the router's 404) into an OpenAI error body; `APIKeyMiddleware` answers 401 without
// `Authorization: Bearer KEY` when a key is set (GET /health stays open, for load balancers);
// `BodyLimitMiddleware` answers 413 from Content-Length before a byte of an oversized body is read
// (a body without Content-Length is stopped by the handlers' `collect(upTo:)`, same 413).
import Hummingbird

/// Answers every thrown error as OpenAI does (APIError.swift).
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let api = APIError(from: error)
            if api.status.code >= 500 { context.logger.error("\(request.method) \(request.uri.path): \(api.message)") }
            return api.response
        }
    }
}

/// 401 unless the request carries `Authorization: Bearer <key>`.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String
    /// Paths answered without a key.
    let open: Set<String> = ["/health"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !open.contains(request.uri.path) else { return try await next(request, context) }
        guard let header = request.headers[.authorization] else {
            throw APIError(status: .unauthorized, message: "missing Authorization: Bearer header", type: "authentication_error",
                           code: "invalid_api_key")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", constantTimeEqual(String(parts[1]), key) else {
            throw APIError(status: .unauthorized, message: "incorrect API key", type: "authentication_error", code: "invalid_api_key")
        }
        return try await next(request, context)
    }

    private func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<min(x.count, y.count) { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}

/// 413 for a declared Content-Length over `maxBytes`.
struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let maxBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBytes { throw APIError.tooLarge }
        return try await next(request, context)
    }
}
