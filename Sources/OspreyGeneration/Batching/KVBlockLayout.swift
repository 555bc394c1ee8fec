// How a paged KV cache is cut up, as transformers' PagedAttentionCache cuts it: the model's layers
// fall into groups of equal size, each group either full attention (window nil) or sliding (a
// query at position p sees keys p-w+1 ... p). One pool of physical blocks of `blockSize` positions
// serves every group; a sequence keeps one block table per group, indexed by logical block
// (position / blockSize). This file owns the arithmetic on positions and blocks that the block
// manager and the scheduler share; it holds no blocks itself.

/// The groups of layers a paged KV cache serves, and the size of its blocks.
public struct KVBlockLayout: Sendable, Equatable {
    /// Token positions per block.
    public let blockSize: Int
    /// Per group, the sliding window (nil: full attention).
    public let groupWindows: [Int?]

    /// Where one layer's cache lives: its group, and its index among the group's layers.
    public struct LayerSlot: Sendable, Equatable {
        public let group: Int
        public let index: Int
        public init(group: Int, index: Int) { (self.group, self.index) = (group, index) }
    }

    /// A layout of `groupWindows.count` groups; throws if a size or window is below 1.
    public init(blockSize: Int, groupWindows: [Int?]) throws {
        guard blockSize >= 1 else { throw BatchError.invalidLayout("block size must be ≥ 1, got \(blockSize)") }
        guard !groupWindows.isEmpty else { throw BatchError.invalidLayout("a KV cache needs at least one layer group") }
        for (g, w) in groupWindows.enumerated() where w.map({ $0 < 1 }) ?? false {
            throw BatchError.invalidLayout("group \(g) has sliding window \(w!), must be ≥ 1")
        }
        (self.blockSize, self.groupWindows) = (blockSize, groupWindows)
    }

    /// Groups layers by their window as transformers' `group_layers_by_attn_type` does: the group
    /// size is the gcd of the layer counts of each kind; kinds come in order of first appearance and
    /// each kind's layers are cut, in order, into groups of that size. 24 layers alternating
    /// sliding/full give 2 groups of 12; [s, s, s, f] gives 4 groups of 1.
    public static func grouping(layerWindows: [Int?], blockSize: Int) throws -> (layout: KVBlockLayout, layers: [LayerSlot]) {
        guard !layerWindows.isEmpty else { throw BatchError.invalidLayout("a model needs at least one layer") }
        var kinds: [Int?] = [], layersOfKind: [[Int]] = []
        for (layer, w) in layerWindows.enumerated() {
            if let k = kinds.firstIndex(of: w) { layersOfKind[k].append(layer) } else { kinds.append(w); layersOfKind.append([layer]) }
        }
        let size = layersOfKind.map(\.count).reduce(0, gcd)
        var windows: [Int?] = [], slots = [LayerSlot](repeating: LayerSlot(group: 0, index: 0), count: layerWindows.count)
        for (k, layers) in layersOfKind.enumerated() {
            for (i, layer) in layers.enumerated() {
                if i % size == 0 { windows.append(kinds[k]) }
                slots[layer] = LayerSlot(group: windows.count - 1, index: i % size)
            }
        }
        return (try KVBlockLayout(blockSize: blockSize, groupWindows: windows), slots)
    }

    /// Number of groups.
    public var groupCount: Int { groupWindows.count }

    /// Blocks that hold positions 0..<length.
    public func blockCount(covering length: Int) -> Int { (length + blockSize - 1) / blockSize }

    /// The first logical block of `group` still needed once `computed` positions are cached: queries
    /// at `computed` or later see no key below computed - w + 1 (0 for full attention).
    public func firstLiveBlock(group: Int, computed: Int) -> Int {
        guard let w = groupWindows[group] else { return 0 }
        return max(0, computed - w + 1) / blockSize
    }

    /// Blocks a sequence holds, in all groups, during a step computing `count` positions after `computed`.
    public func blocksHeld(computed: Int, adding count: Int) -> Int {
        groupWindows.indices.reduce(0) { $0 + blockCount(covering: computed + count) - firstLiveBlock(group: $1, computed: computed) }
    }

    /// The fewest blocks a sequence of `length` positions must hold at once, stepping one token at a
    /// time; a request needing more can never run, even alone.
    public func peakBlocks(length: Int) -> Int {
        // Full groups only grow; a sliding group's count grows until its window fills, then repeats
        // with period blockSize without dropping below its earlier values. So every position is
        // matched or beaten by one a multiple of blockSize later, within the last blockSize positions.
        (max(0, length - blockSize)..<length).map { blocksHeld(computed: $0, adding: 1) }.max() ?? 0
    }
}

private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
