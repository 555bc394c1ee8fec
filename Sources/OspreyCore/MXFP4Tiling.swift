// Osprey's tiled layout of MXFP4 expert blocks, which the CUDA backend loads experts in: the
// stored [E, R, nb, 16] bytes regrouped as [E, ⌈R / 128⌉, ⌈nb / 2⌉, 2, 128, 16], zero-padded.
// Blocks 2j and 2j + 1 of 128 consecutive rows become one contiguous 4 KB run — exactly one
// stage of the grouped MXFP4 GEMM (moe_grouped.cu), which then streams whole runs instead of
// 32 bytes from each of 128 rows 1.4 KB apart — and 4 consecutive rows of one block are 64
// contiguous bytes (the decode kernels' unit). Scales keep the stored layout. `mx_block` in
// common.cuh is the device twin of `index`; the conversion runs once, at load, while the bytes
// are copied to the GPU.

/// The tiled MXFP4 blocks layout (rows in tiles of 128, blocks in pairs).
public struct MXFP4Tiling: Sendable, Equatable {
    /// Rows per tile.
    public static let tileRows = 128
    public let experts, rows, blocksPerRow: Int

    /// The layout of a blocks tensor [E, R, nb, 16].
    public init(experts: Int, rows: Int, blocksPerRow: Int) {
        (self.experts, self.rows, self.blocksPerRow) = (experts, rows, blocksPerRow)
    }

    var rowTiles: Int { (rows + Self.tileRows - 1) / Self.tileRows }
    var blockPairs: Int { (blocksPerRow + 1) / 2 }

    /// Bytes of the tiled tensor (padding included).
    public var byteCount: Int { experts * rowTiles * blockPairs * 2 * Self.tileRows * MXFP4.bytesPerBlock }

    /// Position (in 16-byte blocks) of block b of row r of expert e in the tiled tensor.
    public func index(expert e: Int, row r: Int, block b: Int) -> Int {
        (((e * rowTiles + r / Self.tileRows) * blockPairs + b / 2) * 2 + b % 2) * Self.tileRows + r % Self.tileRows
    }

    /// Writes tiled blocks `range` (positions in 16-byte blocks) to `destination` from the stored
    /// `source` bytes; padding positions become zeros. Any split of the positions into ranges
    /// writes the same bytes, so a copy can fill its staging buffers piece by piece, in parallel.
    public func fill(_ destination: UnsafeMutableRawPointer, positions range: Range<Int>, from source: UnsafeRawPointer) {
        let (R, nb, T) = (rows, blocksPerRow, Self.tileRows)
        let perExpert = rowTiles * blockPairs * 2 * T
        var out = destination
        for pos in range {
            let e = pos / perExpert, inExpert = pos % perExpert
            let rr = inExpert % T, h = (inExpert / T) % 2, pair = (inExpert / (2 * T)) % blockPairs
            let r = (inExpert / (2 * T * blockPairs)) * T + rr, b = 2 * pair + h
            if r < R && b < nb {
                out.copyMemory(from: source + ((e * R + r) * nb + b) * MXFP4.bytesPerBlock, byteCount: MXFP4.bytesPerBlock)
            } else {
                out.initializeMemory(as: UInt8.self, repeating: 0, count: MXFP4.bytesPerBlock)
            }
            out += MXFP4.bytesPerBlock
        }
    }
}
