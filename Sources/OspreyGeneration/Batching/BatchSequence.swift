// A request of continuous batching and the scheduler's state for it. One counter model covers
// every phase: `tokens` is the prompt plus what was generated so far, `computed` how many of them
// have their KV in the cache; prefill, chunked prefill, recompute after preemption and decode are
// all `computed` catching up with `tokens.count`, and a step that reaches it samples a new token.

/// Identifies one request in the scheduler.
public struct RequestID: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    public let value: Int
    public init(_ value: Int) { self.value = value }
    public init(integerLiteral value: Int) { self.value = value }
    public static func < (a: RequestID, b: RequestID) -> Bool { a.value < b.value }
    public var description: String { "request \(value)" }
}

/// One generation request as the scheduler sees it: ids in, a token limit, ids that end it.
public struct BatchRequest: Sendable {
    public var id: RequestID
    /// Prompt ids (at least one).
    public var prompt: [Int32]
    /// New tokens to generate at most (at least one).
    public var maxNewTokens: Int
    /// Stop tokens (EOS ids) end the request only once this many tokens were generated before them.
    public var minNewTokens: Int
    /// Generating one of these ends the request (it is the last generated id).
    public var stopTokens: Set<Int32>

    public init(id: RequestID, prompt: [Int32], maxNewTokens: Int, stopTokens: Set<Int32> = [], minNewTokens: Int = 0) {
        (self.id, self.prompt, self.maxNewTokens, self.stopTokens, self.minNewTokens) = (id, prompt, maxNewTokens, stopTokens, minNewTokens)
    }
}

/// A request in the scheduler: its tokens, how many are computed, and its block tables.
struct BatchSequence: Sendable {
    let request: BatchRequest
    var tokens: [Int32]
    var computed = 0
    /// One table per group, as BlockManager keeps them; empty while waiting.
    var tables: [[Int32]]

    init(_ request: BatchRequest, groups: Int) {
        (self.request, tokens, tables) = (request, request.prompt, Array(repeating: [], count: groups))
    }

    var generatedCount: Int { tokens.count - request.prompt.count }
    var isDecoding: Bool { computed == tokens.count - 1 }

    /// Records a step of `count` tokens and the token sampled after it; returns why the request
    /// ended, if it did.
    mutating func advance(by count: Int, sampled: Int32?) -> FinishReason? {
        computed += count
        guard let token = sampled else { return nil }
        tokens.append(token)
        if request.stopTokens.contains(token) && generatedCount > request.minNewTokens { return .eos }
        return generatedCount >= request.maxNewTokens ? .length : nil
    }
}
