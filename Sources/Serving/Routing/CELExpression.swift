/// A compiled CEL expression of the subset molt evaluates (see `CELParser` for the grammar, `CELFunctions` for
/// the operators and functions). Compiling checks the syntax, the functions and their arities, constant `matches`
/// patterns, and operations on operands whose type is known without the event (`CELTypeCheck`: `'a' < 1`, `a > 1 > 2`);
/// everything else (missing fields, the types of the event's values) is checked per evaluation, as cel-go does for the
/// `any`-typed variables Dapr declares.
///
/// Equal when the text is equal. Immutable and Sendable: one compiled expression is evaluated from any thread.
public struct CELExpression: Sendable, Equatable, CustomStringConvertible {
    /// The expression, surrounding whitespace trimmed.
    public let text: String
    let root: CELNode

    /// Compiles `text`; error positions count in `text` as given.
    public init(_ text: String) throws(CELSyntaxError) {
        self.text = text.trimmingWhitespace
        self.root = try CELParser.parse(text)
    }

    /// The value of the expression with `variables` bound (Dapr binds `event` only).
    public func evaluate(_ variables: [String: CELValue]) throws(CELEvaluationError) -> CELValue {
        try CELEvaluator(bindings: variables).evaluate(root)
    }

    public static func == (a: CELExpression, b: CELExpression) -> Bool { a.text == b.text }
    public var description: String { text }
}

/// One routing rule of a subscription (`routes.rules[i]`): events for which `match` is true go to `path`.
/// `match` nil: a rule without one (Dapr's trimmed-empty `match`), true for every event.
public struct RoutingRule: Sendable, Equatable {
    public var match: CELExpression?
    public var path: String

    public init(match: CELExpression?, path: String) {
        self.match = match
        self.path = path
    }

    /// Compiles `match` as Dapr's createRoutingRule does: blank = no match (the rule always applies).
    public init(match text: String, path: String) throws(CELSyntaxError) {
        self.init(match: text.allSatisfy(\.isWhitespace) ? nil : try CELExpression(text), path: path)
    }
}

/// An event the rules could not route: evaluating `rule`'s match failed or did not give a bool. Dapr then sends the
/// event to the dead-letter topic when there is one, and otherwise has it delivered again.
public struct RoutingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 0-based index in `routes.rules`.
    public var rule: Int
    public var match: String
    public var message: String
    public var description: String { "routes.rules[\(rule)].match '\(match)': \(message)" }
}

extension [RoutingRule] {
    /// The path of the first rule whose match is true for `event` (Dapr's findMatchingRoute), then `defaultPath` when
    /// it is not empty; nil when nothing matches (Dapr drops the event, or dead-letters it). Throws at the first rule
    /// whose evaluation fails or is not a bool, as Dapr stops there.
    public func path(for event: CELValue, defaultPath: String) throws(RoutingError) -> String? {
        for (index, rule) in enumerated() {
            guard let match = rule.match else { return rule.path }
            let result: CELValue
            do {
                result = try match.evaluate(["event": event])
            } catch {
                throw RoutingError(rule: index, match: match.text, message: error.message)
            }
            guard case .bool(let matched) = result else {
                throw RoutingError(rule: index, match: match.text, message: "the result is a \(result.typeName), not a bool")
            }
            if matched { return rule.path }
        }
        return defaultPath.isEmpty ? nil : defaultPath
    }
}

extension String {
    var trimmingWhitespace: String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(self[first...last])
    }
}
