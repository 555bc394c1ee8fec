// OpenAI-style errors: every failure a client can cause becomes `{"error": {"message", "type",
// "param", "code"}}` with a 4xx status; only a fault of the server itself (a device failure) is
// a 5xx. `APIError(from:)` is the single place that maps the errors of decoding, validation, the
// chat format and the engine to statuses; `ErrorMiddleware` (Middleware.swift) applies it to
// whatever a route throws, so a handler simply throws.
import Foundation
import Hummingbird
import OspreyCore
import OspreyGeneration

/// An error answered as OpenAI answers it.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    /// `invalid_request_error`, `authentication_error`, `not_found_error`, `rate_limit_error`, `server_error`.
    public var type: String
    /// The request field at fault (`messages[2].role`, `max_tokens`), when one is.
    public var param: String?
    public var code: String?

    public init(status: HTTPResponse.Status, message: String, type: String, param: String? = nil, code: String? = nil) {
        (self.status, self.message, self.type, self.param, self.code) = (status, message, type, param, code)
    }

    public var description: String { "\(status.code) \(type): \(message)" }

    /// A 400 naming `param`.
    public static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// 413: the body is over the server's limit.
    public static let tooLarge = APIError(status: .contentTooLarge, message: "the request body is larger than this server accepts",
                                          type: "invalid_request_error", code: "request_too_large")

    /// The OpenAI error for any error a route threw.
    public init(from error: any Error) {
        switch error {
        case let e as APIError:
            self = e
        case let e as DecodingError:
            self = Self.decoding(e)
        case let e as BatchError:
            self = Self.engine(e)
        case let e as OspreyError:
            if case .invalidArgument(let m) = e { self = .invalid(m) } else {
                self = APIError(status: .internalServerError, message: e.description, type: "server_error")
            }
        case let e as ChatError:
            self = .invalid(e.description, param: "messages")
        case let e as GenerationError:
            self = .invalid(e.description)
        case let e as any HTTPResponseError where e.status == .contentTooLarge:  // NIOTooManyBytesError from body collection
            self = .tooLarge
        case let e as HTTPError where e.status == .notFound:
            self = APIError(status: .notFound, message: "no such route", type: "not_found_error", code: "unknown_url")
        case let e as any HTTPResponseError:
            self = APIError(status: e.status, message: "\(e.status.reasonPhrase)", type: e.status.code < 500 ? "invalid_request_error" : "server_error")
        default:
            self = APIError(status: .internalServerError, message: "\(error)", type: "server_error")
        }
    }

    static func decoding(_ error: DecodingError) -> APIError {
        func path(_ keys: [any CodingKey]) -> String? {
            var out = ""
            for key in keys {
                if let i = key.intValue { out += "[\(i)]" } else { out += out.isEmpty ? key.stringValue : ".\(key.stringValue)" }
            }
            return out.isEmpty ? nil : out
        }
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c):
            let field = path(c.codingPath)
            return .invalid("\(field ?? "body") has the wrong type: \(c.debugDescription)", param: field, code: "invalid_type")
        case .keyNotFound(let key, let c):
            let field = path(c.codingPath + [key])
            return .invalid("\(field ?? key.stringValue) is required", param: field, code: "missing_required_parameter")
        case .dataCorrupted(let c):
            return .invalid("the body is not valid JSON: \(c.debugDescription)", param: path(c.codingPath), code: "invalid_json")
        @unknown default:
            return .invalid("the body could not be decoded: \(error)")
        }
    }

    static func engine(_ error: BatchError) -> APIError {
        switch error {
        case .neverFits(_, let needed, let total):
            .invalid("the prompt plus max_tokens needs \(needed) KV blocks but the server's pool has \(total); "
                     + "shorten the prompt or lower max_tokens", param: "max_tokens", code: "context_length_exceeded")
        case .emptyPrompt:
            .invalid("the prompt is empty", param: "prompt")
        case .invalidTokenLimits:
            .invalid("max_tokens must be ≥ 1", param: "max_tokens")
        case .invalidSetting(let why) where why.contains("shutting down"):
            APIError(status: .serviceUnavailable, message: "the server is shutting down", type: "server_error")
        default:
            APIError(status: .internalServerError, message: error.description, type: "server_error")
        }
    }

    /// The body `{"error": {...}}`.
    public var json: String {
        struct Body: Encodable {
            struct Inner: Encodable {
                var message: String, type: String, param: String?, code: String?
                func encode(to encoder: any Encoder) throws {
                    var c = encoder.container(keyedBy: CodingKeys.self)
                    try c.encode(message, forKey: .message)
                    try c.encode(type, forKey: .type)
                    try c.encode(param, forKey: .param)
                    try c.encode(code, forKey: .code)
                }
                enum CodingKeys: String, CodingKey { case message, type, param, code }
            }
            var error: Inner
        }
        return APIJSON.encode(Body(error: .init(message: message, type: type, param: param, code: code)))
    }

    /// The HTTP response carrying this error.
    public var response: Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: json)))
    }
}
