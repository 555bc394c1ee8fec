// tokenizer-throughput: single-threaded o200k encode throughput of OspreyTokenizers on a text file.
// Usage: tokenizer-throughput VOCAB_DIR TEXT_FILE [REPEATS]
// Prints one JSON object: bytes, tokens, best seconds, MB/s, and an FNV-1a hash of the ids so that
// compare.py can check the ids equal tiktoken's. Driven by compare.py in this folder.
import Foundation
import OspreyTokenizers

let args = CommandLine.arguments
guard args.count >= 3 else {
    FileHandle.standardError.write(Data("usage: tokenizer-throughput VOCAB_DIR TEXT_FILE [REPEATS]\n".utf8))
    exit(2)
}
let repeats = args.count > 3 ? Int(args[3]) ?? 3 : 3
do {
    let loadStart = Date()
    let encoding = try TiktokenEncoding.o200kBase(vocabDirectory: URL(fileURLWithPath: args[1]))
    let loadSeconds = Date().timeIntervalSince(loadStart)
    guard let data = FileManager.default.contents(atPath: args[2]) else { throw TokenizerError.unreadableFile(path: args[2], reason: "cannot open") }
    let text = String(decoding: data, as: UTF8.self)
    var best = Double.infinity
    var ids: [Int] = []
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        ids = encoding.encodeOrdinary(text)
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for id in ids { hash = (hash ^ UInt64(id)) &* 0x100_0000_01b3 }
    let mbps = Double(data.count) / 1e6 / best
    print("{\"bytes\": \(data.count), \"tokens\": \(ids.count), \"seconds\": \(best), \"mb_per_s\": \(mbps), \"load_seconds\": \(loadSeconds), \"ids_fnv1a\": \"\(String(hash, radix: 16))\"}")
} catch {
    FileHandle.standardError.write(Data("tokenizer-throughput: \(error)\n".utf8))
    exit(1)
}
