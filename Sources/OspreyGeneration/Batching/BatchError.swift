// Errors of continuous batching: requests the scheduler refuses, pools too small, layouts that make
// no sense, and results handed back that do not match the batch. Each message names what is wrong.

/// Why the scheduler or block manager refused something.
public enum BatchError: Error, Equatable, CustomStringConvertible {
    /// A request with no prompt tokens.
    case emptyPrompt(RequestID)
    /// A request asking for fewer than one new token, or a negative minimum.
    case invalidTokenLimits(RequestID, maxNewTokens: Int, minNewTokens: Int)
    /// A request whose id is already waiting or running.
    case duplicateRequest(RequestID)
    /// A request that needs more blocks than the whole pool, even with the pool to itself.
    case neverFits(RequestID, blocksNeeded: Int, numBlocks: Int)
    /// Not enough free blocks for a step.
    case outOfBlocks(needed: Int, free: Int)
    /// A block size, window or group list that cannot describe a cache.
    case invalidLayout(String)
    /// A scheduler setting out of range.
    case invalidSetting(String)
    /// `complete` got no sampled token for an entry that samples.
    case missingSample(RequestID)
    /// `complete` got a batch whose entry no longer matches the request (completed twice, or preempted since).
    case staleBatch(RequestID, start: Int, computed: Int)

    public var description: String {
        switch self {
        case .emptyPrompt(let id): "\(id) has an empty prompt"
        case .invalidTokenLimits(let id, let maxNew, let minNew):
            "\(id) asks for max_new_tokens \(maxNew) and min_new_tokens \(minNew); need max ≥ 1 and min ≥ 0"
        case .duplicateRequest(let id): "\(id) is already scheduled"
        case .neverFits(let id, let needed, let total):
            "\(id) needs \(needed) KV blocks at its longest but the pool has only \(total); shorten it or grow the pool"
        case .outOfBlocks(let needed, let free): "the step needs \(needed) more KV blocks but only \(free) are free"
        case .invalidLayout(let why): "invalid KV block layout: \(why)"
        case .invalidSetting(let why): "invalid scheduler setting: \(why)"
        case .missingSample(let id): "no sampled token was given for \(id), whose entry samples"
        case .staleBatch(let id, let start, let computed):
            "the batch entry of \(id) starts at \(start) but the request has \(computed) tokens computed (stale batch)"
        }
    }
}
