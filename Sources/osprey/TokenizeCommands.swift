// `osprey tokenize` and `osprey detokenize`: JSON lines in, JSON lines out, for checking Osprey's
// tokenizers against the reference libraries from a shell. Errors go to stderr with a nonzero exit.
import ArgumentParser
import Foundation
import OspreyTokenizers

/// Options naming the tokenizer, shared by both commands.
struct TokenizerOptions: ParsableArguments {
    @Option(name: .long, help: "A tokenizer.json file (or a folder holding one), a .tiktoken rank file, or the name o200k_base / o200k_harmony (with --vocab-dir).")
    var tokenizer: String

    @Option(name: .long, help: "Folder containing o200k_base.tiktoken, for --tokenizer o200k_base|o200k_harmony.")
    var vocabDir: String?

    func load() throws -> any Tokenizer {
        switch tokenizer {
        case "o200k_base", "o200k_harmony":
            guard let vocabDir else { throw ValidationError("--tokenizer \(tokenizer) needs --vocab-dir (the folder holding o200k_base.tiktoken)") }
            let dir = URL(fileURLWithPath: vocabDir)
            return tokenizer == "o200k_base" ? try TiktokenEncoding.o200kBase(vocabDirectory: dir) : try TiktokenEncoding.o200kHarmony(vocabDirectory: dir)
        default:
            return try loadTokenizer(at: URL(fileURLWithPath: tokenizer))
        }
    }
}

/// Reads stdin line by line, maps each line, prints each result; the first error stops with exit 1.
private func mapLines(_ transform: (String) throws -> String) throws {
    var number = 0
    while let line = readLine(strippingNewline: true) {
        number += 1
        if line.isEmpty { continue }
        do {
            print(try transform(line))
        } catch {
            FileHandle.standardError.write(Data("line \(number): \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

private struct InputError: Error, CustomStringConvertible {
    let description: String
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode text to token ids.",
        discussion: "Reads one JSON string per line from stdin and prints each line's ids as a JSON array.")

    @OptionGroup var options: TokenizerOptions

    @Option(name: .long, help: "all: special-token text becomes the special token (default); none: it is encoded as plain text.")
    var special: SpecialMode = .all

    @Flag(name: .long, help: "Add the post-processor's special tokens (BOS/EOS) where the tokenizer defines them.")
    var addSpecialTokens = false

    enum SpecialMode: String, ExpressibleByArgument { case all, none }

    func run() throws {
        let tokenizer = try options.load()
        try mapLines { line in
            guard let text = try? JSONDecoder().decode(String.self, from: Data(line.utf8)) else {
                throw InputError(description: "expected a JSON string")
            }
            let ids: [Int]
            switch tokenizer {
            case let t as TiktokenEncoding:
                ids = special == .all ? try t.encode(text, allowedSpecial: t.allSpecialTokens) : t.encodeOrdinary(text)
            case let t as HFTokenizer:
                ids = t.encode(text, addSpecialTokens: addSpecialTokens, matchSpecialTokens: special == .all)
            default:
                ids = try tokenizer.encode(text, addSpecialTokens: addSpecialTokens)
            }
            return "[" + ids.map(String.init).joined(separator: ", ") + "]"
        }
    }
}

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode token ids to text.",
        discussion: "Reads one JSON array of ids per line from stdin and prints each line's text as a JSON string.")

    @OptionGroup var options: TokenizerOptions

    @Flag(name: .long, help: "Leave special tokens out of the text.")
    var skipSpecialTokens = false

    func run() throws {
        let tokenizer = try options.load()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        try mapLines { line in
            guard let ids = try? JSONDecoder().decode([Int].self, from: Data(line.utf8)) else {
                throw InputError(description: "expected a JSON array of integers")
            }
            let text = try tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)
            return String(decoding: try encoder.encode(text), as: UTF8.self)
        }
    }
}
