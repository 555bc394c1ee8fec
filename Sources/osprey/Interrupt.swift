// Ctrl-C for commands that generate: the first SIGINT during a generation asks that generation to
// stop (the token loop polls `stopRequested` between tokens), and the command goes on; a second
// one during the same generation, or one while no generation runs (at the chat prompt), exits
// with status 130 as an interrupted program does. SIGINT is taken from its default action and
// delivered through a DispatchSource on a global queue, never in signal-handler context.
import Dispatch
import Foundation
import Synchronization

// @unchecked: the dispatch source is set up in init and never touched again; the state is atomic.
final class Interrupts: @unchecked Sendable {
    private enum State: Int { case idle, generating, stopRequested }
    private let state = Atomic<Int>(State.idle.rawValue)
    private let source: any DispatchSourceSignal

    /// Installs the handler (once per process).
    init() {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [self] in  // a deliberate cycle: the handler lives as long as the process
            let (exchanged, _) = state.compareExchange(expected: State.generating.rawValue,
                                                       desired: State.stopRequested.rawValue, ordering: .sequentiallyConsistent)
            if !exchanged {
                FileHandle.standardError.write(Data("\n".utf8))
                exit(130)
            }
        }
        source.resume()
    }

    /// Runs `body` as one generation that Ctrl-C may stop.
    func generation<T>(_ body: () throws -> T) rethrows -> T {
        state.store(State.generating.rawValue, ordering: .sequentiallyConsistent)
        defer { state.store(State.idle.rawValue, ordering: .sequentiallyConsistent) }
        return try body()
    }

    /// Whether Ctrl-C asked the running generation to stop.
    var stopRequested: Bool { state.load(ordering: .sequentiallyConsistent) == State.stopRequested.rawValue }
}
