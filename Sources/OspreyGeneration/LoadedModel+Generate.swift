// Text generation on a loaded model: the whole outcome at once (`generate`, which ends early when
// its task is cancelled), or text deltas as an AsyncThrowingStream (`stream`). The stream runs the
// same TextGenerator on a thread of its own; when the consumer stops iterating or its task is
// cancelled the stream terminates, onTermination raises a flag, and the loop, which checks it
// after every token, stops — so generation ends within one token of the consumer leaving.
import Foundation
import OspreyCore
import OspreyModels
import OspreyTokenizers
import Synchronization

extension LoadedModel {
    /// A text generator over `prompt` (settings: `config`, default this folder's).
    public func textGenerator(prompt: [Int32], config: GenerationConfig? = nil, skipSpecialTokens: Bool = false) throws -> TextGenerator {
        try TextGenerator(model: model, tokenizer: requireTokenizer(), prompt: prompt, config: config ?? generationConfig,
                          skipSpecialTokens: skipSpecialTokens)
    }

    /// Generates after `prompt`; returns the ids and their text.
    public func generate(prompt: [Int32], config: GenerationConfig? = nil, skipSpecialTokens: Bool = false) throws -> Generation {
        var generator = try textGenerator(prompt: prompt, config: config, skipSpecialTokens: skipSpecialTokens)
        return try generator.run()
    }

    /// Generates after `text` (encoded with the tokenizer's special tokens).
    public func generate(_ text: String, config: GenerationConfig? = nil, skipSpecialTokens: Bool = false) throws -> Generation {
        try generate(prompt: encode(text), config: config, skipSpecialTokens: skipSpecialTokens)
    }

    /// The generated text after `prompt` as it is decoded, in UTF-8-safe deltas whose
    /// concatenation is `generate(prompt:config:).text`. Stops when the consumer stops.
    public func stream(prompt: [Int32], config: GenerationConfig? = nil,
                       skipSpecialTokens: Bool = false) -> AsyncThrowingStream<String, any Error> {
        stream(config: config, skipSpecialTokens: skipSpecialTokens) { prompt }
    }

    /// The generated text after `text` as it is decoded (see `stream(prompt:)`).
    public func stream(_ text: String, config: GenerationConfig? = nil,
                       skipSpecialTokens: Bool = false) -> AsyncThrowingStream<String, any Error> {
        stream(config: config, skipSpecialTokens: skipSpecialTokens) { try encode(text) }
    }

    private func stream(config: GenerationConfig?, skipSpecialTokens: Bool,
                        prompt: @escaping @Sendable () throws -> [Int32]) -> AsyncThrowingStream<String, any Error> {
        let (stream, continuation) = AsyncThrowingStream<String, any Error>.makeStream()
        let stop = StopFlag()
        // A thread of its own: the loop blocks for every forward pass, which must not hold one of
        // the few threads that run async tasks (the consumer among them).
        let thread = Thread {
            do {
                var generator = try textGenerator(prompt: prompt(), config: config, skipSpecialTokens: skipSpecialTokens)
                while let piece = try generator.next() {
                    if stop.isSet { generator.stop(.cancelled) }
                    guard !piece.isEmpty else { continue }
                    if case .terminated = continuation.yield(piece) { break }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        thread.stackSize = 8 << 20
        continuation.onTermination = { _ in stop.set() }
        thread.start()
        return stream
    }
}

/// Set once, from any thread, when a stream's consumer has gone.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}
