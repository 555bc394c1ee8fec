// Dense linear layers on the CPU: out[t, o] = sum_i x[t, i] * W[o, i] + b[o]. Work is split over
// output rows; each row of W is widened to f32 once and reused for every token, so prefill of T
// tokens reads the weights once.
import OspreyCore

extension CPUBackend {
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        guard weight.shape.rank == 2, x.shape[-1] == weight.shape[1] else {
            throw OspreyError.invalidTensor("linear of x \(x.shape) with weight \(weight.shape)")
        }
        let (O, I) = (weight.shape[0], weight.shape[1])
        let T = x.count / I
        if let bias, bias.count != O { throw OspreyError.invalidTensor("linear bias \(bias.shape) for \(O) outputs") }
        let b = bias?.floats()
        let out = Tensor(zeros: [T, O], dtype: .f32)
        let (xp, op) = (x.f32Pointer, out.f32Pointer)
        parallelFor(O, grain: 16) { rows in
            let row = UnsafeMutablePointer<Float>.allocate(capacity: I)
            defer { row.deallocate() }
            for o in rows {
                loadRow(weight, start: o * I, count: I, into: row)
                let bo = b?[o] ?? 0
                for t in 0..<T { op[t * O + o] = dot(xp + t * I, row, I) + bo }
            }
        }
        return out
    }
}
