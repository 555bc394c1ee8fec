// POST /v1/responses on the tiny random gpt-oss model: the response object (status, output items,
// usage), the same text as chat completions for the same greedy request (one shared path),
// max_output_tokens → incomplete, the named SSE events (order, framing, sequence numbers, deltas
// that concatenate to the whole response), function call items in the input, and 400s naming the param.
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import OspreyGeneration
import OspreyServer

/// The named events of a Responses API stream, checking the framing `event: NAME\ndata: JSON\n\n`.
func responseEvents(_ response: TestResponse) throws -> [[String: Any]] {
    let raw = response.text
    #expect(raw.hasSuffix("\n\n"))
    return try raw.components(separatedBy: "\n\n").dropLast().map { block in
        let lines = block.components(separatedBy: "\n")
        try #require(lines.count == 2 && lines[0].hasPrefix("event: ") && lines[1].hasPrefix("data: "), "bad event: \(block)")
        let event = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].dropFirst(6).utf8)) as? [String: Any])
        #expect(event["type"] as? String == String(lines[0].dropFirst(7)))
        return event
    }
}

@Suite struct ResponsesTests {
    static let body = #"{"model": "tiny", "instructions": "Be brief.", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hello"}]}], "max_output_tokens": 12, "temperature": 0, "reasoning": {"effort": "low"}}"#

    static func items(_ object: [String: Any], _ type: String) -> [[String: Any]] {
        (object["output"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == type }
    }

    static func messageText(_ object: [String: Any]) -> String {
        items(object, "message").flatMap { ($0["content"] as? [[String: Any]]) ?? [] }.compactMap { $0["text"] as? String }.joined()
    }

    static func reasoningText(_ object: [String: Any]) -> String {
        items(object, "reasoning").flatMap { ($0["content"] as? [[String: Any]]) ?? [] }.compactMap { $0["text"] as? String }.joined()
    }

    @Test func responseMatchesChatCompletion() async throws {
        try await withServed { served in
            let prompt = try served.loaded.applyChatTemplate([.system("Be brief."), .user("Hello")], reasoningEffort: .low)
            try await withClient(served) { client in
                let response = try await client.post("/v1/responses", Self.body)
                #expect(response.status == .ok, "\(response.text)")
                let object = try response.object()
                #expect(object["object"] as? String == "response")
                #expect((object["id"] as? String)?.hasPrefix("resp_") == true)
                #expect(object["model"] as? String == "tiny")
                #expect(object["created_at"] is Int)
                let status = try #require(object["status"] as? String)
                #expect(["completed", "incomplete"].contains(status))
                let output = try #require(object["output"] as? [[String: Any]])
                #expect(!output.isEmpty)
                for item in output {
                    #expect(["reasoning", "message", "function_call"].contains(item["type"] as? String ?? ""))
                    #expect(item["id"] is String)
                }
                for message in Self.items(object, "message") {
                    #expect(message["role"] as? String == "assistant")
                    #expect(message["status"] as? String == "completed")
                    let parts = try #require(message["content"] as? [[String: Any]])
                    #expect(parts.allSatisfy { $0["type"] as? String == "output_text" && ($0["annotations"] as? [Any])?.isEmpty == true })
                }
                let text = Self.messageText(object), reasoning = Self.reasoningText(object)
                #expect(!text.contains("<|") && !reasoning.contains("<|"))
                let usage = try #require(object["usage"] as? [String: Int])
                #expect(usage["input_tokens"] == prompt.count)
                let generated = try #require(usage["output_tokens"])
                #expect(generated >= 1 && generated <= 12)
                #expect(usage["total_tokens"] == prompt.count + generated)
                if status == "incomplete" {
                    #expect((object["incomplete_details"] as? [String: Any])?["reason"] as? String == "max_output_tokens")
                    #expect(generated == 12)
                }

                // The same request through chat completions: the same prompt, the same greedy reply.
                let chat = try await client.post("/v1/chat/completions", EndpointTests.chatBody).object()
                let message = try #require(firstChoice(chat)?["message"] as? [String: Any])
                #expect(text == message["content"] as? String ?? "")
                #expect(reasoning == message["reasoning_content"] as? String ?? "")
                #expect(usage["input_tokens"] == (chat["usage"] as? [String: Int])?["prompt_tokens"])
                #expect(usage["output_tokens"] == (chat["usage"] as? [String: Int])?["completion_tokens"])
            }
        }
    }

    @Test func maxOutputTokensMakesItIncomplete() async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let response = try await client.post("/v1/responses", #"{"input": "Hi", "max_output_tokens": 5, "temperature": 0}"#)
                #expect(response.status == .ok, "\(response.text)")
                let object = try response.object()
                #expect(object["status"] as? String == "incomplete")
                #expect((object["incomplete_details"] as? [String: Any])?["reason"] as? String == "max_output_tokens")
                #expect((object["usage"] as? [String: Int])?["output_tokens"] == 5)
            }
        }
    }

    @Test func streamedResponseMatchesWholeResponse() async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let whole = try await client.post("/v1/responses", Self.body).object()
                let response = try await client.post("/v1/responses", Self.body.replacingOccurrences(of: #""temperature": 0"#,
                                                                                                   with: #""temperature": 0, "stream": true"#))
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/event-stream")
                let events = try responseEvents(response)
                let types = events.compactMap { $0["type"] as? String }
                #expect(types.count == events.count)
                #expect(events.map { $0["sequence_number"] as? Int } == Array(0..<events.count))
                #expect(Array(types.prefix(2)) == ["response.created", "response.in_progress"])
                #expect((events[0]["response"] as? [String: Any])?["status"] as? String == "in_progress")
                let last = try #require(events.last)
                let final = try #require(last["response"] as? [String: Any])
                let status = try #require(final["status"] as? String)
                #expect(types.last == (status == "completed" ? "response.completed" : "response.incomplete"))
                #expect(status == whole["status"] as? String)
                #expect(final["usage"] as? [String: Int] == whole["usage"] as? [String: Int])
                // Every item is added, then done; text events come between.
                #expect(types.filter { $0 == "response.output_item.added" }.count == (final["output"] as? [Any])?.count)
                #expect(types.filter { $0 == "response.output_item.done" }.count == (final["output"] as? [Any])?.count)
                if let added = types.firstIndex(of: "response.output_item.added") {
                    #expect(types[added + 1] == "response.content_part.added" || types[added + 1] == "response.function_call_arguments.delta")
                }
                if !Self.items(whole, "message").isEmpty {
                    #expect(types.contains("response.output_text.done"))
                    let done = try #require(types.firstIndex(of: "response.output_text.done"))
                    #expect(types[(done + 1)...].contains("response.output_item.done"))
                }
                let text = events.filter { $0["type"] as? String == "response.output_text.delta" }.compactMap { $0["delta"] as? String }.joined()
                let reasoning = events.filter { $0["type"] as? String == "response.reasoning_text.delta" }.compactMap { $0["delta"] as? String }.joined()
                #expect(text == Self.messageText(whole))
                #expect(reasoning == Self.reasoningText(whole))
                #expect(Self.messageText(final) == text && Self.reasoningText(final) == reasoning)
                let shape = { (o: [String: Any]) in (o["output"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String } }
                #expect(shape(final) == shape(whole))
            }
            #expect(served.admission.inFlight == 0)
        }
    }

    @Test func functionCallOutputIsAccepted() async throws {
        let body = #"""
        {"input": [{"role": "user", "content": "Weather in Paris?"},
                   {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
                   {"type": "function_call_output", "call_id": "call_1", "output": "{\"sky\": \"sunny\"}"}],
         "tools": [{"type": "function", "name": "get_weather", "description": "Weather of a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
         "tool_choice": "auto", "max_output_tokens": 4, "temperature": 0}
        """#
        try await withServed { served in
            try await withClient(served) { client in
                let response = try await client.post("/v1/responses", body)
                #expect(response.status == .ok, "\(response.text)")
                let object = try response.object()
                // The same conversation through chat completions renders the same prompt.
                let chat = try await client.post("/v1/chat/completions", Self.chatToolBody)
                #expect(chat.status == .ok, "\(chat.text)")
                #expect((object["usage"] as? [String: Int])?["input_tokens"] == (try chat.object()["usage"] as? [String: Int])?["prompt_tokens"])
                let choice = try await client.post("/v1/responses", body.replacingOccurrences(
                    of: #""tool_choice": "auto""#, with: #""tool_choice": {"type": "function", "name": "get_weather"}"#))
                #expect(choice.status == .ok, "\(choice.text)")
            }
        }
    }

    static let chatToolBody = #"""
        {"messages": [{"role": "user", "content": "Weather in Paris?"},
                      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                      {"role": "tool", "tool_call_id": "call_1", "content": "{\"sky\": \"sunny\"}"}],
         "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
         "max_tokens": 4, "temperature": 0}
        """#

    @Test(arguments: [
        (#"{"input": "#, "invalid_json", nil),
        (#"{"model": "tiny"}"#, "missing_required_parameter", "input"),
        (#"{"input": 3}"#, "invalid_type", "input"),
        (#"{"input": []}"#, nil, "input"),
        (#"{"input": "Hi", "previous_response_id": "resp_1"}"#, nil, "previous_response_id"),
        (#"{"input": [{"role": "wizard", "content": "Hi"}]}"#, nil, "input[0].role"),
        (#"{"input": [{"role": "tool", "content": "Hi"}]}"#, nil, "input[0].role"),
        (#"{"input": [{"role": "user"}]}"#, nil, "input[0].content"),
        (#"{"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}"#, nil, "input[0].content"),
        (#"{"input": [{"type": "web_search_call"}]}"#, nil, "input[0].type"),
        (#"{"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}"#, nil, "input[0].call_id"),
        (#"{"input": [{"role": "user", "content": "Hi"}, {"type": "function_call_output", "call_id": "call_9", "output": "x"}]}"#, nil, "input[1].call_id"),
        (#"{"input": [{"role": "user", "content": "Hi"}, {"type": "function_call_output", "call_id": "call_9"}]}"#, nil, "input[1].output"),
        (#"{"input": "Hi", "max_output_tokens": 0}"#, nil, "max_output_tokens"),
        (#"{"input": "Hi", "max_output_tokens": 1000000}"#, "context_length_exceeded", "max_output_tokens"),
        (#"{"input": "Hi", "temperature": 5}"#, nil, "temperature"),
        (#"{"input": "Hi", "top_p": 0}"#, nil, "top_p"),
        (#"{"input": "Hi", "reasoning": {"effort": "extreme"}}"#, nil, "reasoning.effort"),
        (#"{"input": "Hi", "tools": [{"type": "web_search"}]}"#, nil, "tools[0].type"),
        (#"{"input": "Hi", "tools": [{"type": "function"}]}"#, nil, "tools[0].name"),
        (#"{"input": "Hi", "tool_choice": "sometimes"}"#, nil, "tool_choice"),
        (#"{"input": "Hi", "tool_choice": {"type": "function", "name": "nope"}}"#, nil, "tool_choice"),
        (#"{"input": "Hi", "tool_choice": {"type": "file_search"}}"#, "invalid_type", "tool_choice"),
    ] as [(String, String?, String?)])
    func badResponsesRequestsAre400(body: String, code: String?, param: String?) async throws {
        try await withServed { served in
            try await withClient(served) { client in
                let response = try await client.post("/v1/responses", body)
                #expect(response.status == .badRequest, "\(body) -> \(response.status) \(response.text)")
                let error = try response.error()
                #expect(error["type"] as? String == "invalid_request_error")
                #expect(error["message"] is String)
                if let code { #expect(error["code"] as? String == code, "\(response.text)") }
                if let param { #expect(error["param"] as? String == param, "\(response.text)") }
                let ok = try await client.post("/v1/responses", #"{"input": "Hi", "max_output_tokens": 2}"#)
                #expect(ok.status == .ok)
            }
            #expect(served.admission.inFlight == 0)
        }
    }
}
