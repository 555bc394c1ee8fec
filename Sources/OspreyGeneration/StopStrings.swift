// Stop strings, matched on decoded text as transformers' StopStringCriteria matches them:
// generation stops as soon as the text generated so far contains a stop string, wherever token
// boundaries fall (a token may start before the stop string and run past its end). Text that
// could still turn out to be the start of a stop string is held back, so no streamed delta ever
// carries part of one, and the text released up to a match — without the stop string, as OpenAI
// returns it — is the same streamed or not. Matching is on Unicode scalars.

/// Finds stop strings in text that arrives in pieces.
public struct StopStringMatcher: Sendable {
    private let stops: [[Unicode.Scalar]]
    private var held: [Unicode.Scalar] = []

    /// A matcher for `stopStrings` (empty strings are ignored).
    public init(_ stopStrings: [String]) {
        stops = stopStrings.map { Array($0.unicodeScalars) }.filter { !$0.isEmpty }
    }

    /// Adds `piece`; returns the text that may be released and whether a stop string was found
    /// (the text then ends right before it, and nothing more should be added).
    public mutating func append(_ piece: String) -> (text: String, stopped: Bool) {
        guard !stops.isEmpty else { return (piece, false) }
        let buffer = held + Array(piece.unicodeScalars)
        if let start = firstMatch(in: buffer) {
            held = []
            return (Self.string(buffer[..<start]), true)
        }
        // Hold the longest suffix that is a proper prefix of some stop string.
        var hold = 0
        for stop in stops {
            for k in stride(from: min(stop.count - 1, buffer.count), to: hold, by: -1)
            where buffer[(buffer.count - k)...].elementsEqual(stop[..<k]) {
                hold = k
                break
            }
        }
        held = Array(buffer.suffix(hold))
        return (Self.string(buffer.dropLast(hold)), false)
    }

    /// Releases what is held back (at the end of generation).
    public mutating func flush() -> String {
        defer { held = [] }
        return Self.string(held[...])
    }

    private func firstMatch(in buffer: [Unicode.Scalar]) -> Int? {
        var best: Int?
        for stop in stops where stop.count <= buffer.count {
            for i in 0...(buffer.count - stop.count) where i < (best ?? .max) {
                if buffer[i] == stop[0] && buffer[i..<(i + stop.count)].elementsEqual(stop) { best = i; break }
            }
        }
        return best
    }

    private static func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: scalars)
        return String(s)
    }
}
