/// Parses a CEL expression (the CEL spec's grammar) into a `CELNode`, by recursive descent:
///
///     Expr     = Or ["?" Or ":" Expr]
///     Or       = And {"||" And}            And = Relation {"&&" Relation}
///     Relation = Sum {("<"|"<="|">="|">"|"=="|"!="|"in") Sum}
///     Sum      = Product {("+"|"-") Product}   Product = Unary {("*"|"/"|"%") Unary}
///     Unary    = Member | "!" {"!"} Member | "-" {"-"} Member
///     Member   = Primary {"." IDENT ["(" [Exprs] ")"] | "[" Expr "]"}
///     Primary  = IDENT ["(" [Exprs] ")"] | "(" Expr ")" | "[" [Exprs] [","] "]" | "{" [Inits] [","] "}" | LITERAL
///
/// Macros are expanded here as cel-go does: `has(a.f)`, `r.all(x, p)`, `r.exists(x, p)`, `r.exists_one(x, p)`,
/// `r.filter(x, p)`, `r.map(x, t)`, `r.map(x, p, t)`. Unknown identifiers parse (Dapr declares every one as `any`)
/// and fail when evaluated.
struct CELParser {
    private let source: [Character]
    private let tokens: [CELToken]
    private var index = 0
    /// Depth of the tree being built (nesting and operator chains): bounded so that neither parsing nor evaluating
    /// (both recursive, on a cooperative-pool thread's small stack) can exhaust the stack.
    private var depth = 0
    static let maxDepth = 100
    private static let reserved: Set<String> = ["as", "break", "const", "continue", "else", "for", "function", "if", "import",
                                                "let", "loop", "package", "namespace", "return", "var", "void", "while"]

    static func parse(_ text: String) throws(CELSyntaxError) -> CELNode {
        let source = Array(text)
        var parser = CELParser(source: source, tokens: try CELLexer.tokens(source))
        if case .end = parser.current.kind { throw parser.error("empty expression") }
        let node = try parser.expression()
        guard case .end = parser.current.kind else { throw parser.error("unexpected \(parser.describe(parser.current))") }
        return node
    }

    private init(source: [Character], tokens: [CELToken]) { (self.source, self.tokens) = (source, tokens) }

    private var current: CELToken { tokens[index] }
    private func error(_ message: String, at token: CELToken? = nil) -> CELSyntaxError {
        CELSyntaxError(message, at: (token ?? current).offset, in: source)
    }
    private func describe(_ token: CELToken) -> String {
        switch token.kind {
        case .identifier(let name): "'\(name)'"
        case .symbol(let symbol): "'\(symbol)'"
        case .int, .uint, .double: "number"
        case .string: "string"
        case .end: "end of expression"
        }
    }
    private func isSymbol(_ symbol: String) -> Bool { current.kind == .symbol(symbol) }
    private mutating func take(_ symbol: String) -> Bool {
        guard isSymbol(symbol) else { return false }
        index += 1
        return true
    }
    private mutating func expect(_ symbol: String, _ context: String) throws(CELSyntaxError) {
        guard take(symbol) else { throw error("expected '\(symbol)' \(context), found \(describe(current))") }
    }

    /// `left op right`, refused when no operand types could ever make it evaluate.
    private func binary(_ op: CELBinaryOperator, _ left: CELNode, _ right: CELNode, at token: CELToken) throws(CELSyntaxError) -> CELNode {
        if let problem = CELTypeCheck.binary(op, left, right) { throw error(problem, at: token) }
        return .binary(op, left, right)
    }

    private func checkLogical(_ op: String, _ left: CELNode, _ right: CELNode, at token: CELToken) throws(CELSyntaxError) {
        for side in [left, right] {
            if let problem = CELTypeCheck.mustBeBool("'\(op)'", side) { throw error(problem, at: token) }
        }
    }

    /// One more level of the tree.
    private mutating func deeper() throws(CELSyntaxError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw error("expression nested too deeply (more than \(Self.maxDepth) levels)") }
    }

    private mutating func expression() throws(CELSyntaxError) -> CELNode {
        let saved = depth
        defer { depth = saved }
        try deeper()
        let condition = try or()
        let question = current
        guard take("?") else { return condition }
        if let problem = CELTypeCheck.mustBeBool("the condition of '?:'", condition) { throw error(problem, at: question) }
        let whenTrue = try or()
        try expect(":", "in a conditional 'a ? b : c'")
        return .conditional(condition, whenTrue, try expression())
    }

    private mutating func or() throws(CELSyntaxError) -> CELNode {
        let saved = depth
        defer { depth = saved }
        var node = try and()
        while isSymbol("||") {
            let token = current
            index += 1
            try deeper()
            let right = try and()
            try checkLogical("||", node, right, at: token)
            node = .or(node, right)
        }
        return node
    }

    private mutating func and() throws(CELSyntaxError) -> CELNode {
        let saved = depth
        defer { depth = saved }
        var node = try relation()
        while isSymbol("&&") {
            let token = current
            index += 1
            try deeper()
            let right = try relation()
            try checkLogical("&&", node, right, at: token)
            node = .and(node, right)
        }
        return node
    }

    private mutating func relation() throws(CELSyntaxError) -> CELNode {
        let saved = depth
        defer { depth = saved }
        var node = try sum()
        while true {
            let op: CELBinaryOperator
            switch current.kind {
            case .symbol("=="): op = .equal
            case .symbol("!="): op = .notEqual
            case .symbol("<"): op = .less
            case .symbol("<="): op = .lessOrEqual
            case .symbol(">"): op = .greater
            case .symbol(">="): op = .greaterOrEqual
            case .identifier("in"): op = .in
            default: return node
            }
            let token = current
            index += 1
            try deeper()
            node = try binary(op, node, try sum(), at: token)
        }
    }

    private mutating func sum() throws(CELSyntaxError) -> CELNode {
        let saved = depth
        defer { depth = saved }
        var node = try product()
        while true {
            let token = current
            if take("+") {
                try deeper()
                node = try binary(.add, node, try product(), at: token)
            } else if take("-") {
                try deeper()
                node = try binary(.subtract, node, try product(), at: token)
            } else {
                return node
            }
        }
    }

    private mutating func product() throws(CELSyntaxError) -> CELNode {
        let saved = depth
        defer { depth = saved }
        var node = try unary()
        while true {
            if isSymbol("*") || isSymbol("/") || isSymbol("%") { try deeper() }
            let token = current
            if take("*") {
                node = try binary(.multiply, node, try unary(), at: token)
            } else if take("/") {
                node = try binary(.divide, node, try unary(), at: token)
            } else if take("%") {
                node = try binary(.remainder, node, try unary(), at: token)
            } else {
                return node
            }
        }
    }

    private mutating func unary() throws(CELSyntaxError) -> CELNode {
        let saved = depth
        defer { depth = saved }
        let token = current
        if take("!") {
            try deeper()
            let operand = try unary()
            if let problem = CELTypeCheck.mustBeBool("'!'", operand) { throw error(problem, at: token) }
            return .not(operand)
        }
        if isSymbol("-") {
            index += 1
            // A negated number literal is a literal.
            if case .int(let value) = current.kind { index += 1; return try member(.literal(.int(-value))) }
            if case .double(let value) = current.kind { index += 1; return try member(.literal(.double(-value))) }
            try deeper()
            let operand = try unary()
            if let problem = CELTypeCheck.negatable(operand) { throw error(problem, at: token) }
            return .negate(operand)
        }
        return try member(try primary())
    }

    private mutating func member(_ start: CELNode) throws(CELSyntaxError) -> CELNode {
        let saved = depth
        defer { depth = saved }
        var node = start
        while true {
            if isSymbol(".") || isSymbol("[") { try deeper() }
            if take(".") {
                let nameToken = current
                guard case .identifier(let name) = nameToken.kind else { throw error("expected a field or method name after '.', found \(describe(current))") }
                index += 1
                if take("(") {
                    node = try method(name, on: node, arguments: try arguments(closing: ")"), at: nameToken)
                } else {
                    node = .select(node, field: name, testOnly: false)
                }
            } else if take("[") {
                let key = try expression()
                try expect("]", "after an index")
                node = .index(node, key)
            } else {
                return node
            }
        }
    }

    private mutating func primary() throws(CELSyntaxError) -> CELNode {
        let token = current
        index += 1
        switch token.kind {
        case .int(let value): return .literal(.int(value))
        case .uint(let value): return .literal(.uint(value))
        case .double(let value): return .literal(.double(value))
        case .string(let value): return .literal(.string(value))
        case .identifier(let name):
            switch name {
            case "true": return .literal(.bool(true))
            case "false": return .literal(.bool(false))
            case "null": return .literal(.null)
            case "in": throw error("unexpected 'in'", at: token)
            default: break
            }
            if Self.reserved.contains(name) { throw error("'\(name)' is a reserved word", at: token) }
            guard take("(") else { return .identifier(name) }
            let arguments = try arguments(closing: ")")
            if name == "has" {
                guard arguments.count == 1, case .select(let operand, let field, _) = arguments[0] else {
                    throw error("has() takes one field selection, as in has(event.data.field)", at: token)
                }
                return .select(operand, field: field, testOnly: true)
            }
            try checkFunction(name, arity: arguments.count, method: false, at: token)
            if let problem = CELTypeCheck.call(name, arguments) { throw error(problem, at: token) }
            return .call(name, target: nil, arguments: arguments)
        case .symbol("("):
            let node = try expression()
            try expect(")", "to close '('")
            return node
        case .symbol("["):
            return .list(try arguments(closing: "]"))
        case .symbol("{"):
            var entries: [(key: CELNode, value: CELNode)] = []
            while !take("}") {
                let key = try expression()
                try expect(":", "between a map key and its value")
                entries.append((key, try expression()))
                if !take(",") {
                    try expect("}", "to close a map")
                    break
                }
            }
            return .map(entries)
        case .symbol("."):
            throw error("a leading '.' (qualified names) is not supported", at: token)
        default:
            throw error(token.kind == .end ? "unexpected end of expression" : "unexpected \(describe(token))", at: token)
        }
    }

    /// Comma-separated expressions up to `closing` (a trailing comma is allowed).
    private mutating func arguments(closing: String) throws(CELSyntaxError) -> [CELNode] {
        var list: [CELNode] = []
        while !take(closing) {
            list.append(try expression())
            if !take(",") {
                try expect(closing, "after a list of expressions")
                break
            }
        }
        return list
    }

    /// A method call or a macro on `target`.
    private func method(_ name: String, on target: CELNode, arguments: [CELNode], at token: CELToken) throws(CELSyntaxError) -> CELNode {
        if let macro = CELMacro(rawValue: name), arguments.count >= 2 {
            guard case .identifier(let variable) = arguments[0] else {
                throw error("\(name)() takes a variable name first, as in \(name)(x, ...)", at: token)
            }
            switch (macro, arguments.count) {
            case (.map, 2): return .comprehension(.map, range: target, variable: variable, body: arguments[1], transform: nil)
            case (.map, 3): return .comprehension(.map, range: target, variable: variable, body: arguments[1], transform: arguments[2])
            case (_, 2): return .comprehension(macro, range: target, variable: variable, body: arguments[1], transform: nil)
            default: throw error("\(name)() takes 2 arguments", at: token)
            }
        }
        if CELMacro(rawValue: name) == nil, let problem = CELTypeCheck.call(name, [target] + arguments) { throw error(problem, at: token) }
        if name == "matches", arguments.count == 1, case .literal(.string(let pattern)) = arguments[0] {
            do {
                return .matchesConstant(target, try CELPattern(pattern))
            } catch {
                throw self.error("invalid regular expression '\(pattern)': \(error)", at: token)
            }
        }
        try checkFunction(name, arity: arguments.count, method: true, at: token)
        return .call(name, target: target, arguments: arguments)
    }

    /// The functions of cel-go's standard environment that molt evaluates (Dapr adds none), by arity.
    static let functions: [String: Int] = ["size": 1, "int": 1, "uint": 1, "double": 1, "string": 1, "bool": 1, "matches": 2]
    static let methods: [String: Int] = ["size": 0, "startsWith": 1, "endsWith": 1, "contains": 1, "matches": 1]

    /// An unknown function, or a known one with the wrong number of arguments, does not compile (as in cel-go).
    private func checkFunction(_ name: String, arity: Int, method: Bool, at token: CELToken) throws(CELSyntaxError) {
        guard let expected = (method ? Self.methods : Self.functions)[name] else {
            let known = (method ? Self.methods : Self.functions).keys.sorted().joined(separator: ", ")
            throw error("unknown \(method ? "method" : "function") '\(name)' (molt knows \(known)\(method ? ", all, exists, exists_one, filter, map" : ", has"))", at: token)
        }
        guard arity == expected else {
            throw error("\(name)() takes \(expected) argument\(expected == 1 ? "" : "s")\(method ? " after its receiver" : ""), not \(arity)", at: token)
        }
    }
}
