// Helpers of the server tests: a tiny random gpt-oss folder with a byte-level harmony tokenizer
// (written once per process), a ServedModel over it on the CPU, requests through HummingbirdTesting's
// router client (no socket), and readers for JSON bodies and SSE streams.
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import OspreyGeneration
import OspreyModels
import OspreyServer

enum Fixture {
    /// The random model folder, shared by every test of the process.
    static let folder: URL = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("osprey-server-\(UUID().uuidString)")
        var shape = GptOssShape()
        (shape.vocab, shape.tokenizer) = (300, true)
        try! RandomGptOss.write(shape, to: dir, seed: 3)
        return dir
    }()

    static func loaded() throws -> LoadedModel { try LoadedModel.load(folder, device: .cpu) }
}

/// A served random model, shut down after `body`.
func withServed<T>(_ options: ServerOptions = ServerOptions(), numBlocks: Int = 128, loaded: LoadedModel? = nil,
                   _ body: (ServedModel) async throws -> T) async throws -> T {
    var options = options
    options.servedModelName = options.servedModelName ?? "tiny"
    let served = try ServedModel(loaded: try loaded ?? Fixture.loaded(), options: options,
                                 batch: BatchConfig(numBlocks: numBlocks))
    defer { served.shutdown(deadline: 1) }
    return try await body(served)
}

/// Runs `body` with a router test client of `served`.
func withClient(_ served: ServedModel, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
    try await served.makeApplication().test(.router) { client in try await body(client) }
}

extension TestClientProtocol {
    /// POSTs `json` to `uri`.
    func post(_ uri: String, _ json: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var h = headers
        h[.contentType] = "application/json"
        return try await execute(uri: uri, method: .post, headers: h, body: ByteBuffer(string: json))
    }
}

extension TestResponse {
    var text: String { body.getString(at: body.readerIndex, length: body.readableBytes) ?? "" }

    /// The body as a JSON object.
    func object() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }

    /// The `error` object of an error body.
    func error() throws -> [String: Any] {
        try #require(try object()["error"] as? [String: Any], "no error object: \(text)")
    }

    /// The JSON objects of an SSE body, checking the framing: `data: ...\n\n` events, the last `data: [DONE]`.
    func events() throws -> [[String: Any]] {
        let raw = text
        #expect(raw.hasSuffix("data: [DONE]\n\n"), "stream does not end with [DONE]: \(raw.suffix(80))")
        let events = raw.components(separatedBy: "\n\n").dropLast()  // the text after the last "\n\n" is empty
        #expect(events.allSatisfy { $0.hasPrefix("data: ") && !$0.dropFirst(6).contains("\n") })
        #expect(events.last == "data: [DONE]")
        return try events.dropLast().map { event in
            try #require(try JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any])
        }
    }
}

/// The `choices[0]` of a response or chunk.
func firstChoice(_ object: [String: Any]) -> [String: Any]? { (object["choices"] as? [[String: Any]])?.first }
