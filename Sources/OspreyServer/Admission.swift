// Admission control for 429: at most `limit` generation requests are in flight (running or waiting
// in the engine) at once; one more is refused at once rather than queued without bound. A request
// holds a `Ticket` for as long as it uses the engine — a streamed one until its body is written —
// and the ticket gives its place back when released, however the request ended.
import Synchronization

/// Counts in-flight generation requests against a limit.
public final class Admission: Sendable {
    /// Requests admitted at most at once.
    public let limit: Int
    private let count = Mutex(0)

    public init(limit: Int) { self.limit = limit }

    /// Requests in flight now.
    public var inFlight: Int { count.withLock { $0 } }

    /// A place for one request, or a 429.
    public func enter() throws(APIError) -> Ticket {
        let admitted = count.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
        guard admitted else {
            throw APIError(status: .tooManyRequests, message: "the server already has \(limit) requests in flight; retry later",
                           type: "rate_limit_error", code: "rate_limit_exceeded")
        }
        return Ticket(self)
    }

    fileprivate func leave() { count.withLock { $0 -= 1 } }

    /// One admitted request's place; released when the ticket is.
    public final class Ticket: Sendable {
        private let admission: Admission
        fileprivate init(_ admission: Admission) { self.admission = admission }
        deinit { admission.leave() }
    }
}
