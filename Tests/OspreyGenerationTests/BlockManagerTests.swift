// The block manager and the KV block layout on the CPU, no device: layer grouping as transformers
// groups layers, block counts through prepare and release, sliding groups holding no more than
// their window needs over a long decode, and a short pool refusing a step without changing anything.
import Testing
@testable import OspreyGeneration

@Suite struct BlockManagerTests {
    /// Physical blocks a table holds.
    static func held(_ table: [Int32]) -> Int { table.filter { $0 >= 0 }.count }

    @Test func layersAreGroupedAsTransformersGroupsThem() throws {
        let alternating = try KVBlockLayout.grouping(layerWindows: (0..<24).map { $0 % 2 == 0 ? 128 : nil }, blockSize: 16)
        #expect(alternating.layout.groupWindows == [128, nil])
        #expect(alternating.layers[0] == .init(group: 0, index: 0) && alternating.layers[1] == .init(group: 1, index: 0))
        #expect(alternating.layers[22] == .init(group: 0, index: 11) && alternating.layers[23] == .init(group: 1, index: 11))

        let threeToOne = try KVBlockLayout.grouping(layerWindows: [8, 8, 8, nil], blockSize: 4)
        #expect(threeToOne.layout.groupWindows == [8, 8, 8, nil])
        #expect(threeToOne.layers == (0..<4).map { .init(group: $0, index: 0) })

        let full = try KVBlockLayout.grouping(layerWindows: [nil, nil, nil], blockSize: 4)
        #expect(full.layout.groupWindows == [nil] && full.layers.map(\.index) == [0, 1, 2])

        #expect(throws: BatchError.self) { try KVBlockLayout.grouping(layerWindows: [], blockSize: 4) }
        #expect(throws: BatchError.self) { try KVBlockLayout(blockSize: 0, groupWindows: [nil]) }
        #expect(throws: BatchError.self) { try KVBlockLayout(blockSize: 4, groupWindows: [0]) }
    }

    @Test func prepareAndReleaseCountBlocks() throws {
        var pool = try BlockManager(layout: KVBlockLayout(blockSize: 4, groupWindows: [nil, nil]), numBlocks: 20)
        var tables = pool.emptyTables
        #expect(pool.blocksNeeded(tables, computed: 0, adding: 10) == 6)
        try pool.prepare(&tables, computed: 0, adding: 10)
        #expect(tables.map(\.count) == [3, 3] && pool.freeBlockCount == 14)
        #expect(Set(tables.joined()).count == 6)
        #expect(pool.blocksNeeded(tables, computed: 10, adding: 2) == 0)  // positions 10, 11 are in block 2
        #expect(pool.blocksNeeded(tables, computed: 10, adding: 3) == 2)
        try pool.prepare(&tables, computed: 10, adding: 3)
        #expect(pool.freeBlockCount == 12 && pool.violations(owners: [tables]).isEmpty)

        var other = pool.emptyTables
        try pool.prepare(&other, computed: 0, adding: 1)
        #expect(Set(tables.joined()).isDisjoint(with: other.joined()))
        pool.release(&tables)
        #expect(tables == [[], []] && pool.freeBlockCount == 18 && pool.violations(owners: [other]).isEmpty)
        pool.release(&other)
        #expect(pool.freeBlockCount == 20 && pool.violations(owners: []).isEmpty)
    }

    @Test func slidingGroupKeepsOnlyItsWindowOverALongDecode() throws {
        let layout = try KVBlockLayout(blockSize: 16, groupWindows: [128, nil])
        var pool = try BlockManager(layout: layout, numBlocks: 200)
        var tables = pool.emptyTables
        var most = 0
        for c in 0..<1_000 {
            try pool.prepare(&tables, computed: c, adding: 1)
            let sliding = Self.held(tables[0])
            most = max(most, sliding)
            #expect(sliding <= 128 / 16 + 1, "step \(c): \(sliding) sliding blocks")
            #expect(Self.held(tables[1]) == (c + 1 + 15) / 16)
            // Every key the query at c sees has a block; position p lives in logical block p / 16.
            for p in max(0, c - 127)...c { #expect(tables[0][p / 16] >= 0, "step \(c) lost position \(p)") }
            #expect(pool.violations(owners: [tables]).isEmpty)
        }
        #expect(most == 9)
        #expect(pool.freeBlockCount == 200 - Self.held(tables[0]) - Self.held(tables[1]))
    }

    @Test func slidingPrefillChunkThenDecodeReleasesTheFront() throws {
        var pool = try BlockManager(layout: KVBlockLayout(blockSize: 16, groupWindows: [128]), numBlocks: 40)
        var tables = pool.emptyTables
        try pool.prepare(&tables, computed: 0, adding: 300)  // one chunk sees all 300 positions
        #expect(Self.held(tables[0]) == 19)
        #expect(pool.blocksNeeded(tables, computed: 300, adding: 1) == 0)
        try pool.prepare(&tables, computed: 300, adding: 1)
        #expect(Self.held(tables[0]) == 9 && tables[0].prefix(10).allSatisfy { $0 == -1 })
        #expect(pool.freeBlockCount == 31)
    }

    @Test func aShortPoolThrowsAndChangesNothing() throws {
        var pool = try BlockManager(layout: KVBlockLayout(blockSize: 4, groupWindows: [nil]), numBlocks: 5)
        var tables = pool.emptyTables
        try pool.prepare(&tables, computed: 0, adding: 12)
        let before = tables
        #expect(throws: BatchError.outOfBlocks(needed: 3, free: 2)) { try pool.prepare(&tables, computed: 12, adding: 12) }
        #expect(tables == before && pool.freeBlockCount == 2 && pool.violations(owners: [tables]).isEmpty)

        // A sliding group's released blocks count before new ones are taken.
        var sliding = try BlockManager(layout: KVBlockLayout(blockSize: 4, groupWindows: [4]), numBlocks: 3)
        var window = sliding.emptyTables
        try sliding.prepare(&window, computed: 0, adding: 12)
        #expect(sliding.freeBlockCount == 0 && sliding.blocksNeeded(window, computed: 12, adding: 4) == 0)
        try sliding.prepare(&window, computed: 12, adding: 4)  // positions 9... stay, blocks 0 and 1 go
        #expect(window[0][0] == -1 && window[0][1] == -1 && Self.held(window[0]) == 2 && sliding.freeBlockCount == 1)
        #expect(sliding.violations(owners: [window]).isEmpty)
    }

    @Test func peakBlocksIsTheMostASequenceHoldsAlone() throws {
        let layout = try KVBlockLayout(blockSize: 4, groupWindows: [8, nil])
        for length in 1...80 {
            let stepped = (0..<length).map { layout.blocksHeld(computed: $0, adding: 1) }.max()!
            #expect(layout.peakBlocks(length: length) == stepped, "length \(length)")
        }
    }
}
