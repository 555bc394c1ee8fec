// Greedy decoding with the pick on the device and the host one step behind: step n + 1 is queued
// (its input is step n's argmax, still on the device) before the host waits for token n, so the
// device never idles while the host issues work, and a decode step moves 4 bytes to the host
// instead of a row of logits. An end-of-sequence token is seen one step late; the extra step's
// token is dropped (the cache then holds one position more than was returned). `TokenIterator`
// uses this for plain greedy decoding on a GPU; on the CPU it is plain greedy decoding.
import OspreyCore
import OspreyModels

/// The state of one pipelined greedy generation: two device slots for the picked ids, and the
/// copy of the last one in flight to the host.
struct GreedyPipeline {
    private let slots: [Tensor]
    private var pending: PendingDownload?
    private var step = 0

    init(backend: any Backend) throws {
        slots = [try backend.makeBuffer([1], dtype: .i32), try backend.makeBuffer([1], dtype: .i32)]
    }

    /// The next id: the first call prefills `prompt`. When `more` is set, the step after this one
    /// is queued before waiting for this one.
    mutating func next(model: any LanguageModel, cache: any KVCache, prompt: [Int32], more: Bool) throws -> Int32 {
        let b = model.backend
        if pending == nil {
            try b.argmax(model.forward(prompt, cache: cache, allPositions: false), into: slots[step % 2])
            pending = try b.startDownload(slots[step % 2])
        }
        var queued: PendingDownload?
        if more {
            let next = slots[(step + 1) % 2]
            try b.argmax(model.forward(tokens: slots[step % 2], cache: cache, allPositions: false), into: next)
            queued = try b.startDownload(next)
        }
        var token: Int32 = 0
        try withUnsafeMutableBytes(of: &token) { try pending!.wait(into: $0) }  // no allocation per token
        pending = queued
        step += 1
        return token
    }
}

/// Greedy generation of up to `maxNewTokens` ids after `prompt`, pipelined as described above.
/// Produces the same ids as greedy `generate` (argmax, ties to the lower index).
public func generateGreedyPipelined(model: any LanguageModel, prompt: [Int32], maxNewTokens: Int, eosTokenIds: Set<Int32> = [],
                                    cache: (any KVCache)? = nil, onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
    guard !prompt.isEmpty else { throw OspreyError.invalidArgument("the prompt has no tokens") }
    guard maxNewTokens >= 0 else { throw OspreyError.invalidArgument("max new tokens must be ≥ 0") }
    let cache = cache ?? model.makeCache()
    var pipeline = try GreedyPipeline(backend: model.backend)
    var generated: [Int32] = []
    generated.reserveCapacity(maxNewTokens)
    while generated.count < maxNewTokens {
        let token = try pipeline.next(model: model, cache: cache, prompt: prompt, more: generated.count + 1 < maxNewTokens)
        generated.append(token)
        onToken(token)
        if eosTokenIds.contains(token) { break }
    }
    return generated
}
