// Finds special/added-token text in input: leftmost-longest, non-overlapping matches of a set of
// literal strings, as the Aho-Corasick `LeftmostLongest` automaton of Hugging Face `tokenizers`
// and tiktoken's special-token regex find them. A byte trie is enough: token sets are small and
// a first-byte table skips most positions without entering the trie.

/// Leftmost-longest matcher over a set of literal byte strings. Immutable after `init`.
struct LiteralMatcher: Sendable {
    /// Trie: node -> (byte -> child) as a flat edge list; `terminal[node]` is the pattern index or -1.
    private var edges: [[(UInt8, Int32)]] = [[]]
    private var terminal: [Int32] = [-1]
    private var firstByte = [Bool](repeating: false, count: 256)
    let patternCount: Int

    /// Patterns in order; an empty pattern is ignored; a duplicate keeps the first index.
    init(_ patterns: [[UInt8]]) {
        patternCount = patterns.count
        for (index, pattern) in patterns.enumerated() where !pattern.isEmpty {
            var node = 0
            for b in pattern {
                if let child = edges[node].first(where: { $0.0 == b })?.1 {
                    node = Int(child)
                } else {
                    edges.append([])
                    terminal.append(-1)
                    edges[node].append((b, Int32(edges.count - 1)))
                    node = edges.count - 1
                }
            }
            if terminal[node] < 0 { terminal[node] = Int32(index) }
            firstByte[Int(pattern[0])] = true
        }
    }

    var isEmpty: Bool { edges[0].isEmpty }

    /// The longest pattern starting exactly at `i`: (pattern index, end), or nil.
    func longestMatch(_ p: UnsafeBufferPointer<UInt8>, at i: Int, end: Int) -> (pattern: Int, end: Int)? {
        guard firstByte[Int(p[i])] else { return nil }
        var node = 0, j = i
        var best: (Int, Int)?
        while j < end {
            guard let child = edges[node].first(where: { $0.0 == p[j] })?.1 else { break }
            node = Int(child)
            j += 1
            if terminal[node] >= 0 { best = (Int(terminal[node]), j) }
        }
        return best
    }

    /// The leftmost-longest match starting at or after `from`.
    func nextMatch(_ p: UnsafeBufferPointer<UInt8>, from: Int, end: Int) -> (pattern: Int, start: Int, end: Int)? {
        guard !isEmpty else { return nil }
        var i = from
        while i < end {
            if firstByte[Int(p[i])], let m = longestMatch(p, at: i, end: end) { return (m.pattern, i, m.end) }
            i += 1
        }
        return nil
    }
}
