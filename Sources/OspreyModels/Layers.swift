// Shared layer types. Linear layers are values conforming to `LinearLayer` so that tensor
// parallelism can add column- and row-sharded conformers (which load their own shard and own
// their collective) without the forward pass changing (STYLE habit 9). `WeightLoader` reads
// named tensors, checks their shapes and puts them on the model's backend.
import OspreyCore

/// y = x W^T + b for x [T, in].
public protocol LinearLayer: Sendable {
    func callAsFunction(_ x: Tensor, on backend: any Backend) throws -> Tensor
}

/// A replicated dense linear layer: weight [out, in], optional bias [out].
public struct Linear: LinearLayer {
    public var weight: Tensor
    public var bias: Tensor?

    public init(weight: Tensor, bias: Tensor?) {
        self.weight = weight
        self.bias = bias
    }

    /// Loads `prefix.weight` [out, in] (and `prefix.bias` [out] when `bias`).
    public init(_ loader: WeightLoader, _ prefix: String, out: Int, in inFeatures: Int, bias: Bool) throws {
        weight = try loader.tensor("\(prefix).weight", [out, inFeatures])
        self.bias = bias ? try loader.tensor("\(prefix).bias", [out]) : nil
    }

    public func callAsFunction(_ x: Tensor, on backend: any Backend) throws -> Tensor {
        try backend.linear(x, weight: weight, bias: bias)
    }
}

/// Reads checkpoint tensors by name, validates their shapes, and places them on the backend.
public struct WeightLoader: Sendable {
    public let source: any WeightSource
    public let backend: any Backend

    public init(source: any WeightSource, backend: any Backend) {
        self.source = source
        self.backend = backend
    }

    /// The tensor `name`, which must have shape `shape`, on the backend's device.
    public func tensor(_ name: String, _ shape: Shape) throws -> Tensor {
        try backend.upload(host(name, shape))
    }

    /// The tensor `name` in host memory (for load-time conversions), shape-checked.
    public func host(_ name: String, _ shape: Shape) throws -> Tensor {
        guard source.contains(name) else { throw ModelError.missingWeight(name) }
        let t = try source.tensor(name)
        guard t.shape == shape else { throw ModelError.badWeightShape(name, expected: "\(shape)", got: "\(t.shape)") }
        return t
    }

    public func contains(_ name: String) -> Bool { source.contains(name) }
}

/// Swaps the last two dimensions of a host tensor of 2-byte or 4-byte elements: [.., a, b] -> [.., b, a].
func transposeLastTwo(_ t: Tensor) -> Tensor {
    let (a, b) = (t.shape[-2], t.shape[-1])
    let batch = t.count / (a * b)
    var dims = t.shape.dims
    dims[dims.count - 2] = b
    dims[dims.count - 1] = a
    let out = Tensor(zeros: Shape(dims), dtype: t.dtype)
    let size = t.dtype.byteCount(elements: 1)
    let (src, dst) = (t.raw, out.mutableRaw)
    for n in 0..<batch {
        for i in 0..<a {
            for j in 0..<b {
                dst.advanced(by: ((n * b + j) * a + i) * size).copyMemory(from: src.advanced(by: ((n * a + i) * b + j) * size), byteCount: size)
            }
        }
    }
    return out
}
