// MXFP4Tiling: every stored block lands at `index`, padding is zero, and filling in pieces
// (as the pinned-slot copy does) writes the same bytes as one fill.
import Testing
@testable import OspreyCore

@Suite struct MXFP4TilingTests {
    /// Stored blocks whose 16 bytes name their (expert, row, block).
    func stored(_ E: Int, _ R: Int, _ nb: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: E * R * nb * 16)
        for e in 0..<E { for r in 0..<R { for b in 0..<nb {
            let o = ((e * R + r) * nb + b) * 16
            bytes[o] = UInt8(e); bytes[o + 1] = UInt8(r & 0xff); bytes[o + 2] = UInt8(r >> 8); bytes[o + 3] = UInt8(b)
            for i in 4..<16 { bytes[o + i] = UInt8((e * 7 + r * 13 + b * 29 + i) % 251 + 1) }  // never all zero
        } } }
        return bytes
    }

    @Test(arguments: [(1, 128, 2), (2, 130, 3), (3, 256, 90), (2, 5, 1), (1, 300, 7)])
    func blocksLandAtTheirIndexAndPaddingIsZero(_ shape: (Int, Int, Int)) {
        let (E, R, nb) = shape
        let t = MXFP4Tiling(experts: E, rows: R, blocksPerRow: nb)
        #expect(t.byteCount == E * ((R + 127) / 128) * ((nb + 1) / 2) * 2 * 128 * 16)
        let src = stored(E, R, nb)
        var out = [UInt8](repeating: 0xAB, count: t.byteCount)
        src.withUnsafeBytes { s in out.withUnsafeMutableBytes { d in t.fill(d.baseAddress!, positions: 0..<(t.byteCount / 16), from: s.baseAddress!) } }
        var used = Set<Int>()
        for e in 0..<E { for r in 0..<R { for b in 0..<nb {
            let i = t.index(expert: e, row: r, block: b)
            #expect(used.insert(i).inserted)
            let o = ((e * R + r) * nb + b) * 16
            #expect(Array(out[(16 * i)..<(16 * i + 16)]) == Array(src[o..<(o + 16)]))
        } } }
        for i in 0..<(t.byteCount / 16) where !used.contains(i) {
            #expect(out[(16 * i)..<(16 * i + 16)].allSatisfy { $0 == 0 })
        }
    }

    @Test func blocksOfAStageAreOneRun() {
        // Blocks 2j, 2j + 1 of rows 128 t ..< 128 t + 128 are 256 consecutive positions, plane by plane.
        let t = MXFP4Tiling(experts: 2, rows: 384, blocksPerRow: 90)
        let base = t.index(expert: 1, row: 256, block: 44)
        for h in 0..<2 { for r in 0..<128 { #expect(t.index(expert: 1, row: 256 + r, block: 44 + h) == base + h * 128 + r) } }
    }

    @Test func piecewiseFillEqualsOneFill() {
        let (E, R, nb) = (2, 200, 5)
        let t = MXFP4Tiling(experts: E, rows: R, blocksPerRow: nb)
        let src = stored(E, R, nb), n = t.byteCount / 16
        var whole = [UInt8](repeating: 0, count: t.byteCount), pieces = [UInt8](repeating: 0xCD, count: t.byteCount)
        src.withUnsafeBytes { s in
            whole.withUnsafeMutableBytes { d in t.fill(d.baseAddress!, positions: 0..<n, from: s.baseAddress!) }
            pieces.withUnsafeMutableBytes { d in
                var at = 0, step = 1
                while at < n {
                    let hi = min(n, at + step)
                    t.fill(d.baseAddress! + 16 * at, positions: at..<hi, from: s.baseAddress!)
                    (at, step) = (hi, step * 3 % 97 + 1)
                }
            }
        }
        #expect(whole == pieces)
    }
}
