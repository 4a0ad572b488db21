/// A parsed CEL expression (the tree the parser builds and the evaluator walks).
indirect enum CELNode: Sendable {
    case literal(CELValue)
    /// A variable: `event`, or a comprehension's.
    case identifier(String)
    /// `operand.field`; `has(operand.field)` is `testOnly`.
    case select(CELNode, field: String, testOnly: Bool)
    /// `operand[key]`.
    case index(CELNode, CELNode)
    /// `function(arguments)` or `target.function(arguments)`.
    case call(String, target: CELNode?, arguments: [CELNode])
    case list([CELNode])
    case map([(key: CELNode, value: CELNode)])
    case not(CELNode)
    case negate(CELNode)
    case binary(CELBinaryOperator, CELNode, CELNode)
    case and(CELNode, CELNode)
    case or(CELNode, CELNode)
    case conditional(CELNode, CELNode, CELNode)
    /// The macros `all`, `exists`, `exists_one`, `filter`, `map` over a list (its elements) or a map (its keys).
    case comprehension(CELMacro, range: CELNode, variable: String, body: CELNode, transform: CELNode?)
    /// `matches` with a constant pattern, compiled when the expression is.
    case matchesConstant(CELNode, CELPattern)
}

enum CELBinaryOperator: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case `in`, add = "+", subtract = "-", multiply = "*", divide = "/", remainder = "%"
}

enum CELMacro: String, Sendable {
    case all, exists, existsOne = "exists_one", filter, map
}

/// A regular expression of `matches` (Swift Regex; CEL's are RE2, whose common syntax Swift's accepts).
struct CELPattern: @unchecked Sendable {
    // @unchecked: a compiled Regex is immutable; matching does not change it, so sharing it across threads is safe.
    let text: String
    let regex: Regex<AnyRegexOutput>

    init(_ text: String) throws {
        self.text = text
        self.regex = try Regex(text)
    }

    /// RE2's MatchString: a match anywhere in `string`.
    func found(in string: String) -> Bool { string.contains(regex) }
}
