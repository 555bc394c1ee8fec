// Splitting work across the CPU's cores. The oracle stays naive (plain loops), but a 2-core CI
// machine should still use both: each op splits its outer loop into contiguous chunks.
import Dispatch
import Foundation
import OspreyCore

/// Runs `body` over contiguous chunks of `0..<count` on all cores; chunks hold at least `grain` items.
func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let chunks = min(max(1, count / max(grain, 1)), cores * 4)
    if chunks <= 1 { body(0..<count); return }
    let size = (count + chunks - 1) / chunks
    // Each chunk touches a disjoint range of the output, so sharing the closure (and the raw
    // pointers it captures) across threads is safe; Swift cannot see that, hence the opt-out.
    nonisolated(unsafe) let body = body
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = c * size, hi = min(count, lo + size)
        if lo < hi { body(lo..<hi) }
    }
}

/// Widens `count` elements of a host tensor's row starting at element `start` into `out`.
@inline(__always)
func loadRow(_ t: Tensor, start: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
    switch t.dtype {
    case .f32:
        out.update(from: t.raw.assumingMemoryBound(to: Float.self) + start, count: count)
    case .bf16:
        let p = t.raw.assumingMemoryBound(to: UInt16.self) + start
        for i in 0..<count { out[i] = Float(bitPattern: UInt32(p[i]) << 16) }
    case .f16:
        let p = t.raw.assumingMemoryBound(to: Float16.self) + start
        for i in 0..<count { out[i] = Float(p[i]) }
    default:
        for i in 0..<count { out[i] = t.float(at: start + i) }
    }
}

/// Dot product of two f32 vectors.
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
    var i = 0
    while i + 4 <= n {
        s0 += a[i] * b[i]; s1 += a[i + 1] * b[i + 1]; s2 += a[i + 2] * b[i + 2]; s3 += a[i + 3] * b[i + 3]
        i += 4
    }
    while i < n { s0 += a[i] * b[i]; i += 1 }
    return (s0 + s1) + (s2 + s3)
}

extension Tensor {
    var f32Pointer: UnsafeMutablePointer<Float> { mutableRaw.assumingMemoryBound(to: Float.self) }
}
