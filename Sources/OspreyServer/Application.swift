// Running the server: a Hummingbird Application on the router (Routes.swift) and a service that
// owns the engine, in one ServiceGroup that shuts down gracefully on SIGTERM/SIGINT. The engine
// service is shut down first: running requests get the deadline to finish and are then cancelled
// (their streams end, so their connections close), and new requests are refused meanwhile; then
// the HTTP server stops accepting and waits for the remaining connections.
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// Stops the engine when the service group shuts down.
struct EngineService: Service {
    let served: ServedModel

    func run() async throws {
        try? await gracefulShutdown()
        let served = self.served
        // Engine.shutdown blocks on a condition: keep it off the cooperative pool.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread { served.shutdown(); done.resume() }.start()
        }
    }
}

extension ServedModel {
    /// The HTTP application; `onReady` gets the bound port once it listens (the actual one for port 0).
    public func makeApplication(logger: Logger? = nil, onReady: @escaping @Sendable (Int) -> Void = { _ in })
        -> some ApplicationProtocol {
        Application(router: makeRouter(),
                    configuration: .init(address: .hostname(options.host, port: options.port), serverName: "osprey"),
                    onServerRunning: { channel in onReady(channel.localAddress?.port ?? -1) },
                    logger: logger ?? Self.defaultLogger)
    }

    /// Warnings and errors only (LOG_LEVEL=info|debug|trace for more), so stdout carries the ready line alone.
    static var defaultLogger: Logger {
        var logger = Logger(label: "osprey.server")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return logger
    }

    /// Serves until SIGTERM/SIGINT, printing `osprey: serving NAME on http://HOST:PORT` when ready.
    public func run(logger: Logger? = nil) async throws {
        let app = makeApplication(logger: logger) { [name, options] port in
            FileHandle.standardOutput.write(Data("osprey: serving \(name) on http://\(options.host):\(port)\n".utf8))
        }
        let log = logger ?? Self.defaultLogger
        let group = ServiceGroup(configuration: .init(services: [app, EngineService(served: self)],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: log))
        try await group.run()
    }
}
