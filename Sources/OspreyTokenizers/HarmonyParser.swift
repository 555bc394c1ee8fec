// The streaming parser for harmony completions: token ids in, messages out.
//
// Feed sampled ids one at a time. The parser walks
//   expectStart --<|start|>--> header --<|message|>--> content --<|end|>|<|return|>|<|call|>--> expectStart
// (starting in `header` when the caller already knows the role, as after a `<|start|>assistant`
// prompt). While in content it hands out text deltas at UTF-8 boundaries; when a message ends it
// records how it ended, which is how callers tell a tool call (`<|call|>`) from a final answer
// (`<|return|>`) from a message followed by more (`<|end|>`).
//
// Header text is read as openai-harmony 0.0.8's `parse_header_from_string` reads it: the word after
// `<|channel|>` is the channel; of the remaining whitespace-separated words the first may be the
// role (an unknown word there followed by more is a tool's name), the last is a content type (or a
// `to=` recipient), and a word before a content type is the recipient.
//
// Unlike harmony, special tokens never end up in text: `<|start|>`, `<|message|>`, `<|channel|>`,
// reserved tokens etc. inside content, and anything but `<|channel|>`/`<|constrain|>` inside a
// header, are typed errors. `<|endoftext|>` ends the current message (as end of stream does).
// A failed `process` leaves the parser as it was before that token, so nothing here traps.

/// Why a completion could not be parsed.
public enum HarmonyParserError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Between messages only `<|start|>` may come.
    case expectedStart(token: Int)
    /// A special token where it has no meaning (e.g. `<|start|>` inside a message's content).
    case unexpectedSpecialToken(token: Int, text: String, state: String)
    /// The tokenizer cannot decode this id.
    case unknownToken(Int)
    /// The header between `<|start|>` and `<|message|>` does not read as a harmony header.
    case invalidHeader(String)
    /// The stream ended in the middle of a header.
    case endOfStreamInHeader

    public var description: String {
        switch self {
        case .expectedStart(let t): return "expected <|start|> between messages, got token \(t)"
        case .unexpectedSpecialToken(let t, let text, let state): return "unexpected special token \(text) (\(t)) in \(state)"
        case .unknownToken(let t): return "token \(t) is not in the vocabulary"
        case .invalidHeader(let why): return "invalid message header: \(why)"
        case .endOfStreamInHeader: return "the completion ended inside a message header"
        }
    }
}

/// How a parsed message ended.
public enum HarmonyMessageEnd: Sendable, Equatable {
    /// `<|end|>`: more messages may follow.
    case end
    /// `<|return|>`: the assistant's answer is done.
    case `return`
    /// `<|call|>`: the message is a tool call; run the tool and render its result.
    case call
    /// `<|endoftext|>` or the end of the stream (`finish()`).
    case endOfStream
}

/// What one token did.
public enum HarmonyParserEvent: Sendable, Equatable {
    /// `<|message|>` closed the header; `current*` now describe the new message.
    case headerComplete
    /// New text of the current message (whole characters only).
    case contentDelta(String)
    /// A message is complete.
    case messageComplete(HarmonyMessage, HarmonyMessageEnd)
}

/// An incremental parser over completion tokens (openai-harmony's `StreamableParser`).
public struct HarmonyStreamParser: Sendable {
    /// Where the parser is.
    public enum State: Sendable, Equatable { case expectStart, header, content }

    private struct Header {
        var role: HarmonyRole, name: String?, channel: String?, recipient: String?, contentType: String?
    }

    private let encoding: HarmonyEncoding
    private var nextRole: HarmonyRole?
    private var headerTokens: [Int] = []
    private var header: Header?
    private var pendingBytes: [UInt8] = []
    /// Longer headers are rejected rather than buffered without bound.
    public static let maxHeaderTokens = 4096

    public private(set) var state: State
    /// Finished messages, in order.
    public private(set) var messages: [HarmonyMessage] = []
    /// How each finished message ended, parallel to `messages`.
    public private(set) var messageEnds: [HarmonyMessageEnd] = []
    /// Text of the message being read so far.
    public private(set) var currentContent = ""
    /// The text the last token added, if it completed any characters.
    public private(set) var lastContentDelta: String?

    /// A parser for a completion; pass the role when the prompt already ended in `<|start|>{role}`.
    public init(encoding: HarmonyEncoding, role: HarmonyRole?) {
        self.encoding = encoding
        nextRole = role
        state = role == nil ? .expectStart : .header
    }

    public var currentRole: HarmonyRole? { header?.role ?? nextRole }
    public var currentChannel: String? { header?.channel }
    public var currentRecipient: String? { header?.recipient }
    public var currentContentType: String? { header?.contentType }

    /// Feeds one token.
    @discardableResult
    public mutating func process(_ token: Int) throws(HarmonyParserError) -> HarmonyParserEvent? {
        let t = encoding.formattingTokens
        lastContentDelta = nil
        switch state {
        case .expectStart:
            if token == t.start { state = .header; return nil }
            if token == t.endOfText { return nil }
            throw .expectedStart(token: token)

        case .header:
            if token == t.message {
                header = try parseHeader(headerTokens)
                nextRole = nil
                headerTokens.removeAll()
                currentContent = ""
                state = .content
                return .headerComplete
            }
            if token != t.channel && token != t.constrain, let special = try specialText(token) {
                throw .unexpectedSpecialToken(token: token, text: special, state: "a message header")
            }
            _ = try bytes(of: token)  // an id outside the vocabulary fails here, not at <|message|>
            guard headerTokens.count < Self.maxHeaderTokens else {
                throw .invalidHeader("longer than \(Self.maxHeaderTokens) tokens")
            }
            headerTokens.append(token)
            return nil

        case .content:
            switch token {
            case t.end: return finishMessage(.end)
            case t.return: return finishMessage(.return)
            case t.call: return finishMessage(.call)
            case t.endOfText: return finishMessage(.endOfStream)
            default: break
            }
            if let special = try specialText(token) {
                throw .unexpectedSpecialToken(token: token, text: special, state: "message content")
            }
            pendingBytes += try bytes(of: token)
            let (text, consumed) = HarmonyUTF8.decodePrefix(pendingBytes)
            pendingBytes.removeFirst(consumed)
            guard !text.isEmpty else { return nil }
            currentContent += text
            lastContentDelta = text
            return .contentDelta(text)
        }
    }

    /// Signals the end of the stream: a message still open is completed.
    @discardableResult
    public mutating func finish() throws(HarmonyParserError) -> HarmonyParserEvent? {
        lastContentDelta = nil
        switch state {
        case .expectStart: return nil
        case .header: throw .endOfStreamInHeader
        case .content: return finishMessage(.endOfStream)
        }
    }

    private mutating func finishMessage(_ end: HarmonyMessageEnd) -> HarmonyParserEvent {
        let h = header!
        let text = currentContent + String(decoding: pendingBytes, as: UTF8.self)
        let message = HarmonyMessage(role: h.role, name: h.name, content: [.text(text)], channel: h.channel,
                                     recipient: h.recipient, contentType: h.contentType)
        messages.append(message)
        messageEnds.append(end)
        header = nil
        pendingBytes.removeAll()
        currentContent = ""
        state = .expectStart
        return .messageComplete(message, end)
    }

    // MARK: - Tokens

    private func bytes(of token: Int) throws(HarmonyParserError) -> [UInt8] {
        do { return try encoding.tokenizer.decodeBytes([token]) } catch { throw .unknownToken(token) }
    }

    // The text of `token` if it is a special token of the vocabulary, else nil.
    private func specialText(_ token: Int) throws(HarmonyParserError) -> String? {
        guard encoding.tokenizer.isSpecialToken(token) else { return nil }
        return String(decoding: try bytes(of: token), as: UTF8.self)
    }

    // MARK: - Header

    private func parseHeader(_ tokens: [Int]) throws(HarmonyParserError) -> Header {
        var raw: [UInt8] = []
        for token in tokens { raw += try bytes(of: token) }
        guard String(validating: raw, as: UTF8.self) != nil else { throw .invalidHeader("not valid UTF-8") }
        var text = ArraySlice(raw)

        // `<|channel|>word`: the word runs to whitespace or '<'; the marker and word are cut out.
        var channel: String?
        let channelMarker = Array("<|channel|>".utf8)
        if let at = Self.find(channelMarker, in: text) {
            let valueStart = at + channelMarker.count
            var valueEnd = valueStart
            for scalar in String(decoding: text[valueStart...], as: UTF8.self).unicodeScalars {
                if scalar.properties.isWhitespace || scalar == "<" { break }
                valueEnd += UTF8.width(scalar)
            }
            guard valueEnd > valueStart else { throw .invalidHeader("<|channel|> without a channel name") }
            channel = String(decoding: text[valueStart..<valueEnd], as: UTF8.self)
            text = ArraySlice(Array(text[..<at]) + Array(text[valueEnd...]))
        }
        var rest = Self.trimmed(String(decoding: text, as: UTF8.self))
        if Self.find(Array("<|constrain|>".utf8), in: ArraySlice(rest.utf8)) != nil {
            rest = Self.trimmed(Self.replacing("<|constrain|>", with: " <|constrain|>", in: rest))
        }
        var parts = rest.utf8.split(whereSeparator: { [0x20, 0x09, 0x0A, 0x0C, 0x0D].contains($0) })
            .map { String(decoding: $0, as: UTF8.self) }

        var name: String?
        let role: HarmonyRole
        if let given = nextRole {
            role = given
        } else {
            guard let first = parts.first else { throw .invalidHeader("no role") }
            if let known = HarmonyRole(rawValue: first) {
                role = known
            } else if parts.count > 1 || first.hasPrefix("to=") {
                parts.removeFirst()
                role = .tool
                name = first
            } else {
                throw .invalidHeader("unknown role '\(first)'")
            }
        }
        if parts.first == role.rawValue { parts.removeFirst() }

        var recipient: String?
        var contentType: String?
        if let last = parts.popLast() {
            if last.hasPrefix("to=") {
                recipient = String(decoding: last.utf8.dropFirst(3), as: UTF8.self)
            } else if parts.isEmpty && !last.utf8.starts(with: "<|constrain|>".utf8) {
                recipient = last
            } else {
                contentType = last
                if let r = parts.popLast() { recipient = r.hasPrefix("to=") ? String(decoding: r.utf8.dropFirst(3), as: UTF8.self) : r }
            }
        }
        guard parts.isEmpty else { throw .invalidHeader("unexpected words '\(parts.joined(separator: " "))'") }
        // A special token anywhere else in the header (a second <|channel|>, a <|constrain|> before
        // the recipient, ...) would end up in a name: not a header.
        let constraint = contentType.map { $0.utf8.starts(with: "<|constrain|>".utf8) ? String($0.dropFirst("<|constrain|>".count)) : $0 }
        for (field, value) in [("channel", channel), ("recipient", recipient), ("name", name), ("content type", constraint)] {
            if let value, Self.find(Array("<|".utf8), in: ArraySlice(value.utf8)) != nil {
                throw .invalidHeader("a special token in the \(field) '\(value)'")
            }
        }
        return Header(role: role, name: name, channel: channel, recipient: recipient, contentType: contentType)
    }

    private static func find(_ needle: [UInt8], in hay: ArraySlice<UInt8>) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = hay.startIndex
        while i <= hay.endIndex - needle.count {
            if hay[i] == needle[0], hay[i..<i + needle.count].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    private static func replacing(_ target: String, with replacement: String, in text: String) -> String {
        let t = Array(target.utf8)
        var bytes = ArraySlice(Array(text.utf8))
        var out: [UInt8] = []
        while let at = find(t, in: bytes) {
            out += bytes[..<at] + Array(replacement.utf8)
            bytes = bytes[(at + t.count)...]
        }
        out += bytes
        return String(decoding: out, as: UTF8.self)
    }

    // Rust's `str::trim`: Unicode White_Space off both ends.
    private static func trimmed(_ text: String) -> String {
        var scalars = Substring(text).unicodeScalars
        while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() }
        while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}

extension HarmonyEncoding {
    /// A streaming parser; pass the role when the prompt ended in `<|start|>{role}`.
    public func makeParser(role: HarmonyRole? = .assistant) -> HarmonyStreamParser {
        HarmonyStreamParser(encoding: self, role: role)
    }

    /// All messages of a finished completion (`parse_messages_from_completion_tokens`).
    public func parseMessages(fromCompletionTokens tokens: [Int], role: HarmonyRole? = .assistant) throws(HarmonyParserError) -> [HarmonyMessage] {
        var parser = makeParser(role: role)
        for token in tokens { try parser.process(token) }
        try parser.finish()
        return parser.messages
    }
}

// MARK: - UTF-8

enum HarmonyUTF8 {
    enum Sequence { case valid(Int), invalid(Int), truncated }

    // Classifies the bytes at `i`: a valid sequence, a maximal invalid subpart, or a cut-off tail.
    static func sequence(in b: [UInt8], at i: Int) -> Sequence {
        let first = b[i]
        let need: Int
        var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
        switch first {
        case 0x00...0x7F: return .valid(1)
        case 0xC2...0xDF: need = 1
        case 0xE0: need = 2; lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: need = 2
        case 0xED: need = 2; upper = 0x9F
        case 0xF0: need = 3; lower = 0x90
        case 0xF1...0xF3: need = 3
        case 0xF4: need = 3; upper = 0x8F
        default: return .invalid(1)
        }
        for k in 1...need {
            guard i + k < b.count else { return .truncated }
            let c = b[i + k]
            if c < (k == 1 ? lower : 0x80) || c > (k == 1 ? upper : 0xBF) { return .invalid(k) }
        }
        return .valid(need + 1)
    }

    // Decodes whole characters from the front of `bytes`, U+FFFD for each invalid subpart,
    // stopping before a sequence that may still be completed. Returns the text and bytes used.
    static func decodePrefix(_ bytes: [UInt8]) -> (String, Int) {
        var i = 0
        var out = ""
        var runStart = 0
        while i < bytes.count {
            switch sequence(in: bytes, at: i) {
            case .valid(let n): i += n
            case .invalid(let n):
                out += String(decoding: bytes[runStart..<i], as: UTF8.self) + "\u{FFFD}"
                i += n
                runStart = i
            case .truncated:
                out += String(decoding: bytes[runStart..<i], as: UTF8.self)
                return (out, i)
            }
        }
        out += String(decoding: bytes[runStart..<i], as: UTF8.self)
        return (out, i)
    }
}
