// A batch-serving workload as tools/make_workload.py writes it (the one file Osprey and the
// transformers peer both replay): prompts as token ids, a token count to generate, and when each
// request arrives. Checked when read: a malformed file is an error naming what is wrong.
import Foundation

struct Workload: Decodable {
    var name: String
    var seed: Int?
    var vocabSize: Int?
    var maxNewTokens: Int
    var arrival: Arrival
    var requests: [Request]

    struct Request: Decodable {
        var id: Int
        var prompt: [Int32]
        var arrivalS: Double
    }

    /// "all-at-once", or {"rate_per_s": R}.
    enum Arrival: Decodable, Encodable {
        case allAtOnce
        case rate(Double)

        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) {
                guard s == "all-at-once" else { throw CLIError("workload arrival \"\(s)\": expected \"all-at-once\" or {\"rate_per_s\": R}") }
                self = .allAtOnce
            } else {
                struct Rate: Decodable { var ratePerS: Double }
                self = .rate(try c.decode(Rate.self).ratePerS)
            }
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .allAtOnce: try c.encode("all-at-once")
            case .rate(let r): try c.encode(["rate_per_s": r])
            }
        }
    }

    static func load(_ path: String, vocabulary: Int) throws -> Workload {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read workload \(path)") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let w: Workload
        do { w = try decoder.decode(Workload.self, from: data) } catch let e as CLIError { throw e } catch {
            throw CLIError("workload \(path) is not a make_workload.py file: \(error)")
        }
        guard w.maxNewTokens >= 1 else { throw CLIError("workload \(path): max_new_tokens must be ≥ 1, got \(w.maxNewTokens)") }
        guard !w.requests.isEmpty else { throw CLIError("workload \(path) has no requests") }
        for r in w.requests {
            guard !r.prompt.isEmpty else { throw CLIError("workload \(path): request \(r.id) has an empty prompt") }
            guard r.arrivalS >= 0, r.arrivalS.isFinite else { throw CLIError("workload \(path): request \(r.id) arrives at \(r.arrivalS) s") }
            if let bad = r.prompt.first(where: { $0 < 0 || Int($0) >= vocabulary }) {
                throw CLIError("workload \(path): request \(r.id) has token id \(bad), outside the model's vocabulary of \(vocabulary)")
            }
        }
        return w
    }
}

/// Percentiles as numpy computes them by default (linear between order statistics).
struct Distribution: Encodable {
    var p50, p90, p99, mean, max: Double
    var n: Int

    init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        func q(_ p: Double) -> Double {
            let x = p * Double(s.count - 1), i = Int(x), f = x - Double(i)
            return i + 1 < s.count ? s[i] + f * (s[i + 1] - s[i]) : s[i]
        }
        (p50, p90, p99, mean, max, n) = (q(0.5), q(0.9), q(0.99), s.reduce(0, +) / Double(s.count), s.last!, s.count)
    }
}
