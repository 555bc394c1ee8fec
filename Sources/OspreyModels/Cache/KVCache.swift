// The KV cache protocol (STYLE habit 8): a layer appends the keys and values of the tokens being
// computed and gets back every key/value those tokens may attend to, with the absolute position
// of the first one. Conformers decide what they keep: DynamicCache keeps only the last window-1
// positions on sliding layers and everything on full layers, growing as needed; StaticCache does
// the same in buffers allocated once, for a maximum length. A cache is an owned, mutable
// resource used by one sequence at a time, hence a class protocol.
import OspreyCore

/// Per-layer key/value storage for one sequence.
public protocol KVCache: AnyObject {
    /// Number of tokens already computed (the position of the next token).
    var offset: Int { get }
    /// Appends k, v [T, Hkv, D] for `layer` (positions offset..<offset+T) and returns the keys
    /// and values visible to this step, [S, Hkv, D], whose first row is at position `keyStart`.
    func update(layer: Int, k: Tensor, v: Tensor) throws -> (k: Tensor, v: Tensor, keyStart: Int)
    /// Moves `offset` past the tokens of the step every layer has just stored.
    func advance(by count: Int)
    /// Token positions currently stored for `layer` (what its memory holds).
    func storedTokens(layer: Int) -> Int
}
