// Checks of the scheduler's bookkeeping, for tests and debugging: the pool agrees with the block
// tables, waiting requests hold nothing, running requests hold exactly their live blocks, and a
// sliding group never holds more than its window needs.

extension Scheduler {
    /// What is wrong with the scheduler's state between steps (empty when all is well).
    func invariantViolations() -> [String] {
        var problems = blocks.violations(owners: sequences.values.map(\.tables))
        let queued = running + waiting
        if Set(queued) != Set(sequences.keys) || queued.count != sequences.count {
            problems.append("running \(running) and waiting \(waiting) do not list the \(sequences.count) requests once each")
        }
        for id in waiting where sequences[id].map({ $0.computed != 0 || $0.tables.contains { !$0.isEmpty } }) ?? false {
            problems.append("\(id) is waiting but has tokens computed or blocks held")
        }
        for id in running {
            guard let seq = sequences[id] else { continue }
            if seq.computed >= seq.tokens.count { problems.append("\(id) runs with all \(seq.tokens.count) tokens computed") }
            for (g, table) in seq.tables.enumerated() {
                let live = layout.firstLiveBlock(group: g, computed: seq.computed), end = layout.blockCount(covering: seq.computed)
                if table.count < end { problems.append("\(id) group \(g) has \(table.count) blocks for \(seq.computed) positions") }
                if table.prefix(live).contains(where: { $0 >= 0 }) { problems.append("\(id) group \(g) holds blocks below its window") }
                if table.dropFirst(live).contains(-1) { problems.append("\(id) group \(g) lacks a block its window needs") }
                if let w = layout.groupWindows[g], table.count - live > (w - 1 + layout.blockSize - 1) / layout.blockSize + 1 {
                    problems.append("\(id) group \(g) holds \(table.count - live) blocks, more than window \(w) needs")
                }
            }
        }
        return problems
    }

    /// Blocks a request holds, over all groups (0 for unknown or waiting requests).
    func heldBlocks(_ id: RequestID) -> Int {
        sequences[id]?.tables.reduce(0) { $0 + $1.filter { $0 >= 0 }.count } ?? 0
    }
}
