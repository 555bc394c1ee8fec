// `osprey bench-batch`: replays a workload (tools/make_workload.py) through the continuous-batching
// engine as a server's clients would — each request submitted at its arrival time (optionally at
// most --max-concurrency in flight), its tokens read from its stream — and writes the JSON of
// tools/bench_transformers_batch.py (the peer), so tools/render_batch.py puts them side by side.
// Greedy, no stop ids: every request generates exactly max_new_tokens.
import ArgumentParser
import Foundation
import OspreyCore
import OspreyCUDA
import OspreyGeneration

struct BenchBatch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-batch",
        abstract: "Serve a workload file with continuous batching; throughput, TTFT and latency as JSON.")

    @Option(help: "Model folder.") var model: String
    @Option(help: "Workload JSON (tools/make_workload.py).") var workload: String
    @Option(help: "cpu, cuda, cuda:N or auto.") var device: DeviceChoice = .auto
    @Flag(help: "Expand MXFP4 experts to bf16 when loading.") var dequantize = false
    @Option(name: .customLong("num-blocks"), help: "KV blocks (default: sized from free GPU memory).") var numBlocks: Int?
    @Option(name: .customLong("block-size"), help: "Positions per KV block.") var blockSize = 32
    @Option(name: .customLong("max-batch-tokens"), help: "Tokens per step at most.") var maxBatchTokens = 2048
    @Option(name: .customLong("max-sequences"), help: "Requests per step at most.") var maxSequences = 256
    @Option(name: .customLong("kv-dtype"), help: "What the KV pool stores: bf16 or f32.") var kvDType = "bf16"
    @Option(name: .customLong("max-concurrency"), help: "Requests in flight at most (default: no cap).") var maxConcurrency: Int?
    @Option(name: .customLong("time-limit"), help: "Stop after this many seconds and report what was done.") var timeLimit: Double?
    @Option(name: .customLong("warmup-requests"), help: "Short untimed requests first.") var warmupRequests = 4
    @Option(help: "Also write the JSON to this file.") var json: String?

    func run() throws {
        try reportingErrors {
            for (v, flag) in [(blockSize, "--block-size"), (maxBatchTokens, "--max-batch-tokens"), (maxSequences, "--max-sequences"),
                              (maxConcurrency ?? 1, "--max-concurrency"), (numBlocks ?? 1, "--num-blocks")] where v < 1 {
                throw CLIError("\(flag) must be ≥ 1, got \(v)")
            }
            guard let kv = DType(rawValue: kvDType), [DType.bf16, .f32].contains(kv) else {
                throw CLIError("--kv-dtype must be bf16 or f32, got \(kvDType)")
            }
            let url = URL(fileURLWithPath: model)
            let loadStart = Date()
            let loaded = try LoadedModel.load(url, device: device, dequantize: dequantize)
            let loadS = Date().timeIntervalSince(loadStart)
            let w = try Workload.load(workload, vocabulary: loaded.model.vocabularySize)
            let gpu = (loaded.model.backend as? CUDABackend)?.context
            var memory = try gpu.map { [try $0.memoryInUse()] } ?? []

            var batch = BatchConfig(blockSize: blockSize, numBlocks: numBlocks, maxBatchTokens: maxBatchTokens, maxSequences: maxSequences, kvDType: kv)
            batch.memoryFraction = 0.8
            let engine = try Engine(model: loaded.model, config: batch)
            if let gpu { memory.append(try gpu.memoryInUse()) }
            var generation = GenerationConfig()
            generation.eosTokenIds = []
            generation.maxNewTokens = w.maxNewTokens

            // Warm-up: kernels compiled, GEMM plans made, workspace grown.
            if warmupRequests > 0 {
                var short = generation
                short.maxNewTokens = 16
                let warm = Recorder(count: warmupRequests)
                for i in 0..<warmupRequests {
                    let prompt = (0..<(64 + 32 * i)).map { Int32(($0 * 7919 + i) % loaded.model.vocabularySize) }
                    warm.consume(i, try engine.add(prompt: prompt, generation: short).tokens)
                }
                warm.waitAll(until: nil)
            }

            let rec = Recorder(count: w.requests.count)
            let start = Date()
            let deadline = timeLimit.map { start.addingTimeInterval($0) }
            for (i, r) in w.requests.enumerated() {
                let due = start.addingTimeInterval(r.arrivalS)
                if due > Date() { Thread.sleep(until: due) }
                if let c = maxConcurrency { rec.waitForSlot(maxInFlight: c, until: deadline) }
                if let deadline, Date() >= deadline { break }
                rec.submitted(i)
                rec.consume(i, try engine.add(prompt: r.prompt, generation: generation).tokens)
            }
            let finishedInTime = rec.waitAll(until: deadline)
            let wall = (finishedInTime ? rec.lastEnd : Date()).timeIntervalSince(start)
            let steps = engine.metrics
            engine.shutdown()
            if let gpu { memory.append(try gpu.memoryInUse()) }

            let done = rec.snapshot()
            let output = done.reduce(0) { $0 + $1.tokens }
            let prompts = zip(w.requests, done).reduce(0) { $0 + ($1.1.tokens > 0 ? $1.0.prompt.count : 0) }
            let completed = done.filter { $0.finish != nil && $0.finish != .cancelled }
            let gib = { (b: Int) in (Double(b) / 1_073_741_824 * 100).rounded() / 100 }
            let report = BatchReport(
                engine: "osprey",
                versions: ["osprey": Osprey.configuration.version, "cuda": gpu.map { "\($0.driverVersion / 1000).\($0.driverVersion % 1000 / 10)" },
                           "driver": gpu.flatMap { _ in Bench.nvidiaDriverVersion() }],
                device: .init(name: Bench.deviceName(gpu), kind: gpu == nil ? "cpu" : "cuda", memoryGib: gpu.map { gib($0.totalMemory) }),
                model: try ModelSummary(folder: loaded.folder, dequantized: dequantize),
                workload: .init(name: w.name, file: workload, requests: w.requests.count, promptTokens: w.requests.reduce(0) { $0 + $1.prompt.count },
                                maxNewTokens: w.maxNewTokens, arrival: w.arrival,
                                concurrency: maxConcurrency ?? (w.arrival.isAllAtOnce ? w.requests.count : nil)),
                settings: .init(numBlocks: steps.totalBlocks, blockSize: blockSize, maxBatchTokens: maxBatchTokens, maxSequences: maxSequences,
                                kvDtype: kv.rawValue, dequantize: dequantize, device: device.description, loadS: (loadS * 100).rounded() / 100),
                results: .init(wallS: wall, outputTokens: output, outputTokS: Double(output) / wall, totalTokS: Double(prompts + output) / wall,
                               ttftS: Distribution(completed.compactMap { r in r.firstToken.flatMap { f in r.submitted.map { f.timeIntervalSince($0) } } }),
                               latencyS: Distribution(completed.compactMap { r in r.end.flatMap { e in r.submitted.map { e.timeIntervalSince($0) } } }),
                               completed: completed.count, requests: w.requests.count, expectedOutputTokens: w.requests.count * w.maxNewTokens,
                               shortRequests: completed.filter { $0.tokens < w.maxNewTokens }.count, timeLimited: !finishedInTime,
                               peakGib: memory.max().map(gib), afterLoadGib: memory.first.map(gib),
                               steps: steps.steps, tokensPerStep: steps.steps > 0 ? Double(steps.tokensFed) / Double(steps.steps) : 0,
                               preemptions: steps.scheduler.preemptions),
                date: ISO8601DateFormatter().string(from: Date()),
                command: "osprey " + CommandLine.arguments.dropFirst().joined(separator: " "))
            if let json { try report.write(to: json) }
            emit(String(decoding: try report.jsonData(), as: UTF8.self))
        }
    }
}

extension Workload.Arrival {
    var isAllAtOnce: Bool { if case .allAtOnce = self { true } else { false } }
}

/// When each request was submitted, got its first token and ended; read by the benchmark.
final class Recorder: @unchecked Sendable {  // every field is guarded by `lock`
    struct Times { var submitted: Date?, firstToken: Date?, end: Date?, tokens = 0, finish: FinishReason? }
    private let lock = NSCondition()
    private var times: [Times]
    private var inFlight = 0, ended = 0, started = 0
    private(set) var lastEnd = Date()

    init(count: Int) { times = Array(repeating: Times(), count: count) }

    func submitted(_ i: Int) {
        lock.lock(); times[i].submitted = Date(); inFlight += 1; started += 1; lock.unlock()
    }

    /// Reads request i's stream on a task of its own.
    func consume(_ i: Int, _ stream: AsyncThrowingStream<GeneratedToken, Error>) {
        lock.lock(); if times[i].submitted == nil { times[i].submitted = Date(); inFlight += 1; started += 1 }; lock.unlock()
        Task.detached { [self] in
            var finish: FinishReason? = nil
            do {
                for try await e in stream {
                    if e.token != nil { token(i) }
                    finish = e.finish ?? finish
                }
            } catch { finish = .cancelled }
            end(i, finish)
        }
    }

    private func token(_ i: Int) {
        lock.lock()
        if times[i].firstToken == nil { times[i].firstToken = Date() }
        times[i].tokens += 1
        lock.unlock()
    }

    private func end(_ i: Int, _ finish: FinishReason?) {
        lock.lock()
        (times[i].end, times[i].finish) = (Date(), finish ?? .cancelled)
        lastEnd = times[i].end!
        inFlight -= 1
        ended += 1
        lock.broadcast()
        lock.unlock()
    }

    func waitForSlot(maxInFlight: Int, until deadline: Date?) {
        lock.lock()
        while inFlight >= maxInFlight { if !wait(until: deadline) { break } }
        lock.unlock()
    }

    /// Waits for every submitted request to end; false if the deadline came first.
    @discardableResult
    func waitAll(until deadline: Date?) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while ended < started { if !wait(until: deadline) { return ended == started } }
        return true
    }

    /// `lock.wait`, with a deadline when there is one (Foundation on Linux traps on `.distantFuture`).
    private func wait(until deadline: Date?) -> Bool {
        guard let deadline else { lock.wait(); return true }
        return lock.wait(until: deadline)
    }

    func snapshot() -> [Times] { lock.lock(); defer { lock.unlock() }; return times }
}
