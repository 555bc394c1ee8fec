// What the server serves: one loaded model behind one continuous-batching Engine, with the
// settings of `osprey serve`. Every generation of every route is an engine request; nothing here
// runs the model itself. `ServerOptions` holds the flags; `ServedModel` owns the engine and
// shuts it down (EngineService in Application.swift calls `shutdown` on SIGTERM/SIGINT).
import Foundation
import OspreyGeneration
import OspreyModels

/// The settings of `osprey serve`.
public struct ServerOptions: Sendable {
    /// Address to bind (loopback unless told otherwise).
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks a free one (the ready line and `onReady` give it).
    public var port = 8000
    /// When set, every route but /health needs `Authorization: Bearer <apiKey>`.
    public var apiKey: String?
    /// The model id clients see (default: the model folder's name).
    public var servedModelName: String?
    /// Generation requests in flight at most; one more is answered 429.
    public var maxQueue = 64
    /// Request bodies larger than this are answered 413.
    public var maxBodyBytes = 4 << 20
    /// `max_tokens` when a request gives none (clamped to what the context has left).
    public var defaultMaxTokens = 1024
    /// Seconds a graceful shutdown lets running requests finish before cancelling them.
    public var shutdownDeadline = 10.0

    public init() {}
}

/// A model, its engine and the server's settings.
public final class ServedModel: Sendable {
    public let loaded: LoadedModel
    public let engine: Engine
    public let options: ServerOptions
    public let admission: Admission
    /// The model id of /v1/models and of every response.
    public let name: String
    /// Seconds since 1970 when the server started (`created` of /v1/models).
    public let created: Int
    /// The model's context length (config.json `max_position_embeddings`).
    public let maxPositions: Int
    /// The series of GET /metrics (Metrics.swift).
    public let metrics = ServerMetrics()

    /// Starts an engine over `loaded` with `batch`'s KV pool.
    public init(loaded: LoadedModel, options: ServerOptions = ServerOptions(), batch: BatchConfig = BatchConfig()) throws {
        self.loaded = loaded
        self.options = options
        engine = try Engine(model: loaded.model, config: batch)
        admission = Admission(limit: max(1, options.maxQueue))
        name = options.servedModelName ?? loaded.folder.directory.standardizedFileURL.lastPathComponent
        created = Int(Date().timeIntervalSince1970)
        struct Head: Decodable { var maxPositionEmbeddings: Int? }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let data = try? Data(contentsOf: loaded.folder.directory.appendingPathComponent("config.json"))
        maxPositions = data.flatMap { try? decoder.decode(Head.self, from: $0).maxPositionEmbeddings } ?? 131_072
    }

    /// Stops the engine: running requests get `deadline` seconds to finish, then are cancelled.
    public func shutdown(deadline: Double? = nil) {
        engine.shutdown(drain: true, deadline: deadline ?? options.shutdownDeadline)
    }
}
