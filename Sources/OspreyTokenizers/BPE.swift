// The byte-pair-encoding core shared by tiktoken and tokenizer.json BPE: a hash map from byte
// strings to ids, a hash map from id pairs to (rank, merged id), and the merge loop on integer ids.
//
// NOTE: both references merge the adjacent pair of lowest rank first, leftmost on ties, until no
// pair has a rank (tiktoken: rank of the concatenated bytes; tokenizers: index in `merges`). We
// run that on ids with the pair map, so a merge step is one integer-keyed probe. Pieces up to
// `heapThreshold` symbols use a linear scan (cheapest for the usual 2-10 symbols); longer ones
// (CJK runs, long repeats) use a heap over a linked list, O(n log n).

import Foundation

/// Open-addressing hash map from byte strings to ids. Immutable after `init`.
final class ByteSequenceMap: @unchecked Sendable {
    private let arena: UnsafeMutablePointer<UInt8>
    private let starts: UnsafeMutablePointer<Int>     // count + 1 offsets into arena
    private let values: UnsafeMutablePointer<Int32>
    private let slots: UnsafeMutablePointer<Int32>    // entry index or -1
    private let mask: Int
    let count: Int

    /// `entries` in insertion order; a later duplicate key is ignored.
    init(bytes: [UInt8], starts entryStarts: [Int], values entryValues: [Int32]) {
        count = entryValues.count
        let arena = UnsafeMutablePointer<UInt8>.allocate(capacity: max(bytes.count, 1))
        bytes.withUnsafeBufferPointer { b in if let base = b.baseAddress { arena.initialize(from: base, count: b.count) } }
        self.arena = arena
        starts = .allocate(capacity: count + 1)
        values = .allocate(capacity: max(count, 1))
        for i in 0...count { starts[i] = entryStarts[i] }
        for i in 0..<count { values[i] = entryValues[i] }
        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: -1, count: capacity)
        for e in 0..<count {
            let start = starts[e], length = starts[e + 1] - start
            if lookup(arena + start, length) != nil { continue }
            var s = Int(truncatingIfNeeded: Self.hash(arena + start, length)) & mask
            while slots[s] >= 0 { s = (s + 1) & mask }
            slots[s] = Int32(e)
        }
    }

    deinit {
        arena.deallocate(); starts.deallocate(); values.deallocate(); slots.deallocate()
    }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        var h: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(truncatingIfNeeded: n)
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 31
            i += 8
        }
        if i < n {
            var w: UInt64 = 0, shift: UInt64 = 0
            while i < n { w |= UInt64(p[i]) << shift; shift += 8; i += 1 }
            h = (h ^ w) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 31
        }
        h = (h ^ (h >> 29)) &* 0xBF58_476D_1CE4_E5B9
        return h ^ (h >> 32)
    }

    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32? {
        lookup(p, n, hash: Self.hash(p, n))
    }

    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ n: Int, hash: UInt64) -> Int32? {
        var s = Int(truncatingIfNeeded: hash) & mask
        while true {
            let e = Int(slots[s])
            if e < 0 { return nil }
            let start = starts[e]
            if starts[e + 1] - start == n && memcmp(arena + start, p, n) == 0 { return values[e] }
            s = (s + 1) & mask
        }
    }

    func lookup(_ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return lookupEmpty() }
            return lookup(base, b.count)
        }
    }

    private func lookupEmpty() -> Int32? {
        var one: UInt8 = 0
        return lookup(&one, 0)
    }
}

/// Open-addressing map from a pair of ids to (rank, merged id). Immutable after `init`.
final class PairMap: @unchecked Sendable {
    private let keys: UnsafeMutablePointer<UInt64>
    private let vals: UnsafeMutablePointer<UInt64>
    private let mask: Int
    private static let empty = UInt64.max

    /// `pairs` as (left, right, rank, merged); a later duplicate pair overwrites (as tokenizers does).
    init(_ pairs: [(UInt32, UInt32, UInt32, UInt32)]) {
        var capacity = 16
        while capacity < pairs.count * 2 { capacity <<= 1 }
        mask = capacity - 1
        keys = .allocate(capacity: capacity)
        vals = .allocate(capacity: capacity)
        keys.initialize(repeating: Self.empty, count: capacity)
        vals.initialize(repeating: 0, count: capacity)
        for (a, b, rank, merged) in pairs {
            let key = UInt64(a) << 32 | UInt64(b)
            var s = Self.slot(key, mask)
            while keys[s] != Self.empty && keys[s] != key { s = (s + 1) & mask }
            keys[s] = key
            vals[s] = UInt64(rank) << 32 | UInt64(merged)
        }
    }

    deinit { keys.deallocate(); vals.deallocate() }

    @inline(__always) private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 29) & mask
    }

    /// (rank << 32 | merged id) of the pair, or UInt64.max when the pair does not merge.
    @inline(__always) func get(_ a: UInt32, _ b: UInt32) -> UInt64 {
        let key = UInt64(a) << 32 | UInt64(b)
        var s = Self.slot(key, mask)
        while true {
            let k = keys[s]
            if k == key { return vals[s] }
            if k == Self.empty { return UInt64.max }
            s = (s + 1) & mask
        }
    }
}

/// Reusable buffers for merging, and a memo of merged pieces; one per encode call, so encoding
/// allocates little per piece and needs no locks.
struct MergeScratch {
    var ids: [UInt32] = []
    var ranks: [UInt64] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var heap: [UInt64] = []
    var cache = PieceCache()
}

/// Memo of pieces that had to be merged (identifiers in code, words in CJK runs recur): piece bytes
/// -> ids. Open addressing; cleared when half full, so memory stays bounded on any input.
struct PieceCache {
    private static let capacity = 1 << 13
    // Measured (benchmarks/results/tokenizer-throughput.md): for pieces under ~24 bytes a probe
    // plus insert costs more than merging (code: 34 MB/s cached from 4 bytes vs 57 uncached).
    static let minimumLength = 24
    private var slots: [Int32] = []     // allocated on first insert: most encode calls are short
    private var hashes: [UInt64] = []
    private var keyStarts: [Int] = [], keyLengths: [Int] = []
    private var idStarts: [Int] = [], idLengths: [Int] = []
    private var keys: [UInt8] = []
    private var ids: [Int] = []

    /// Appends the cached ids of the piece to `out`; false when not cached.
    mutating func lookup(_ hash: UInt64, _ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) -> Bool {
        if slots.isEmpty { return false }
        var s = Int(truncatingIfNeeded: hash) & (Self.capacity - 1)
        while true {
            let e = Int(slots[s])
            if e < 0 { return false }
            if hashes[e] == hash && keyLengths[e] == n {
                let match = keys.withUnsafeBufferPointer { memcmp($0.baseAddress! + keyStarts[e], p, n) == 0 }
                if match {
                    out.append(contentsOf: ids[idStarts[e]..<(idStarts[e] + idLengths[e])])
                    return true
                }
            }
            s = (s + 1) & (Self.capacity - 1)
        }
    }

    mutating func insert(_ hash: UInt64, _ p: UnsafePointer<UInt8>, _ n: Int, ids newIDs: ArraySlice<Int>) {
        if slots.isEmpty { slots = [Int32](repeating: -1, count: Self.capacity) }
        if hashes.count >= Self.capacity / 2 || keys.count > 1 << 20 {
            for i in slots.indices { slots[i] = -1 }
            hashes.removeAll(keepingCapacity: true); keyStarts.removeAll(keepingCapacity: true)
            keyLengths.removeAll(keepingCapacity: true); idStarts.removeAll(keepingCapacity: true)
            idLengths.removeAll(keepingCapacity: true); keys.removeAll(keepingCapacity: true); ids.removeAll(keepingCapacity: true)
        }
        var s = Int(truncatingIfNeeded: hash) & (Self.capacity - 1)
        while slots[s] >= 0 { s = (s + 1) & (Self.capacity - 1) }
        slots[s] = Int32(hashes.count)
        hashes.append(hash)
        keyStarts.append(keys.count); keyLengths.append(n)
        keys.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        idStarts.append(ids.count); idLengths.append(newIDs.count)
        ids.append(contentsOf: newIDs)
    }
}

enum BytePair {
    static let heapThreshold = 32

    /// Merges `scratch.ids` (the initial symbols) and appends the resulting ids to `out`.
    static func merge(_ scratch: inout MergeScratch, _ pairs: PairMap, into out: inout [Int]) {
        let n = scratch.ids.count
        if n <= 1 {
            if n == 1 { out.append(Int(scratch.ids[0])) }
            return
        }
        if n <= heapThreshold { mergeLinear(&scratch, pairs, into: &out) } else { mergeHeap(&scratch, pairs, into: &out) }
    }

    private static func mergeLinear(_ scratch: inout MergeScratch, _ pairs: PairMap, into out: inout [Int]) {
        var n = scratch.ids.count
        scratch.ranks.removeAll(keepingCapacity: true)
        for i in 0..<(n - 1) { scratch.ranks.append(pairs.get(scratch.ids[i], scratch.ids[i + 1])) }
        scratch.ranks.append(UInt64.max)
        scratch.ids.withUnsafeMutableBufferPointer { ids in
            scratch.ranks.withUnsafeMutableBufferPointer { ranks in
                while n > 1 {
                    var best = UInt64.max, m = -1
                    for i in 0..<(n - 1) where ranks[i] >> 32 < best >> 32 { best = ranks[i]; m = i }
                    if m < 0 { break }
                    ids[m] = UInt32(truncatingIfNeeded: best)
                    var k = m + 1
                    while k < n - 1 { ids[k] = ids[k + 1]; ranks[k] = ranks[k + 1]; k += 1 }
                    n -= 1
                    ranks[n - 1] = UInt64.max
                    if m + 1 < n { ranks[m] = pairs.get(ids[m], ids[m + 1]) } else { ranks[m] = UInt64.max }
                    if m > 0 { ranks[m - 1] = pairs.get(ids[m - 1], ids[m]) }
                }
                for i in 0..<n { out.append(Int(ids[i])) }
            }
        }
    }

    private static func mergeHeap(_ scratch: inout MergeScratch, _ pairs: PairMap, into out: inout [Int]) {
        let n = scratch.ids.count
        if scratch.prev.count < n { scratch.prev = [Int32](repeating: 0, count: 2 * n) }
        if scratch.next.count < n { scratch.next = [Int32](repeating: 0, count: 2 * n) }
        if scratch.heap.count < 3 * n { scratch.heap = [UInt64](repeating: 0, count: 6 * n) }
        let dead = UInt32.max
        scratch.ids.withUnsafeMutableBufferPointer { ids in
        scratch.prev.withUnsafeMutableBufferPointer { prev in
        scratch.next.withUnsafeMutableBufferPointer { next in
        scratch.heap.withUnsafeMutableBufferPointer { heapStorage in
            var heap = UnsafeHeap(storage: heapStorage.baseAddress!, count: 0)
            for i in 0..<n { prev[i] = Int32(i - 1); next[i] = i + 1 < n ? Int32(i + 1) : -1 }
            for i in 0..<(n - 1) {
                let r = pairs.get(ids[i], ids[i + 1])
                if r != UInt64.max { heap.push(r & 0xFFFF_FFFF_0000_0000 | UInt64(i)) }
            }
            while heap.count > 0 {
                let top = heap.pop()
                let pos = Int(top & 0xFFFF_FFFF), rank = top >> 32
                guard ids[pos] != dead else { continue }
                let right = Int(next[pos])
                guard right >= 0 else { continue }
                let current = pairs.get(ids[pos], ids[right])
                guard current != UInt64.max, current >> 32 == rank else { continue }   // stale entry
                ids[pos] = UInt32(truncatingIfNeeded: current)
                ids[right] = dead
                let after = Int(next[right])
                next[pos] = Int32(after)
                if after >= 0 { prev[after] = Int32(pos) }
                let before = Int(prev[pos])
                if before >= 0 {
                    let r = pairs.get(ids[before], ids[pos])
                    if r != UInt64.max { heap.push(r & 0xFFFF_FFFF_0000_0000 | UInt64(before)) }
                }
                if after >= 0 {
                    let r = pairs.get(ids[pos], ids[after])
                    if r != UInt64.max { heap.push(r & 0xFFFF_FFFF_0000_0000 | UInt64(pos)) }
                }
            }
            var i = 0
            while i >= 0 { out.append(Int(ids[i])); i = Int(next[i]) }
        }
        }
        }
        }
    }
}

/// Binary min-heap of UInt64 keys (rank << 32 | position: lowest rank, then leftmost, first) in
/// caller-provided storage large enough for every push (3n for a piece of n symbols).
private struct UnsafeHeap {
    let storage: UnsafeMutablePointer<UInt64>
    var count: Int

    @inline(__always) mutating func push(_ x: UInt64) {
        var i = count
        count += 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if storage[parent] <= x { break }
            storage[i] = storage[parent]
            i = parent
        }
        storage[i] = x
    }

    @inline(__always) mutating func pop() -> UInt64 {
        let top = storage[0]
        count -= 1
        let last = storage[count]
        let n = count
        var i = 0
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            let c = l + 1 < n && storage[l + 1] < storage[l] ? l + 1 : l
            if storage[c] >= last { break }
            storage[i] = storage[c]
            i = c
        }
        storage[i] = last
        return top
    }
}

/// A byte-level BPE model ready to encode pieces: the vocabulary as a byte-string map, the merges
/// as a pair map and the id of every single byte. Shared by tiktoken and byte-level tokenizer.json.
final class BPECore: @unchecked Sendable {
    let encoder: ByteSequenceMap
    let pairs: PairMap
    /// Id of each single byte, UInt32.max where the vocabulary lacks it.
    private let byteIds: UnsafeMutablePointer<UInt32>
    /// Look the whole piece up before merging (tiktoken always; tokenizers with `ignore_merges`).
    let wholePieceFirst: Bool
    let allBytesPresent: Bool

    init(encoder: ByteSequenceMap, pairs: PairMap, wholePieceFirst: Bool) {
        self.encoder = encoder
        self.pairs = pairs
        self.wholePieceFirst = wholePieceFirst
        byteIds = .allocate(capacity: 256)
        var all = true
        for b in 0..<256 {
            var byte = UInt8(b)
            if let id = encoder.lookup(&byte, 1) { byteIds[b] = UInt32(id) } else { byteIds[b] = UInt32.max; all = false }
        }
        allBytesPresent = all
    }

    deinit { byteIds.deallocate() }

    @inline(__always) func byteID(_ b: UInt8) -> UInt32 { byteIds[Int(b)] }

    /// Encodes one pre-token. Requires `allBytesPresent` (callers handle the other case).
    @inline(__always)
    func encodePiece(_ p: UnsafePointer<UInt8>, _ n: Int, _ out: inout [Int], _ scratch: inout MergeScratch) {
        let hash = ByteSequenceMap.hash(p, n)
        if wholePieceFirst, let id = encoder.lookup(p, n, hash: hash) {
            out.append(Int(id))
            return
        }
        let useCache = n >= PieceCache.minimumLength
        if useCache && scratch.cache.lookup(hash, p, n, into: &out) { return }
        let start = out.count
        scratch.ids.removeAll(keepingCapacity: true)
        for k in 0..<n { scratch.ids.append(byteIds[Int(p[k])]) }
        BytePair.merge(&scratch, pairs, into: &out)
        if useCache { scratch.cache.insert(hash, p, n, ids: out[start...]) }
    }
}
