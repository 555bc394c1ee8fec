// Every error status a client can cause, each with an OpenAI error object: 400 (bad JSON, wrong
// types, unknown roles, n != 1, logprobs, max_tokens out of range, a request too big for the KV pool, empty
// messages, bad token ids), 401 (API key), 404 (unknown route), 413 (body limit), 429 (queue full).
// After each bad request a good one still succeeds.
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import OspreyGeneration
import OspreyServer

@Suite struct ErrorTests {
    static let user = #"[{"role": "user", "content": "Hi"}]"#

    @Test(arguments: [
        (#"{"messages": "#, "invalid_json", nil),
        (#"{"messages": "Hi"}"#, "invalid_type", "messages"),
        (#"{"messages": [{"role": "wizard", "content": "Hi"}]}"#, nil, "messages[0].role"),
        (#"{"messages": [{"role": "user"}]}"#, nil, "messages[0].content"),
        (#"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#, nil, "messages[0].content"),
        (#"{"messages": []}"#, nil, "messages"),
        (#"{"messages": \#(user), "n": 2}"#, nil, "n"),
        (#"{"messages": \#(user), "logprobs": true}"#, nil, "logprobs"),  // refused, not answered without them
        (#"{"messages": \#(user), "top_logprobs": 3}"#, nil, "logprobs"),
        (#"{"messages": \#(user), "max_tokens": 0}"#, nil, "max_tokens"),
        (#"{"messages": \#(user), "max_tokens": 1000000}"#, "context_length_exceeded", "max_tokens"),
        (#"{"messages": \#(user), "max_tokens": 20000}"#, "context_length_exceeded", "max_tokens"),  // over the KV pool
        (#"{"messages": \#(user), "temperature": 5}"#, nil, "temperature"),
        (#"{"messages": \#(user), "top_p": 0}"#, nil, "top_p"),
        (#"{"messages": \#(user), "max_tokens": "many"}"#, "invalid_type", "max_tokens"),
        (#"{"messages": \#(user), "reasoning_effort": "extreme"}"#, nil, "reasoning_effort"),
        (#"{"messages": \#(user), "tool_choice": "sometimes"}"#, nil, "tool_choice"),
        (#"{"messages": \#(user), "stop": [""]}"#, nil, "stop"),
        (#"{"model": "tiny"}"#, "missing_required_parameter", "messages"),
    ] as [(String, String?, String?)])
    func badChatRequestsAre400(body: String, code: String?, param: String?) async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let response = try await client.post("/v1/chat/completions", body)
                #expect(response.status == .badRequest, "\(body) -> \(response.status) \(response.text)")
                let error = try response.error()
                #expect(error["type"] as? String == "invalid_request_error")
                #expect(error["message"] is String)
                if let code { #expect(error["code"] as? String == code, "\(response.text)") }
                if let param { #expect(error["param"] as? String == param, "\(response.text)") }
                let ok = try await client.post("/v1/chat/completions", #"{"messages": \#(Self.user), "max_tokens": 2}"#)
                #expect(ok.status == .ok)
            }
            #expect(served.admission.inFlight == 0)
        }
    }

    @Test(arguments: [
        #"{"prompt": [1, 2, 100000]}"#, #"{"prompt": []}"#, #"{"prompt": [[1, 2]]}"#, #"{"prompt": "Hi", "n": 3}"#,
        #"{"prompt": "Hi", "max_tokens": -1}"#, #"{"max_tokens": 3}"#, #"{"prompt": "Hi", "logprobs": 0}"#,
    ])
    func badCompletionRequestsAre400(body: String) async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let response = try await client.post("/v1/completions", body)
                #expect(response.status == .badRequest, "\(body) -> \(response.text)")
                #expect(try response.error()["type"] as? String == "invalid_request_error")
            }
        }
    }

    @Test func unknownRouteIs404() async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let response = try await client.execute(uri: "/v1/nothing", method: .get)
                #expect(response.status == .notFound)
                #expect(try response.error()["type"] as? String == "not_found_error")
            }
        }
    }

    @Test func unknownModelIs404() async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let response = try await client.post("/v1/chat/completions", #"{"model": "gpt-5", "messages": \#(Self.user)}"#)
                #expect(response.status == .notFound)
                #expect(try response.error()["code"] as? String == "model_not_found")
                let completion = try await client.post("/v1/completions", #"{"model": "gpt-5", "prompt": "Hi"}"#)
                #expect(completion.status == .notFound)
            }
        }
    }

    @Test func apiKeyIsRequired() async throws {
        var options = ServerOptions()
        options.apiKey = "sekret"
        try await withServed(options) { served in
            try await withClient(served) { client in
                let missing = try await client.execute(uri: "/v1/models", method: .get)
                #expect(missing.status == .unauthorized)
                #expect(try missing.error()["code"] as? String == "invalid_api_key")
                let wrong = try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer nope"])
                #expect(wrong.status == .unauthorized)
                let chat = try await client.post("/v1/chat/completions", #"{"messages": \#(Self.user)}"#)
                #expect(chat.status == .unauthorized)
                let right = try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer sekret"])
                #expect(right.status == .ok)
                let health = try await client.execute(uri: "/health", method: .get)
                #expect(health.status == .ok)
            }
        }
    }

    @Test func oversizedBodyIs413() async throws {
        var options = ServerOptions()
        options.maxBodyBytes = 2048
        try await withServed(options) { served in
            try await withClient(served) { client in
                let big = String(repeating: "a", count: 4096)
                let response = try await client.post("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "\#(big)"}]}"#)
                #expect(response.status == .contentTooLarge)
                #expect(try response.error()["code"] as? String == "request_too_large")
            }
        }
    }

    @Test func fullQueueIs429() async throws {
        var options = ServerOptions()
        options.maxQueue = 1
        try await withServed(options) { served in
            try await withClient(served) { client in
                // One request holds the only place.
                let held = try served.admission.enter()
                let refused = try await client.post("/v1/chat/completions", #"{"messages": \#(Self.user), "max_tokens": 2}"#)
                #expect(refused.status == .tooManyRequests)
                #expect(try refused.error()["type"] as? String == "rate_limit_error")
                withExtendedLifetime(held) {}
            }
            // The ticket is released: a request goes through again.
            try await withClient(served) { client in
                let ok = try await client.post("/v1/chat/completions", #"{"messages": \#(Self.user), "max_tokens": 2}"#)
                #expect(ok.status == .ok)
            }
        }
    }

    @Test func secondConcurrentRequestWithQueueOfOneIs429() async throws {
        var options = ServerOptions()
        options.maxQueue = 1
        // No end-of-sequence ids: the first request runs to its max_tokens.
        let base = try Fixture.loaded()
        var generation = base.generationConfig
        generation.eosTokenIds = []
        let loaded = LoadedModel(folder: base.folder, model: base.model, tokenizer: base.tokenizer,
                                 generationConfig: generation, chatFormat: base.chatFormat)
        try await withServed(options, numBlocks: 512, loaded: loaded) { served in
            try await withClient(served) { client in
                async let long = client.post("/v1/completions", #"{"prompt": "Hi", "max_tokens": 1500, "temperature": 0}"#)
                for _ in 0..<500 where served.admission.inFlight == 0 { try await Task.sleep(for: .milliseconds(5)) }
                let second = try await client.post("/v1/completions", #"{"prompt": "Hi", "max_tokens": 2}"#)
                let first = try await long
                #expect(second.status == .tooManyRequests, "\(second.text)")
                #expect(try second.error()["code"] as? String == "rate_limit_exceeded")
                #expect(first.status == .ok)
                #expect((try first.object()["usage"] as? [String: Int])?["completion_tokens"] == 1500)
            }
        }
    }
}
