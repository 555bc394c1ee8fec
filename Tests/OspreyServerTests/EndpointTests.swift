// The endpoints on a tiny random gpt-oss model (CPU, router client): health, models, chat and
// completions whole and streamed. Random weights produce malformed harmony, so the checks are on
// structure — JSON shape, no special token in text, usage counts, max_tokens, SSE framing — and on
// streamed and whole replies agreeing for the same greedy request.
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import OspreyGeneration
import OspreyServer

@Suite struct EndpointTests {
    @Test func healthAndModels() async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let health = try await client.execute(uri: "/health", method: .get)
                #expect(health.status == .ok)
                #expect(try health.object()["status"] as? String == "ok")
                let models = try await client.execute(uri: "/v1/models", method: .get)
                #expect(models.status == .ok)
                let object = try models.object()
                #expect(object["object"] as? String == "list")
                let data = try #require(object["data"] as? [[String: Any]])
                #expect(data.count == 1)
                #expect(data[0]["id"] as? String == "tiny")
                #expect(data[0]["object"] as? String == "model")
                #expect(data[0]["owned_by"] as? String == "osprey")
                #expect(data[0]["created"] is Int)
            }
        }
    }

    static let chatBody = #"{"model": "tiny", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hello"}]}], "max_tokens": 12, "temperature": 0, "seed": 7, "reasoning_effort": "low"}"#

    @Test func chatReplyParsesAndCountsUsage() async throws {
        try await withServed { served in
            let prompt = try served.loaded.applyChatTemplate([.system("Be brief."), .user("Hello")], reasoningEffort: .low)
            try await withClient(served) { client in
                let response = try await client.post("/v1/chat/completions", Self.chatBody)
                #expect(response.status == .ok, "\(response.text)")
                let object = try response.object()
                #expect(object["object"] as? String == "chat.completion")
                #expect(object["model"] as? String == "tiny")
                #expect((object["id"] as? String)?.hasPrefix("chatcmpl-") == true)
                let choice = try #require(firstChoice(object))
                let message = try #require(choice["message"] as? [String: Any])
                #expect(message["role"] as? String == "assistant")
                let content = try #require(message["content"] as? String)
                for text in [content, message["reasoning_content"] as? String ?? ""] {
                    #expect(!text.contains("<|"), "special token text in \(text)")
                }
                let usage = try #require(object["usage"] as? [String: Int])
                #expect(usage["prompt_tokens"] == prompt.count)
                let completion = try #require(usage["completion_tokens"])
                #expect(completion >= 1 && completion <= 12)
                #expect(usage["total_tokens"] == prompt.count + completion)
                let finish = try #require(choice["finish_reason"] as? String)
                #expect(["stop", "length", "tool_calls"].contains(finish))
                if finish == "length" { #expect(completion == 12) }
            }
        }
    }

    @Test func chatMaxTokensEndsWithLength() async throws {
        // Greedy on these random weights generates no end-of-turn id in its first 5 tokens (deterministic).
        try await withServed { served in
            try await withClient(served) { client in
                let response = try await client.post("/v1/chat/completions",
                                                     #"{"messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 5, "temperature": 0}"#)
                #expect(response.status == .ok, "\(response.text)")
                let object = try response.object()
                #expect(firstChoice(object)?["finish_reason"] as? String == "length")
                #expect((object["usage"] as? [String: Int])?["completion_tokens"] == 5)
            }
        }
    }

    @Test func streamedChatMatchesWholeReply() async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let whole = try await client.post("/v1/chat/completions", Self.chatBody).object()
                let streamBody = Self.chatBody.replacingOccurrences(of: #""seed": 7"#,
                                                                    with: #""seed": 7, "stream": true, "stream_options": {"include_usage": true}"#)
                let response = try await client.post("/v1/chat/completions", streamBody)
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/event-stream")
                let chunks = try response.events()
                #expect(chunks.count >= 3)
                #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
                #expect(Set(chunks.compactMap { $0["id"] as? String }).count == 1)
                let first = try #require(firstChoice(chunks[0])?["delta"] as? [String: Any])
                #expect(first["role"] as? String == "assistant")
                // The usage chunk comes last, with no choices.
                let usageChunk = try #require(chunks.last)
                #expect((usageChunk["choices"] as? [Any])?.isEmpty == true)
                #expect(usageChunk["usage"] as? [String: Int] == whole["usage"] as? [String: Int])
                let choices = chunks.dropLast().compactMap(firstChoice)
                let deltas = choices.compactMap { $0["delta"] as? [String: Any] }
                let content = deltas.compactMap { $0["content"] as? String }.joined()
                let reasoning = deltas.compactMap { $0["reasoning_content"] as? String }.joined()
                let message = try #require(firstChoice(whole)?["message"] as? [String: Any])
                #expect(content == message["content"] as? String ?? "")
                #expect(reasoning == message["reasoning_content"] as? String ?? "")
                #expect(choices.last?["finish_reason"] as? String == firstChoice(whole)?["finish_reason"] as? String)
                #expect(choices.dropLast().allSatisfy { $0["finish_reason"] is NSNull })
            }
        }
    }

    @Test func completionsFromTextAndTokenIds() async throws {
        try await withServed { served in
            let ids = try served.loaded.encode("To be")
            try await withClient(served) { client in
                let text = try await client.post("/v1/completions", #"{"prompt": "To be", "max_tokens": 6, "temperature": 0}"#)
                #expect(text.status == .ok, "\(text.text)")
                let a = try text.object()
                #expect(a["object"] as? String == "text_completion")
                #expect(firstChoice(a)?["text"] is String)
                #expect((a["usage"] as? [String: Int])?["prompt_tokens"] == ids.count)
                let tokens = try await client.post("/v1/completions",
                                                   #"{"prompt": \#(ids.map(Int.init)), "max_tokens": 6, "temperature": 0}"#)
                #expect(tokens.status == .ok, "\(tokens.text)")
                let b = try tokens.object()
                #expect(firstChoice(b)?["text"] as? String == firstChoice(a)?["text"] as? String)
                #expect(b["usage"] as? [String: Int] == a["usage"] as? [String: Int])
                let completion = try #require((b["usage"] as? [String: Int])?["completion_tokens"])
                #expect(completion >= 1 && completion <= 6)
                if firstChoice(b)?["finish_reason"] as? String == "length" { #expect(completion == 6) }

                let streamed = try await client.post("/v1/completions",
                    #"{"prompt": "To be", "max_tokens": 6, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}"#)
                let chunks = try streamed.events()
                #expect(chunks.allSatisfy { $0["object"] as? String == "text_completion" })
                let joined = chunks.compactMap(firstChoice).compactMap { $0["text"] as? String }.joined()
                #expect(joined == firstChoice(a)?["text"] as? String)
                #expect(chunks.last?["usage"] as? [String: Int] == a["usage"] as? [String: Int])
            }
        }
    }

    @Test func stopStringCutsTheText() async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let free = try await client.post("/v1/completions", #"{"prompt": "abc", "max_tokens": 20, "temperature": 0}"#).object()
                let text = try #require(firstChoice(free)?["text"] as? String)
                guard text.count >= 4 else { return }
                let stop = String(text.dropFirst(2).prefix(2))
                let body = #"{"prompt": "abc", "max_tokens": 20, "temperature": 0, "stop": \#(try Self.jsonString(stop))}"#
                let cut = try await client.post("/v1/completions", body).object()
                let expected = String(text[..<text.range(of: stop)!.lowerBound])
                #expect(firstChoice(cut)?["text"] as? String == expected)
                #expect(firstChoice(cut)?["finish_reason"] as? String == "stop")
            }
        }
    }

    static func jsonString(_ s: String) throws -> String {
        String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
    }
}
