// Greedy decoding with the pick on the device and the host one step behind: step n + 1 is queued
// (its input is step n's argmax, still on the device) before the host waits for token n, so the
// device never idles while the host issues work, and a decode step moves 4 bytes to the host
// instead of a row of logits. An end-of-sequence token is seen one step late; the extra step's
// token is dropped. On the CPU it is plain greedy decoding.
import OspreyCore
import OspreyModels

/// Greedy generation of up to `maxNewTokens` ids after `prompt`, pipelined as described above.
/// Produces the same ids as `generate` with temperature 0 (argmax, ties to the lower index).
public func generateGreedyPipelined(model: any LanguageModel, prompt: [Int32], maxNewTokens: Int, eosTokenIds: Set<Int32> = [],
                                    cache: (any KVCache)? = nil, onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
    guard !prompt.isEmpty else { throw OspreyError.invalidArgument("the prompt has no tokens") }
    guard maxNewTokens >= 0 else { throw OspreyError.invalidArgument("max new tokens must be ≥ 0") }
    guard maxNewTokens > 0 else { return [] }
    let b = model.backend
    let cache = cache ?? model.makeCache()
    let slots = [try b.makeBuffer([1], dtype: .i32), try b.makeBuffer([1], dtype: .i32)]
    try b.argmax(model.forward(prompt, cache: cache, allPositions: false), into: slots[0])
    var pending = try b.startDownload(slots[0])
    var generated: [Int32] = []
    generated.reserveCapacity(maxNewTokens)
    var step = 0
    while true {
        var queued: PendingDownload?
        if generated.count + 1 < maxNewTokens {
            let next = slots[(step + 1) % 2]
            try b.argmax(model.forward(tokens: slots[step % 2], cache: cache, allPositions: false), into: next)
            queued = try b.startDownload(next)
        }
        let host = try pending.wait()
        let token = withExtendedLifetime(host) { host.raw.load(as: Int32.self) }  // keep the storage alive while reading
        generated.append(token)
        onToken(token)
        guard let queued, !eosTokenIds.contains(token) else { break }
        pending = queued
        step += 1
    }
    return generated
}
