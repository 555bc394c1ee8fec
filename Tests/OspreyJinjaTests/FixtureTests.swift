// FixtureTests.swift — renders every case of ../shared/fixtures/chat_templates/cases.jsonl with the
// real templates of ../shared/data and compares the text exactly (and, for error cases, the raised
// message), with strftime_now fixed to 2025-07-26 14:30:00 as in the fixture generator.

import Foundation
import Testing
@testable import OspreyJinja

struct FixtureCase: Sendable, CustomTestStringConvertible {
    let id: String
    let template: String
    let line: String
    var testDescription: String { id }
}

enum Fixtures {
    /// The repository root: this file lives in Tests/OspreyJinjaTests/ (symlinks resolved).
    static let shared: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("../shared").standardizedFileURL

    static let cases: [FixtureCase] = {
        let url = shared.appendingPathComponent("fixtures/chat_templates/cases.jsonl")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard case .object(let o) = try? JinjaValue(json: String(line)),
                  case .string(let id)? = o["id"], case .string(let template)? = o["template"] else { return nil }
            return FixtureCase(id: id, template: template, line: String(line))
        }
    }()

    static func templateSource(_ name: String) throws -> String {
        try String(contentsOf: shared.appendingPathComponent("data/\(name)"), encoding: .utf8)
    }
}

@Test func fixtureFileHasAllCases() {
    #expect(Fixtures.cases.count == 169, "cases.jsonl not found or incomplete under \(Fixtures.shared.path)")
}

@Test(arguments: Fixtures.cases)
func fixtureCase(_ fixture: FixtureCase) throws {
    guard case .object(let record) = try JinjaValue(json: fixture.line) else { Issue.record("bad record"); return }
    let template = try ChatTemplate(source: try Fixtures.templateSource(fixture.template))
    var kwargs = JinjaObject()
    if case .object(let k)? = record["kwargs"] { kwargs = k }
    let context = ChatTemplate.context(messages: record["messages"] ?? .array([]), tools: record["tools"], kwargs: kwargs)
    let result = Result { () throws(JinjaError) in
        try template.render(context, year: 2025, month: 7, day: 26, hour: 14, minute: 30)
    }
    switch (result, record["expected"], record["error"]) {
    case (.success(let text), .string(let expected)?, _):
        #expect(text == expected)
    case (.failure(let error), _, .string(let expectedError)?):
        if expectedError.hasPrefix("TemplateError: ") {
            #expect(error == .raised(String(expectedError.dropFirst("TemplateError: ".count))))
        } else {
            // TypeError cases: the exact CPython text is not required, only the failure (and its kind).
            guard case .type = error else { Issue.record("expected \(expectedError), got \(error)"); return }
        }
    case (.success(let text), _, let expectedError):
        Issue.record("expected error \(String(describing: expectedError)), rendered \(text.debugDescription)")
    case (.failure(let error), _, _):
        Issue.record("unexpected error: \(error)")
    }
}
