// `osprey serve`: an OpenAI-compatible HTTP server (OspreyServer) over one model and one
// continuous-batching engine. Binds loopback unless --host says otherwise; prints
// "osprey: serving MODEL on http://HOST:PORT" once it listens (the real port for --port 0), which
// scripts wait for; SIGTERM/SIGINT stop it gracefully (running requests get a deadline, then are
// cancelled). The root command is synchronous, so `run` waits on the async server from a task.
import ArgumentParser
import Dispatch
import Foundation
import OspreyGeneration
import OspreyModels
import OspreyServer

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve a model over an OpenAI-compatible HTTP API.")

    @Option(help: "A Hugging Face model folder (default: the shipped toy model, Models/osprey-tiny-shakespeare).")
    var model: String?

    @Option(help: "Address to bind (default: loopback only).")
    var host = "127.0.0.1"

    @Option(help: "Port to bind (0: any free port; the line printed when ready says which).")
    var port = 8000

    @Option(name: .customLong("api-key"), help: "Require Authorization: Bearer KEY on every route but /health.")
    var apiKey: String?

    @Option(name: .customLong("served-model-name"), help: "The model id clients see (default: the folder's name).")
    var servedModelName: String?

    @Option(help: "cpu, cuda, cuda:N or auto.")
    var device: DeviceChoice = .auto

    @Flag(help: "Expand MXFP4 weights to bf16 at load.")
    var dequantize = false

    @Option(name: .customLong("max-queue"), help: "Generation requests in flight at most; more are answered 429.")
    var maxQueue = 64

    @Option(name: .customLong("max-body-bytes"), help: "Larger request bodies are answered 413.")
    var maxBodyBytes = 4 << 20

    @Option(name: .customLong("default-max-tokens"), help: "max_tokens of a chat request that gives none (clamped to the context left).")
    var defaultMaxTokens = 1024

    @Option(name: .customLong("num-blocks"), help: "KV blocks (default: sized from free GPU memory, or 16k positions on the CPU).")
    var numBlocks: Int?

    @Option(name: .customLong("max-batch-tokens"), help: "Tokens per engine step at most.")
    var maxBatchTokens = 2048

    @Option(name: .customLong("shutdown-deadline"), help: "Seconds running requests get to finish on SIGTERM/SIGINT.")
    var shutdownDeadline = 10.0

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxQueue >= 1 else { throw ValidationError("--max-queue must be ≥ 1") }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be ≥ 1024") }
        guard defaultMaxTokens >= 1 else { throw ValidationError("--default-max-tokens must be ≥ 1") }
        if let n = numBlocks, n < 1 { throw ValidationError("--num-blocks must be ≥ 1") }
        guard maxBatchTokens >= 1 else { throw ValidationError("--max-batch-tokens must be ≥ 1") }
    }

    func run() throws {
        try reportingErrors {
            let loaded = try LoadedModel.load(DefaultModel.folder(for: model), device: device, dequantize: dequantize)
            if let note = loaded.deviceNote { FileHandle.standardError.write(Data("osprey: \(note)\n".utf8)) }
            var options = ServerOptions()
            (options.host, options.port, options.apiKey, options.servedModelName) = (host, port, apiKey, servedModelName)
            (options.maxQueue, options.maxBodyBytes, options.defaultMaxTokens) = (maxQueue, maxBodyBytes, defaultMaxTokens)
            options.shutdownDeadline = shutdownDeadline
            let served = try ServedModel(loaded: loaded, options: options,
                                         batch: BatchConfig(numBlocks: numBlocks, maxBatchTokens: maxBatchTokens))
            let outcome = ServeOutcome()
            let done = DispatchSemaphore(value: 0)
            Task {
                do { try await served.run() } catch { outcome.set(error) }
                done.signal()
            }
            done.wait()
            if let error = outcome.error { throw CLIError("server stopped: \(error)") }
        }
    }
}

/// The error the server task ended with, handed to the waiting main thread.
private final class ServeOutcome: @unchecked Sendable {  // written once by the task before `signal`, read after `wait`
    private(set) var error: (any Error)?
    func set(_ error: any Error) { self.error = error }
}
