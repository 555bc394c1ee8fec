// The block manager: plain bookkeeping of the paged KV cache's physical blocks (nano-vllm's
// block_manager.py, with transformers' sliding-window groups). It keeps a free list and a
// reference count per block and edits a sequence's block tables (KVBlockLayout.swift), one per
// layer group: table[b] is the physical block of logical block b, -1 once a sliding group has let
// it go, so position p always lives at slot table[p / blockSize] * blockSize + p % blockSize.
// Blocks a sequence holds form a contiguous run at the end of each table: sliding groups release
// from the front, and every group grows at the back. No tensors and no device: the runner turns
// tables into device inputs. Counts are 1 today; they are kept so prefix sharing can come later.

/// The free list and reference counts of a pool of KV blocks, and the edits to block tables.
public struct BlockManager: Sendable {
    /// How the pool is cut into groups and blocks.
    public let layout: KVBlockLayout
    /// Physical blocks in the pool (ids 0..<numBlocks).
    public let numBlocks: Int
    private var freeList: [Int32]
    private var refCounts: [Int32]

    /// A pool of `numBlocks` free blocks.
    public init(layout: KVBlockLayout, numBlocks: Int) throws {
        guard numBlocks >= 1, numBlocks <= Int(Int32.max) else {
            throw BatchError.invalidSetting("numBlocks must be in 1...\(Int32.max), got \(numBlocks)")
        }
        (self.layout, self.numBlocks) = (layout, numBlocks)
        freeList = (0..<Int32(numBlocks)).reversed()  // hands out block 0 first
        refCounts = Array(repeating: 0, count: numBlocks)
    }

    /// Blocks no sequence holds.
    public var freeBlockCount: Int { freeList.count }

    /// Block tables of a sequence holding nothing: one empty table per group.
    public var emptyTables: [[Int32]] { Array(repeating: [], count: layout.groupCount) }

    /// New blocks a sequence with `tables` and `computed` positions cached needs so that positions
    /// computed..<computed+count have blocks in every group, less the sliding blocks it releases
    /// first (blocks no query at `computed` or later can see).
    public func blocksNeeded(_ tables: [[Int32]], computed: Int, adding count: Int) -> Int {
        let end = layout.blockCount(covering: computed + count)
        var added = 0, released = 0
        for g in tables.indices {
            added += max(0, end - tables[g].count)
            released += releasable(tables[g], group: g, computed: computed).count
        }
        return max(0, added - released)
    }

    /// Releases the sliding blocks no longer needed, then allocates blocks so that positions
    /// computed..<computed+count are covered in every group. Throws `outOfBlocks`, changing
    /// nothing, when the pool is short.
    public mutating func prepare(_ tables: inout [[Int32]], computed: Int, adding count: Int) throws {
        precondition(tables.count == layout.groupCount, "block tables for \(tables.count) groups, layout has \(layout.groupCount)")
        let needed = blocksNeeded(tables, computed: computed, adding: count)
        guard needed <= freeList.count else { throw BatchError.outOfBlocks(needed: needed, free: freeList.count) }
        releaseUnneeded(&tables, computed: computed)
        let end = layout.blockCount(covering: computed + count)
        for g in tables.indices {
            while tables[g].count < end { tables[g].append(allocate()) }
        }
    }

    /// Returns to the pool the sliding blocks that no query at `computed` or later can see.
    public mutating func releaseUnneeded(_ tables: inout [[Int32]], computed: Int) {
        for g in tables.indices {
            for b in releasable(tables[g], group: g, computed: computed) {
                free(tables[g][b])
                tables[g][b] = -1
            }
        }
    }

    /// Returns every block of a sequence to the pool and empties its tables (finish, cancel, preemption).
    public mutating func release(_ tables: inout [[Int32]]) {
        for g in tables.indices {
            for id in tables[g] where id >= 0 { free(id) }
            tables[g] = []
        }
    }

    // MARK: - Internals

    /// Logical blocks of a group's table that are held but below the first live block.
    private func releasable(_ table: [Int32], group: Int, computed: Int) -> Range<Int> {
        let live = min(layout.firstLiveBlock(group: group, computed: computed), table.count)
        var first = live
        while first > 0 && table[first - 1] >= 0 { first -= 1 }  // held blocks are contiguous
        return first..<live
    }

    private mutating func allocate() -> Int32 {
        let id = freeList.removeLast()
        refCounts[Int(id)] = 1
        return id
    }

    private mutating func free(_ id: Int32) {
        refCounts[Int(id)] -= 1
        if refCounts[Int(id)] == 0 { freeList.append(id) }
    }

    /// What is wrong with the pool given the tables of every sequence (empty when all is well):
    /// each block must be free, or held exactly as often as its reference count says, never both.
    func violations(owners: [[[Int32]]]) -> [String] {
        var problems: [String] = [], held = [Int32](repeating: 0, count: numBlocks), isFree = [Bool](repeating: false, count: numBlocks)
        for tables in owners { for table in tables { for id in table where id >= 0 { held[Int(id)] += 1 } } }
        for id in freeList {
            if isFree[Int(id)] { problems.append("block \(id) is on the free list twice") }
            isFree[Int(id)] = true
        }
        for b in 0..<numBlocks {
            if isFree[b] && (held[b] > 0 || refCounts[b] != 0) { problems.append("block \(b) is free but held \(held[b]) times") }
            if !isFree[b] && (held[b] != refCounts[b] || held[b] == 0) {
                problems.append("block \(b) has reference count \(refCounts[b]) but is held \(held[b]) times")
            }
        }
        return problems
    }
}
