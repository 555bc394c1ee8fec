// StaticCache on random gpt-oss checkpoints: logits equal a recompute without a cache and equal
// DynamicCache step for step (prefill longer than the sliding buffers, a chunk, then single
// tokens); nothing is allocated after creation (counted through a wrapping backend, while
// DynamicCache on the same backend does allocate); sliding layers hold a fixed 2 x window while
// full layers hold maxLength; going past maxLength or a chunk too long for a sliding buffer fails
// with an error that says so, before any state changes.
import Foundation
import Synchronization
import Testing
import OspreyCore
import OspreyCPU
@testable import OspreyModels

/// The CPU backend, counting `makeBuffer` calls.
final class CountingBackend: Backend {
    let inner = CPUBackend()
    let buffers = Atomic<Int>(0)
    var device: Device { inner.device }
    var bufferCount: Int { buffers.load(ordering: .relaxed) }

    func makeBuffer(_ shape: Shape, dtype: DType) throws -> Tensor {
        buffers.add(1, ordering: .relaxed)
        return try inner.makeBuffer(shape, dtype: dtype)
    }
    func upload(_ t: Tensor) throws -> Tensor { try inner.upload(t) }
    func download(_ t: Tensor) throws -> Tensor { try inner.download(t) }
    func copyRows(_ s: Tensor, into d: Tensor, at row: Int) throws { try inner.copyRows(s, into: d, at: row) }
    func embedding(_ table: Tensor, ids: [Int32]) throws -> Tensor { try inner.embedding(table, ids: ids) }
    func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) throws -> Tensor { try inner.rmsNorm(x, weight: weight, eps: eps) }
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor { try inner.linear(x, weight: weight, bias: bias) }
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try inner.add(a, b) }
    func rope(_ x: Tensor, start: Int, invFreq: Tensor, scaling: Float) throws -> Tensor {
        try inner.rope(x, start: start, invFreq: invFreq, scaling: scaling)
    }
    func attention(q: Tensor, k: Tensor, v: Tensor, sinks: Tensor?, span: AttentionSpan, scale: Float) throws -> Tensor {
        try inner.attention(q: q, k: k, v: v, sinks: sinks, span: span, scale: scale)
    }
    func topKSoftmax(_ logits: Tensor, k: Int) throws -> (ids: Tensor, weights: Tensor) { try inner.topKSoftmax(logits, k: k) }
    func experts(_ x: Tensor, bank: ExpertBank, ids: Tensor, weights: Tensor) throws -> Tensor {
        try inner.experts(x, bank: bank, ids: ids, weights: weights)
    }
    func argmax(_ logits: Tensor, into out: Tensor) throws { try inner.argmax(logits, into: out) }
}

@Suite struct StaticCacheTests {
    static let ids: [Int32] = (0..<23).map { Int32(($0 * 53 + 7) % 256) }

    /// Logits of `ids` run as a prefill of 9, a chunk of 3, then one token at a time.
    static func stepwise(_ model: any LanguageModel, _ cache: any KVCache) throws -> [Float] {
        var got = try model.forward(Array(ids[0..<9]), cache: cache, allPositions: true).floats()
        got += try model.forward(Array(ids[9..<12]), cache: cache, allPositions: true).floats()
        for t in 12..<ids.count { got += try model.forward([ids[t]], cache: cache, allPositions: false).floats() }
        return got
    }

    /// The invariant tests' shapes, and one whose window is so wide that 2 x window covers the sequence.
    static var shapes: [GptOssShape] {
        var wide = GptOssShape()
        wide.window = 16
        return GptOssInvariantTests.shapes + [wide]
    }

    @Test(arguments: shapes.indices)
    func equalsRecomputeAndDynamicCache(shapeIndex: Int) throws {
        let dir = temporaryFolder()
        defer { cleanup(dir) }
        try RandomGptOss.write(Self.shapes[shapeIndex], to: dir, seed: UInt64(10 + shapeIndex))
        let model = try loadCPU(dir)
        let V = model.vocabularySize
        let full = try model.forward(Self.ids, cache: model.makeCache(), allPositions: true).floats()
        let dynamic = try Self.stepwise(model, model.makeCache())
        for maxLength in [Self.ids.count, 200] {  // 200: the sliding layers use their two 2 x window buffers
            let cache = try model.makeCache(maxLength: maxLength)
            #expect(cache is StaticCache)
            let got = try Self.stepwise(model, cache)
            #expect(cache.offset == Self.ids.count)
            for t in 0..<Self.ids.count {
                let row = t * V..<(t + 1) * V
                let err = relativeMaxError(Array(got[row]), Array(full[row]))
                #expect(err < 1e-4, "maxLength \(maxLength), position \(t): relative error \(err) against the recompute")
                #expect(Array(got[row]) == Array(dynamic[row]), "maxLength \(maxLength), position \(t): differs from DynamicCache")
            }
        }
    }

    @Test func allocatesNothingAfterCreation() throws {
        let dir = temporaryFolder()
        defer { cleanup(dir) }
        var shape = GptOssShape()
        (shape.window, shape.layers) = (4, 4)
        try RandomGptOss.write(shape, to: dir)
        let backend = CountingBackend()
        let model = try ModelRegistry.load(ModelFolder(directory: dir), backend: backend)
        let before = backend.bufferCount
        let cache = try #require(try model.makeCache(maxLength: 300) as? StaticCache)
        #expect(backend.bufferCount - before == 2 * 2 * 2 + 2 * 1 * 2)  // 2 sliding layers x 2 buffers x k,v + 2 full x 1 x k,v
        let afterInit = backend.bufferCount
        _ = try model.forward(Array(Self.ids[0..<10]), cache: cache, allPositions: false)
        for n in 0..<250 { _ = try model.forward([Int32(n % 256)], cache: cache, allPositions: false) }
        #expect(backend.bufferCount == afterInit, "the static cache allocated while decoding")
        // The counter does see allocations: the dynamic cache makes buffers as it grows.
        let dynamic = model.makeCache()
        _ = try model.forward(Array(Self.ids[0..<10]), cache: dynamic, allPositions: false)
        #expect(backend.bufferCount > afterInit)
    }

    @Test func slidingLayersHoldTheWindowAndFullLayersMaxLength() throws {
        let dir = temporaryFolder()
        defer { cleanup(dir) }
        var shape = GptOssShape()
        shape.window = 5
        try RandomGptOss.write(shape, to: dir)
        let model = try loadCPU(dir)
        let cache = try #require(try model.makeCache(maxLength: 400) as? StaticCache)
        let dynamic = model.makeCache()
        #expect(cache.capacityTokens(layer: 0) == 2 * 2 * 5 && cache.capacityTokens(layer: 1) == 400)
        let bytes = cache.byteCount
        #expect(bytes == (20 + 400) * 2 * shape.kvHeads * shape.headDim * 4)  // k and v, f32
        _ = try model.forward([1, 2, 3], cache: cache, allPositions: false)
        _ = try model.forward([1, 2, 3], cache: dynamic, allPositions: false)
        for n in 4...300 {
            _ = try model.forward([Int32(n % 256)], cache: cache, allPositions: false)
            _ = try model.forward([Int32(n % 256)], cache: dynamic, allPositions: false)
            #expect(cache.storedTokens(layer: 0) == min(n, 4) && cache.storedTokens(layer: 1) == n)
            #expect(cache.storedTokens(layer: 0) == dynamic.storedTokens(layer: 0))
            #expect(cache.storedTokens(layer: 1) == dynamic.storedTokens(layer: 1))
        }
        #expect(cache.byteCount == bytes && cache.capacityTokens(layer: 0) == 20)
    }

    @Test func limitsFailWithClearErrors() throws {
        let dir = temporaryFolder()
        defer { cleanup(dir) }
        var shape = GptOssShape()
        shape.window = 4
        try RandomGptOss.write(shape, to: dir)
        let model = try loadCPU(dir)
        let cache = try model.makeCache(maxLength: 20)
        _ = try model.forward(Array(Self.ids[0..<18]), cache: cache, allPositions: false)
        #expect(throws: CacheError.full(maxLength: 20, needed: 21)) {
            try model.forward(Array(Self.ids[0..<3]), cache: cache, allPositions: false)
        }
        #expect(cache.offset == 18)
        _ = try model.forward([1, 2], cache: cache, allPositions: false)  // exactly full is fine
        #expect("\(CacheError.full(maxLength: 20, needed: 21))".contains("maxLength"))
        // Sliding buffers of 2 x 4 rows keep 3 rows, so a later chunk may have at most 5 tokens.
        let chunked = try model.makeCache(maxLength: 100)
        _ = try model.forward([1, 2, 3], cache: chunked, allPositions: false)
        #expect(throws: CacheError.chunkTooLong(layer: 0, tokens: 6, limit: 5)) {
            try model.forward([4, 5, 6, 7, 8, 9], cache: chunked, allPositions: false)
        }
        #expect(throws: CacheError.self) { try model.makeCache(maxLength: 0) }
    }
}
