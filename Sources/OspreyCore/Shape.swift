// Shape: the dimensions of a tensor, row-major (the last dimension is contiguous).

/// The dimensions of a row-major tensor.
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public var dims: [Int]

    public init(_ dims: [Int]) { self.dims = dims }
    public init(arrayLiteral elements: Int...) { self.dims = elements }

    /// Number of dimensions.
    public var rank: Int { dims.count }
    /// Number of elements (1 for a scalar).
    public var count: Int { dims.reduce(1, *) }
    public subscript(i: Int) -> Int { dims[i < 0 ? dims.count + i : i] }
    public var description: String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }
}
