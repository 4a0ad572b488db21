import EventRouting
import Testing

/// The CEL subset of routing rules evaluated as cel-go evaluates Dapr's `match` over `event` (a CloudEvent whose
/// JSON numbers are doubles, as Go decodes them).
@Suite struct CELExpressionTests {
    /// An order event as Dapr's rules see it.
    static let event: CELValue = .map([
        "id": .string("e-1"), "source": .string("checkout"), "type": .string("order.created"), "specversion": .string("1.0"),
        "datacontenttype": .string("application/json"), "topic": .string("orders"), "pubsubname": .string("pubsub"),
        "time": .string("2026-12-06T08:00:00Z"), "priority": .string("high"),
        "data": .map([
            "order": .map(["total": .double(150), "items": .list([.string("apple"), .string("pear")]), "note": .null]),
            "customer": .string("Zoë"), "count": .double(3), "flags": .map(["vip": .bool(true)]),
            "lines": .list([.map(["sku": .string("a1"), "qty": .double(2)]), .map(["sku": .string("b2"), "qty": .double(1)])]),
        ]),
    ])

    private func evaluate(_ text: String) throws -> CELValue {
        try CELExpression(text).evaluate(["event": Self.event])
    }

    @Test(arguments: [
        // Field access, index, has().
        "event.type == 'order.created'", "event.type == \"order.created\"", "event.data.order.total > 100",
        "event.data[\"order\"]['total'] == 150", "event[\"type\"] == 'order.created'", "has(event.data.order)",
        "!has(event.data.missing)", "has(event.priority) && event.priority == 'high'", "event.data.order.note == null",
        "event.data.order.items[0] == 'apple'", "event.data.order.items[1.0] == 'pear'", "event.data.flags.vip",
        // Literals and comparisons across numeric types.
        "1 == 1.0", "event.data.count == 3", "event.data.count == 3u", "2 < 2.5", "-1 < 0u", "1u + 2u == 3u", "0x1F == 31",
        "1e3 == 1000.0", ".5 == 0.5", "'a' < 'b'", "'abc' <= 'abd'", "false < true", "null == null", "[1, 2] == [1, 2.0]",
        "{'a': 1}['a'] == 1", "[] == []", "'x' != 1", "event.data != null",
        // Logic, ternary, in.
        "true && !false", "false || true", "!!true", "(1 < 2 ? 'yes' : 'no') == 'yes'", "event.priority in ['high', 'urgent']",
        "'order' in event.data", "!('nope' in event.data)", "3 in [1, 2, 3.0]",
        // Arithmetic.
        "1 + 2 * 3 == 7", "(1 + 2) * 3 == 9", "7 / 2 == 3", "7 % 3 == 1", "-7 / 2 == -3", "7.0 / 2.0 == 3.5",
        "event.data.order.total * 2.0 == 300.0", "int(event.data.count) + 1 == 4", "'a' + 'b' == 'ab'", "[1] + [2] == [1, 2]",
        "-(2) == -2", "double(3) == 3.0", "string(event.data.order.total) == '150'", "int(-2.7) == -2", "uint(2.9) == 2u",
        "string(1e300).size() > 0", "string(0.5) == '0.5'", "string(12) == '12'", "int('42') == 42", "uint(5) == 5u", "bool('true')",
        // String methods and size.
        "event.type.startsWith('order.')", "event.type.endsWith('.created')", "event.source.contains('check')",
        "event.type.matches('^order\\\\.(created|updated)$')", "event.source.matches('eck')", "matches(event.source, '^c')",
        "size(event.data.order.items) == 2", "event.data.order.items.size() == 2", "size('Zoë') == 3",
        "event.data.customer.size() == 3", "size(event.data) == 5", "''.contains('')",
        // Macros.
        "event.data.lines.exists(l, l.sku == 'b2')", "event.data.lines.all(l, l.qty > 0)",
        "event.data.lines.exists_one(l, l.qty == 2)", "event.data.lines.filter(l, l.qty > 1).size() == 1",
        "event.data.lines.map(l, l.sku) == ['a1', 'b2']", "event.data.lines.map(l, l.qty > 1, l.sku) == ['a1']",
        "event.data.flags.exists(k, k == 'vip')",
        // Strings: escapes, raw, triple quotes, comments, newlines.
        "'a\\tb' == \"a\\u0009b\"", "r'a\\d' == 'a\\\\d'", "'''it's''' == \"it's\"", "'\\x41\\101' == 'AA'",
        "event.type == 'order.created' // a comment", "event.type\n  == 'order.created'",
    ])
    func holds(_ text: String) throws {
        #expect(try evaluate(text) == .bool(true), "\(text)")
    }

    @Test(arguments: [
        "event.type == 'order.updated'", "event.data.order.total < 100", "has(event.data.order.missing)", "1 == 2",
        "'a' == 'b'", "'x' == 1", "[1] == [1, 2]", "event.priority in []", "'nope' in event.data", "false && event.nope",
        "event.nope && false", "event.data.lines.all(l, l.qty > 1)", "event.data.lines.exists_one(l, l.qty > 0)",
    ])
    func doesNotHold(_ text: String) throws {
        #expect(try evaluate(text) == .bool(false), "\(text)")
    }

    @Test(arguments: [
        ("true || event.nope", true), ("event.nope || true", true), ("event.data.count > 1 ? true : event.nope", true),
    ])
    func logicAbsorbsTheErrorsOfTheUndecidingSide(_ text: String, _ expected: Bool) throws {
        #expect(try evaluate(text) == .bool(expected))
    }

    @Test(arguments: [
        ("event.data.missing == 1", "no such key: missing"),
        ("event.nope", "no such key: nope"),
        ("other.type == 'x'", "no such attribute: 'other'"),
        ("event.data.count + 1 == 4", "no such overload: _+_ applied to (double, int)"),
        ("event.data.count % 2 == 1", "no such overload: _%_ applied to (double, int)"),
        ("event.type < 1", "no such overload: _<_ applied to (string, int)"),
        ("1 / 0 == 1", "division by zero"),
        ("1 % 0 == 1", "modulus by zero"),
        ("9223372036854775807 + 1 > 0", "int overflow"),
        ("event.type.startsWith(event.data.count)", "no such overload: startsWith applied to (string, double)"),
        ("event.data.order.items[2] == 'x'", "index out of bounds: 2"),
        ("event.type.field", "cannot select field 'field' of a string"),
        ("has(event.type.field)", "cannot select field 'field' of a string"),
        ("!event.type", "no such overload: !_ applied to (string)"),
        ("event.type ? 1 : 2", "no such overload"),
        ("event.type && true", "no such overload: _&&_ applied to (string)"),
        ("event.source.matches(event.type + '(')", "invalid regular expression"),
        ("int('x') == 1", "cannot convert 'x' to int"),
        ("size(event.data.count) == 1", "no such overload: size applied to (double)"),
    ])
    func evaluationErrorsSayWhy(_ text: String, _ message: String) throws {
        let expression = try CELExpression(text)
        let error = #expect(throws: CELEvaluationError.self) { try expression.evaluate(["event": Self.event]) }
        #expect(error?.message.contains(message) == true, "\(text): \(String(describing: error))")
    }

    @Test(arguments: [
        ("event.type ==", 1, 14, "unexpected end of expression"),
        ("event.type = 'x'", 1, 12, "'=' is not an operator"),
        ("event.type == 'x' & true", 1, 19, "'&' is not an operator"),
        ("(event.type == 'x'", 1, 19, "expected ')'"),
        ("event.type == 'x", 1, 15, "unterminated string"),
        ("event.", 1, 7, "expected a field or method name"),
        ("event.type == 'x' event", 1, 19, "unexpected 'event'"),
        ("event.type.startsWith()", 1, 12, "startsWith() takes 1 argument"),
        ("event.type.lowerAscii() == 'x'", 1, 12, "unknown method 'lowerAscii'"),
        ("exists(event.type)", 1, 1, "unknown function 'exists'"),
        ("has(event)", 1, 1, "has() takes one field selection"),
        ("event.data.items.all(1, true)", 1, 18, "all() takes a variable name first"),
        ("event.type.matches('(')", 1, 12, "invalid regular expression '('"),
        ("if == 1", 1, 1, "'if' is a reserved word"),
        ("99999999999999999999 > 1", 1, 1, "integer literal out of range"),
        ("b'abc' == 1", 1, 1, "bytes literals are not supported"),
        ("'\\q'", 1, 2, "unknown escape"),
        ("event.type == 'x' #", 1, 19, "unexpected character '#'"),
        ("", 1, 1, "empty expression"),
        ("event.type == 'x' &&\n  event.data. == 1", 2, 15, "expected a field or method name"),
        ("true ? 2", 1, 9, "expected ':'"),
        ("[1, 2", 1, 6, "expected ']'"),
        ("{'a' 1}", 1, 6, "expected ':'"),
        // Operations no event can make evaluate (cel-go's checker refuses them too).
        ("'a' < 1", 1, 5, "no operator '<' for (string, int)"),
        ("event.a > 1 > 2", 1, 13, "no operator '>' for (bool, int)"),
        ("size(1) == 1", 1, 1, "no overload of size for (int)"),
        ("!'x'", 1, 1, "'!' needs a bool, not string"),
        ("-'x' == 1", 1, 1, "no operator '-' for (string)"),
        ("'a' - 1 == 0", 1, 5, "no operator '-' for (string, int)"),
        ("event.n % 2.0 == 0", 1, 9, "no operator '%' for (dyn, double)"),
        ("(1).startsWith('a')", 1, 5, "no overload of startsWith for (int, string)"),
        ("1 ? 2 : 3", 1, 3, "the condition of '?:' needs a bool, not int"),
        ("event.a == 1 && 'yes'", 1, 14, "'&&' needs a bool, not string"),
        ("event.a in 'abc'", 1, 9, "no operator 'in' for (dyn, string)"),
        ("event.type.startsWith(1)", 1, 12, "no overload of startsWith for (dyn, int)"),
    ])
    func syntaxErrorsSayWhere(_ text: String, _ line: Int, _ column: Int, _ message: String) {
        let error = #expect(throws: CELSyntaxError.self) { try CELExpression(text) }
        #expect(error?.line == line && error?.column == column, "\(text): \(String(describing: error))")
        #expect(error?.message.contains(message) == true, "\(text): \(String(describing: error))")
    }

    @Test(arguments: [
        String(repeating: "(", count: 1000) + "1" + String(repeating: ")", count: 1000),
        String(repeating: "!", count: 10000) + "true",
        Array(repeating: "1", count: 5000).joined(separator: " + ") + " > 0",
        "event" + String(repeating: ".a", count: 5000),
    ])
    func aDeeplyNestedExpressionIsRefusedNotACrash(_ text: String) {
        let error = #expect(throws: CELSyntaxError.self) { try CELExpression(text) }
        #expect(error?.message.contains("nested too deeply") == true)
    }

    @Test func aLongFlatRuleCompiles() throws {
        let text = (1...20).map { "event.data.order.total != \($0)" }.joined(separator: " && ")
        #expect(try evaluate(text) == .bool(true))
    }

    @Test func anExpressionIsItsTextTrimmed() throws {
        let a = try CELExpression("  event.type == 'x'\n")
        let b = try CELExpression("event.type == 'x'")
        #expect(a.text == "event.type == 'x'" && a == b)
        let error = #expect(throws: CELSyntaxError.self) { try CELExpression("   event.type ==") }
        #expect(error?.column == 17)  // positions count in the text as given
    }
}
