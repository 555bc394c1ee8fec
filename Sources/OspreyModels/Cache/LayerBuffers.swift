// The key/value storage of one cache layer, shared by DynamicCache and StaticCache: one buffer
// pair (full attention) or two (a sliding window), the active one, how many rows it holds and the
// absolute position of its first row. The two operations both caches need: `rotate` moves the
// last `kept` rows to the front of the other buffer pair and makes it active (a sliding layer that
// is full), and `append` copies a step's rows after those held and returns the visible keys and
// values as views. Which buffers exist, and when they grow, is each cache's own policy.
import OspreyCore

struct LayerBuffers {
    /// window - 1 on sliding layers (the rows a later query can still see); nil on full layers.
    let keep: Int?
    var k: [Tensor] = []
    var v: [Tensor] = []
    var active = 0
    /// Rows stored in the active buffer.
    var count = 0
    /// Absolute position of the active buffer's row 0.
    var start = 0

    init(keep: Int?, k: [Tensor] = [], v: [Tensor] = []) {
        (self.keep, self.k, self.v) = (keep, k, v)
    }

    /// Rows one buffer holds.
    var capacity: Int { k.first?.shape[0] ?? 0 }

    /// Copies the last `kept` rows of the active buffers to the front of the other pair, which
    /// becomes active.
    mutating func rotate(keeping kept: Int, on backend: any Backend) throws {
        let other = 1 - active
        try backend.copyRows(k[active].rows((count - kept)..<count), into: k[other], at: 0)
        try backend.copyRows(v[active].rows((count - kept)..<count), into: v[other], at: 0)
        active = other
        start += count - kept
        count = kept
    }

    /// Appends a step's rows after the ones held; returns every row held, as views, and the
    /// position of the first.
    mutating func append(k newK: Tensor, v newV: Tensor, on backend: any Backend) throws -> (k: Tensor, v: Tensor, keyStart: Int) {
        let T = newK.shape[0]
        try backend.copyRows(newK, into: k[active], at: count)
        try backend.copyRows(newV, into: v[active], at: count)
        count += T
        return (k[active].rows(0..<count), v[active].rows(0..<count), start)
    }

    /// Rows of key storage held (both buffers on sliding layers): the layer's memory.
    var capacityTokens: Int { k.reduce(0) { $0 + $1.shape[0] } }
}
