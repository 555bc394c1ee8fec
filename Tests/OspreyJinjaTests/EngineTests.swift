// EngineTests.swift — unit tests of the Jinja engine's edges: whitespace control, loops, macros,
// scoping, string escapes, Python value formatting, JSON key order, and malformed or hostile
// templates (typed errors with line numbers, never a crash). Expected strings were checked
// against jinja2 3.1.6 in transformers' environment.

import Testing
@testable import OspreyJinja

private func render(_ source: String, _ context: [String: JinjaValue] = [:]) throws -> String {
    try ChatTemplate(source: source).render(context, year: 2025, month: 7, day: 26, hour: 14, minute: 30)
}

private func syntaxLine(_ source: String) -> Int? {
    do {
        _ = try ChatTemplate(source: source)
        return nil
    } catch {
        if case .syntax(_, let line) = error { return line }
        return nil
    }
}

@Suite struct WhitespaceControl {
    @Test func dashTrimsBothSides() throws {
        #expect(try render("a  {%- if true -%}  b  {%- endif -%}  c") == "abc")
        #expect(try render("a \n {{- 'x' -}} \n b") == "axb")
    }

    @Test func trimBlocksAndLstripBlocks() throws {
        #expect(try render("  {% if true %}\n    yes\n  {% endif %}\nafter") == "    yes\nafter")
        // lstrip_blocks never applies to `{{`; trim_blocks removes only the first newline.
        #expect(try render("  {{ 'v' }}\n{% if true %}\n\nx{% endif %}") == "  v\n\nx")
        #expect(try render("   {%+ if true %}p{% endif %}|{% if true +%}\nk{% endif %}") == "   p|\nk")
    }

    @Test func commentsAndRaw() throws {
        #expect(try render("a {# note #} b\n  {# own line #}\nc") == "a  b\nc")
        #expect(try render("{% raw %}{{ x }}{% endraw %}") == "{{ x }}")
    }

    @Test func newlinesNormalisedAndOneTrailingNewlineDropped() throws {
        #expect(try render("x\r\ny\rz\n") == "x\ny\nz")
        #expect(try render("x\n\n") == "x\n")
    }
}

@Suite struct Statements {
    @Test func nestedLoopsAndLoopVariables() throws {
        let out = try render("{% for row in [[1,2],[3]] %}{% for x in row %}{{ loop.index }}{{ x }}{{ ',' if not loop.last }}{% endfor %};{{ loop.revindex0 }}|{% endfor %}")
        #expect(out == "11,22;1|13;0|")
        #expect(try render("{% for i in [3,1,2] if i > 1 %}{{ loop.index }}/{{ loop.length }}:{{ i }} {% else %}none{% endfor %}") == "1/2:3 2/2:2 ")
        #expect(try render("{% for i in [1,2,3,4] %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}") == "13")
    }

    @Test func loopScopeDoesNotLeakButNamespaceDoes() throws {
        #expect(try render("{% set x = 0 %}{% for i in [1,2] %}{% set x = i %}{% endfor %}{{ x }}") == "0")
        #expect(try render("{% set ns = namespace(x=0) %}{% for i in [1,2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}") == "3")
    }

    @Test func macrosWithDefaultsKeywordsAndRecursion() throws {
        let source = "{% macro m(a, b='B', c=none) -%}[{{ a }}|{{ b }}|{{ c }}]{%- endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(1, c=3) }}{{ m() }}"
        #expect(try render(source) == "[1|B|None][1|2|None][1|B|3][|B|None]")
        #expect(try render("{% macro f(n) %}{% if n <= 1 %}1{% else %}{{ n }}*{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(4) }}") == "4*3*2*1")
    }

    @Test func setForms() throws {
        #expect(try render("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = (1, 2) %}{{ t }}") == "12(1, 2)")
        #expect(try render("{% set x | upper %}ab{{ 'c' }}{% endset %}{{ x }}") == "ABC")
    }

    @Test func raiseException() {
        #expect(throws: JinjaError.raised("bad role: tool")) { try render("{{ raise_exception('bad role: ' + r) }}", ["r": "tool"]) }
    }
}

@Suite struct Expressions {
    @Test func stringEscapes() throws {
        #expect(try render(#"{{ 'it\'s' }}|{{ "a\tb\\n" }}|{{ '\x41\u00e9\U0001F600' }}|{{ '\d' }}|{{ 'a' "b" }}"#) == "it's|a\tb\\n|Aé😀|\\d|ab")
    }

    @Test func pythonFormattingOfValues() throws {
        let ctx: [String: JinjaValue] = ["d": ["b": 2, "a": [1, 2.0, nil, true]], "s": "it's"]
        #expect(try render("{{ d }}|{{ [s, 'q'] }}|{{ 7 / 2 }}|{{ 7 // 2 }}|{{ -7 % 3 }}|{{ 1e16 }}|{{ 1e-5 }}|{{ 0.1 + 0.2 }}", ctx)
            == "{'b': 2, 'a': [1, 2.0, None, True]}|[\"it's\", 'q']|3.5|3|2|1e+16|1e-05|0.30000000000000004")
    }

    @Test func tojsonKeepsKeyOrderAndIndents() throws {
        let value = try JinjaValue(json: #"{"z": 1, "a": {"é": [1.0, null]}, "m": []}"#)
        #expect(try render("{{ v|tojson }}", ["v": value]) == #"{"z": 1, "a": {"é": [1.0, null]}, "m": []}"#)
        #expect(try render("{{ v|tojson(indent=2, sort_keys=true) }}", ["v": value])
            == "{\n  \"a\": {\n    \"é\": [\n      1.0,\n      null\n    ]\n  },\n  \"m\": [],\n  \"z\": 1\n}")
    }

    @Test func undefinedSemantics() throws {
        #expect(try render("[{{ nope }}]{{ nope is defined }}{{ nope|length }}{{ x.missing is defined }}", ["x": [:]]) == "[]False0False")
        #expect(throws: JinjaError.undefined("'nope' is undefined")) { try render("{{ nope.attr }}") }
        #expect(throws: JinjaError.type("argument of type 'NoneType' is not iterable")) { try render("{{ 'a' in n }}", ["n": nil]) }
    }

    @Test func sandboxRefusesMutation() {
        #expect(throws: JinjaError.runtime("access to attribute 'append' of 'list' object is unsafe.", exception: "SecurityError")) {
            try render("{{ l.append(1) }}", ["l": [1]])
        }
    }
}

@Suite struct MalformedTemplates {
    @Test(arguments: [
        ("{% if x %}never closed", 1),
        ("line1\n{% for x in y %}\n{% endif %}", 3),
        ("{{ 'unterminated }}", 1),
        ("\n\n{{ x | nosuchfilter }}", 3),
        ("{{ x is nosuchtest }}", 1),
        ("{% frobnicate %}", 1),
        ("{{ (1 + }}", 1),
        ("{{ [1, 2 }}", 1),
        ("{% break %}", 1),
        ("{# never closed", 1),
        ("{{ x $ y }}", 1),
        ("{% set %}", 1),
        ("{% macro m(a %}{% endmacro %}", 1),
        ("{{ }}", 1),
        ("{% for in x %}{% endfor %}", 1),
    ])
    func syntaxErrorsCarryLines(source: String, line: Int) {
        #expect(syntaxLine(source) == line)
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}"
        #expect(syntaxLine(deep) != nil)
        #expect(throws: JinjaError.self) { try JinjaValue(json: String(repeating: "[", count: 100_000)) }
    }

    @Test func runawayRecursionIsATypedError() throws {
        // Whichever cap binds first (macro depth or total nesting), the error is recursionLimit.
        for source in ["{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
                       "{% macro r(n) %}{% for i in [n] %}{% if true %}{{ r(i + 1) }}{% endif %}{% endfor %}{% endmacro %}{{ r(0) }}"] {
            do {
                _ = try render(source)
                Issue.record("runaway recursion rendered")
            } catch {
                guard case .recursionLimit = error as? JinjaError else { Issue.record("unexpected \(error)"); continue }
            }
        }
        // A legitimately deep recursion (100 levels, beyond any real JSON schema) still renders.
        #expect(try render("{% macro r(n) %}{% if n > 0 %}{{ r(n - 1) }}{% else %}done{% endif %}{% endmacro %}{{ r(100) }}") == "done")
    }

    @Test func deepExpressionsInsideRecursionHitTheNestingBudget() {
        let body = String(repeating: "(1 + ", count: 90) + "r(n + 1)" + String(repeating: ")", count: 90)
        #expect(throws: JinjaError.recursionLimit(Interpreter.maxNesting)) {
            try render("{% macro r(n) %}{{ \(body) }}{% endmacro %}{{ r(0) }}")
        }
    }

    @Test func selfBuiltDeepValuesDoNotCrash() throws {
        let build = "{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}"
        #expect(try render(build + "{{ (ns.x|string)[:6] }}{{ ns.x == ns.x }}") == "[[[[[[False")
        #expect(throws: JinjaError.recursionLimit(Value.maxPrintDepth)) { try render(build + "{{ ns.x|tojson }}") }
    }

    @Test func hostileValuesDoNotCrash() throws {
        #expect(throws: JinjaError.self) { try render("{{ range(10**9) }}") }
        #expect(throws: JinjaError.self) { try render("{{ 'x' * 10**12 }}") }
        #expect(throws: JinjaError.self) { try render("{{ 2**64 }}") }
        #expect(throws: JinjaError.self) { try render("{{ [1][::0] }}") }
        #expect(throws: JinjaError.self) { try render("{{ 1 // 0 }}") }
        let deep = try JinjaValue(json: String(repeating: "[", count: 400) + String(repeating: "]", count: 400))
        #expect(try render("{{ v|tojson|length }}{{ v|string|length }}", ["v": deep]) == "800800")
    }
}
