// Text on top of the token loop: each generated id goes through the streaming detokenizer (so a
// delta never splits a UTF-8 character) and the stop-string matcher (so a delta never carries part
// of a stop string). The end-of-sequence id stays in the ids but adds no text. Streaming,
// the non-streamed text API and the CLI all read the same `TextGenerator`, which is why their
// texts agree.
import OspreyCore
import OspreyModels
import OspreyTokenizers

/// The outcome of one generation.
public struct Generation: Sendable, Equatable {
    /// The generated ids (an end-of-sequence id included, as transformers returns it).
    public var ids: [Int32]
    /// Their text, ending before the stop string when one was found.
    public var text: String
    public var finishReason: FinishReason
}

/// Generates text deltas one `next()` at a time.
public struct TextGenerator {
    /// The token loop underneath (its ids, cache and finish reason).
    public private(set) var tokens: TokenIterator
    /// The text released so far.
    public private(set) var text = ""
    private var detokenizer: StreamingDetokenizer
    private var matcher: StopStringMatcher
    private var done = false

    /// - Parameter skipSpecialTokens: leave special tokens out of the text.
    public init(model: any LanguageModel, tokenizer: any Tokenizer, prompt: [Int32], config: GenerationConfig,
                cache: (any KVCache)? = nil, skipSpecialTokens: Bool = false) throws {
        tokens = try TokenIterator(model: model, prompt: prompt, config: config, cache: cache)
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: skipSpecialTokens)
        matcher = StopStringMatcher(config.stopStrings)
    }

    /// The ids generated so far.
    public var ids: [Int32] { tokens.generated }
    /// Why generation ended; nil until `next()` has returned nil or the last piece.
    public var finishReason: FinishReason? { done ? tokens.finishReason : nil }

    /// The next piece of text (empty when a token completes no character yet), or nil once
    /// generation has ended.
    public mutating func next() throws -> String? {
        guard !done else { return nil }
        guard let id = try tokens.next() else {
            done = true
            let rest = try release(detokenizer.finish(), last: true)
            return rest.isEmpty ? nil : rest
        }
        let ended = tokens.finishReason != nil
        var piece = tokens.finishReason == .eos ? "" : try detokenizer.append(Int(id))
        if ended { piece += try detokenizer.finish() }
        done = ended
        return release(piece, last: ended)
    }

    /// Runs to the end; the whole outcome.
    public mutating func run() throws -> Generation {
        while try next() != nil {}
        return Generation(ids: ids, text: text, finishReason: tokens.finishReason ?? .length)
    }

    /// Ends generation now (an interrupt); what is held back is released by the next `next()`.
    public mutating func stop(_ reason: FinishReason = .cancelled) {
        tokens.stop(reason)
    }

    private mutating func release(_ piece: String, last: Bool) -> String {
        var (out, stopped) = matcher.append(piece)
        if stopped {
            tokens.stop(.stop)
            done = true
        } else if last {
            out += matcher.flush()
        }
        text += out
        return out
    }
}
