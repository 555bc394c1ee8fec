// The `# Tools` section of harmony system/developer messages: tool namespaces written in the
// TypeScript-like form gpt-oss was trained on.
//
//   ## functions
//
//   namespace functions {
//
//   // Gets the weather.
//   type get_weather = (_: {
//   // The city
//   location: string,
//   format?: "celsius" | "fahrenheit", // default: celsius
//   }) => any;
//
//   } // namespace functions
//
// The rules are openai-harmony 0.0.8's (`template_tools_section`, `json_schema_to_typescript` in
// src/encoding.rs), reproduced quirk for quirk because the model saw exactly this text: nested
// objects repeat their description inside the type, `oneOf` properties list ` | variant` lines,
// string defaults are quoted unless the schema is an enum, other defaults print as compact JSON,
// descriptions are split into lines the way Rust's `str::lines` does (so "" gives no comment line),
// and namespaces come in byte order of their keys. Anything not understood renders as `any`.

extension HarmonyEncoding {
    static func toolsSection(_ tools: [String: HarmonyToolNamespace]) -> String {
        var sections = ["# Tools"]
        for key in tools.keys.sorted(by: HarmonyToolNamespace.byteOrder) {
            let ns = tools[key]!
            var lines = ["## \(ns.name)\n"]
            if let description = ns.description {
                for line in rustLines(description) {
                    lines.append(ns.tools.isEmpty ? line : "// \(line)")
                }
            }
            if !ns.tools.isEmpty {
                lines.append("namespace \(ns.name) {\n")
                for tool in ns.tools {
                    for line in rustLines(tool.description) { lines.append("// \(line)") }
                    if let parameters = tool.parameters {
                        lines.append("type \(tool.name) = (_: \(typeScript(parameters, indent: ""))) => any;\n")
                    } else {
                        lines.append("type \(tool.name) = () => any;\n")
                    }
                }
                lines.append("} // namespace \(ns.name)")
            }
            sections.append(lines.joined(separator: "\n"))
        }
        return sections.joined(separator: "\n\n")
    }

    // Splits like Rust's `str::lines`: on "\n", dropping one "\r" before it, no empty last line.
    static func rustLines(_ text: String) -> [String] {
        var lines: [String] = []
        var current: [UInt8] = []
        for byte in text.utf8 {
            if byte == 0x0A {
                if current.last == 0x0D { current.removeLast() }
                lines.append(String(decoding: current, as: UTF8.self))
                current.removeAll(keepingCapacity: true)
            } else {
                current.append(byte)
            }
        }
        if !current.isEmpty { lines.append(String(decoding: current, as: UTF8.self)) }
        return lines
    }

    // MARK: - JSON schema -> TypeScript

    static func typeScript(_ schema: HarmonyJSON, indent: String) -> String {
        if let variants = schema["oneOf"]?.arrayValue {
            var out = ""
            for (i, variant) in variants.enumerated() {
                out += i == 0 ? "\n\(indent) | " : "\n\(indent) | "
                out += nullable(typeScript(variant, indent: indent + "   "), variant)
                var comments: [String] = []
                if let d = variant["description"]?.stringValue { comments.append(d) }
                if let d = variant["default"] {
                    if let s = d.stringValue, !isEnum(variant) { comments.append("default: \"\(s)\"") }
                    else { comments.append("default: \(d.compactText)") }
                }
                if !comments.isEmpty { out += " // " + comments.joined(separator: " ") }
            }
            return out
        }
        if let types = schema["type"]?.arrayValue {
            let names = types.compactMap(\.stringValue).map { $0 == "integer" ? "number" : $0 }
            if !names.isEmpty { return names.joined(separator: " | ") }
        }
        guard let type = schema["type"]?.stringValue else { return "any" }
        switch type {
        case "object": return objectType(schema, indent: indent)
        case "string":
            let cases = (schema["enum"]?.arrayValue ?? []).compactMap(\.stringValue).map { "\"\($0)\"" }
            return cases.isEmpty ? "string" : cases.joined(separator: " | ")
        case "number", "integer": return "number"
        case "boolean": return "boolean"
        case "array":
            if let items = schema["items"] { return typeScript(items, indent: indent) + "[]" }
            return "Array<any>"
        default: return "any"
        }
    }

    private static func objectType(_ schema: HarmonyJSON, indent: String) -> String {
        var out = ""
        if let d = schema["description"]?.stringValue { out += "\(indent)// \(d)\n" }
        out += "{\n"
        if let properties = schema["properties"]?.objectValue {
            let required = Set((schema["required"]?.arrayValue ?? []).compactMap(\.stringValue))
            for (key, value) in properties.members {
                let mark = required.contains(key) ? "" : "?"
                if let title = value["title"]?.stringValue { out += "\(indent)// \(title)\n\(indent)//\n" }
                let oneOf = value["oneOf"]
                if oneOf == nil, let d = value["description"]?.stringValue { out += "\(indent)// \(d)\n" }
                if let examples = value["examples"]?.arrayValue, !examples.isEmpty {
                    out += "\(indent)// Examples:\n"
                    for ex in examples.compactMap(\.stringValue) { out += "\(indent)// - \"\(ex)\"\n" }
                }
                if let variants = oneOf?.arrayValue {
                    out += oneOfProperty(key: key, mark: mark, value: value, variants: variants, indent: indent)
                    continue
                }
                out += "\(indent)\(key)\(mark): "
                out += nullable(typeScript(value, indent: indent + "    "), value) + ","
                if oneOf == nil, let d = value["default"] { out += " // " + defaultComment(d, schema: value) }
                out += "\n"
            }
        }
        out += "\(indent)}"
        return out
    }

    // A property whose schema is `oneOf`: comments above, then one ` | variant` line each.
    private static func oneOfProperty(key: String, mark: String, value: HarmonyJSON, variants: [HarmonyJSON],
                                      indent: String) -> String {
        var out = ""
        let propertyDescription = value["description"]?.stringValue
        let firstVariantDescription = variants.first?["description"]?.stringValue
        var describedAbove = false
        if let d = propertyDescription, d != firstVariantDescription {
            out += "\(indent)// \(d)\n"
            describedAbove = true
        }
        if let d = value["default"] { out += "\(indent)// " + defaultComment(d, schema: value) + "\n" }
        out += "\(indent)\(key)\(mark):\n"
        for (i, variant) in variants.enumerated() {
            out += "\(indent) | " + nullable(typeScript(variant, indent: indent + "   "), variant)
            var comments: [String] = []
            if !(i == 0 && describedAbove), let d = variant["description"]?.stringValue, d != propertyDescription {
                comments.append(d)
            }
            if let d = variant["default"] { comments.append(defaultComment(d, schema: variant)) }
            if !comments.isEmpty { out += " // " + comments.joined(separator: " ") }
            out += "\n"
        }
        out += "\(indent),\n"
        return out
    }

    private static func defaultComment(_ value: HarmonyJSON, schema: HarmonyJSON) -> String {
        if let s = value.stringValue { return isEnum(schema) ? "default: \(s)" : "default: \"\(s)\"" }
        return "default: \(value.compactText)"
    }

    private static func isEnum(_ schema: HarmonyJSON) -> Bool {
        !(schema["enum"]?.arrayValue ?? []).isEmpty
    }

    private static func nullable(_ type: String, _ schema: HarmonyJSON) -> String {
        let hasNull = type.utf8.indices.contains { type.utf8[$0...].starts(with: "null".utf8) }
        if schema["nullable"]?.boolValue == true && !hasNull { return type + " | null" }
        return type
    }
}
