// A client that goes away mid-stream cancels its engine request: a real server on a loopback port
// (port 0, the bound port read from onServerRunning), a raw socket that sends a streaming request,
// reads the first events and closes; then the engine must show the request cancelled, all KV
// blocks free and the admission place given back. The model has no end-of-sequence ids here, so
// the request could only have ended by cancellation.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Testing
import OspreyGeneration
import OspreyServer

@Suite struct DisconnectTests {
    @Test func droppedStreamCancelsItsRequest() async throws {
        let base = try Fixture.loaded()
        var generation = base.generationConfig
        generation.eosTokenIds = []
        let loaded = LoadedModel(folder: base.folder, model: base.model, tokenizer: base.tokenizer,
                                 generationConfig: generation, chatFormat: base.chatFormat)
        var options = ServerOptions()
        options.port = 0
        try await withServed(options, numBlocks: 512, loaded: loaded) { served in
            let (ports, ready) = AsyncStream<Int>.makeStream()
            let app = served.makeApplication(onReady: { ready.yield($0) })
            let server = Task { try await app.run() }
            defer { server.cancel() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            #expect(port > 0)

            let body = #"{"prompt": "Hi", "max_tokens": 3000, "temperature": 0, "stream": true}"#
            let request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
            let received = try await RawClient.send(request, port: port, until: { $0.components(separatedBy: "data: ").count > 2 })
            #expect(received.hasPrefix("HTTP/1.1 200"))
            #expect(received.contains("data: {"))

            var metrics = served.engine.metrics
            for _ in 0..<400 where metrics.requestsCancelled == 0 || metrics.scheduler.freeBlocks != metrics.totalBlocks {
                try await Task.sleep(for: .milliseconds(25))
                metrics = served.engine.metrics
            }
            #expect(metrics.requestsCancelled == 1)
            #expect(metrics.requestsFinished == 0)
            #expect(metrics.scheduler.running == 0 && metrics.scheduler.waiting == 0)
            #expect(metrics.scheduler.freeBlocks == metrics.totalBlocks)
            #expect(metrics.tokensGenerated < 3000)
            for _ in 0..<100 where served.admission.inFlight != 0 { try await Task.sleep(for: .milliseconds(20)) }
            #expect(served.admission.inFlight == 0)
        }
    }
}

/// A blocking socket client on a thread of its own (never on the cooperative pool).
enum RawClient {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Sends `request` to 127.0.0.1:`port`, reads until `until` holds for what came back, then closes.
    static func send(_ request: String, port: Int, until: @escaping @Sendable (String) -> Bool) async throws -> String {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<String, any Error>) in
            Thread { done.resume(with: Result { try exchange(request, port: port, until: until) }) }.start()
        }
    }

    private static func exchange(_ request: String, port: Int, until: (String) -> Bool) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect failed: \(errno)") }
        let bytes = Array(request.utf8)
        guard Glibc.send(fd, bytes, bytes.count, 0) == bytes.count else { throw Failure(description: "send failed") }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !until(String(decoding: received, as: UTF8.self)) {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { throw Failure(description: "connection ended after \(received.count) bytes") }
            received += buffer[..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
