// One line of `osprey render-harmony`: a JSON request in, one JSON line out.
//
// A request has the fields of a harmony.jsonl fixture record:
//   {"kind": "render_conversation_for_completion" | "render_conversation" | "render_conversation_for_training",
//    "conversation": {...harmony's JSON form...}, "next_turn_role": "assistant", "config": {"auto_drop_analysis": true}}
// and the answer is the ids as a JSON array. `"kind": "parse_messages_from_completion_tokens"` with
// `ids` (and `role`, default "assistant", null for none) answers the parsed messages in harmony's
// `Message.to_dict()` form. Anything wrong answers `{"error": "..."}`; nothing here traps, so one
// bad line never stops the ones after it. Lives in the library so it is tested without a CLI.

extension HarmonyEncoding {
    /// Answers one request line (see the file header) with one JSON line.
    public func respond(toRequestLine line: String) -> String {
        do {
            return try respond(to: HarmonyJSON.parse(line))
        } catch {
            return Self.errorLine(error.description)
        }
    }

    private func respond(to request: HarmonyJSON) throws(HarmonyError) -> String {
        guard case .object = request else { throw .invalidField(path: "request", reason: "expected a JSON object") }
        guard let kind = request["kind"]?.stringValue else { throw .invalidField(path: "kind", reason: "expected a string") }
        var config = HarmonyRenderConfig()
        if let value = request["config"], value != .null {
            guard case .object = value else { throw .invalidField(path: "config", reason: "expected an object") }
            switch value["auto_drop_analysis"] {
            case nil, .null?: break
            case .bool(let b)?: config.autoDropAnalysis = b
            default: throw .invalidField(path: "config.auto_drop_analysis", reason: "expected a boolean")
            }
        }
        func conversation() throws(HarmonyError) -> HarmonyConversation {
            guard let value = request["conversation"] else { throw .invalidField(path: "conversation", reason: "missing") }
            return try HarmonyConversation(json: value)
        }
        func role(_ key: String, default fallback: HarmonyRole?) throws(HarmonyError) -> HarmonyRole? {
            switch request[key] {
            case nil: return fallback
            case .null?: return nil
            case .string(let s)?:
                guard let role = HarmonyRole(rawValue: s) else { throw .invalidField(path: key, reason: "unknown role '\(s)'") }
                return role
            default: throw .invalidField(path: key, reason: "expected a role name")
            }
        }
        let ids: [Int]
        switch kind {
        case "render_conversation_for_completion":
            guard let next = try role("next_turn_role", default: .assistant) else {
                throw .invalidField(path: "next_turn_role", reason: "expected a role name")
            }
            ids = try renderConversationForCompletion(conversation(), nextTurnRole: next, config: config)
        case "render_conversation":
            ids = try renderConversation(conversation(), config: config)
        case "render_conversation_for_training":
            ids = try renderConversationForTraining(conversation(), config: config)
        case "parse_messages_from_completion_tokens":
            guard let items = request["ids"]?.arrayValue else { throw .invalidField(path: "ids", reason: "expected an array of token ids") }
            var tokens: [Int] = []
            for item in items {
                guard case .number(let n) = item, let id = Int(n.text) else {
                    throw .invalidField(path: "ids", reason: "expected an array of token ids")
                }
                tokens.append(id)
            }
            let startRole = try role("role", default: .assistant)
            do throws(HarmonyParserError) {
                let messages = try parseMessages(fromCompletionTokens: tokens, role: startRole)
                return HarmonyJSON.array(messages.map(\.json)).compactText
            } catch {
                return Self.errorLine(error.description)
            }
        default:
            throw .invalidField(path: "kind", reason: "unknown kind '\(kind)'")
        }
        return "[" + ids.map(String.init).joined(separator: ",") + "]"
    }

    static func errorLine(_ message: String) -> String {
        HarmonyJSON.object(.init([("error", .string(message))])).compactText
    }
}
