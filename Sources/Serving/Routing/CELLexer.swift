/// Why a routing rule's `match` does not compile: the message and where in the expression (1-based column of the
/// expression's first line, counted in characters; `line` > 1 for a multi-line expression).
public struct CELSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// Offset in characters from the start of the expression.
    public var offset: Int
    public var line: Int
    public var column: Int

    init(_ message: String, at offset: Int, in source: [Character]) {
        self.message = message
        self.offset = offset
        var (line, column) = (1, 1)
        for character in source.prefix(offset) {
            if character == "\n" { (line, column) = (line + 1, 1) } else { column += 1 }
        }
        (self.line, self.column) = (line, column)
    }

    public var description: String { line == 1 ? "column \(column): \(message)" : "line \(line), column \(column): \(message)" }
}

/// One token of a CEL expression, with its offset (in characters) for error messages.
struct CELToken: Equatable {
    enum Kind: Equatable {
        case identifier(String)
        case int(Int64)
        case uint(UInt64)
        case double(Double)
        case string(String)
        /// Operators and punctuation: `== != < <= > >= && || ! + - * / % ? : . , ( ) [ ] { }`.
        case symbol(String)
        case end
    }
    var kind: Kind
    var offset: Int
}

/// Splits a CEL expression into tokens (the CEL spec's lexical grammar, less bytes literals).
struct CELLexer {
    private let source: [Character]
    private var position = 0

    init(_ source: [Character]) { self.source = source }

    static func tokens(_ source: [Character]) throws(CELSyntaxError) -> [CELToken] {
        var lexer = CELLexer(source)
        var tokens: [CELToken] = []
        while true {
            let token = try lexer.next()
            tokens.append(token)
            if token.kind == .end { return tokens }
        }
    }

    private func error(_ message: String, at offset: Int) -> CELSyntaxError { CELSyntaxError(message, at: offset, in: source) }
    private func peek(_ ahead: Int = 0) -> Character? { position + ahead < source.count ? source[position + ahead] : nil }

    private mutating func next() throws(CELSyntaxError) -> CELToken {
        skipSpaceAndComments()
        let start = position
        guard let character = peek() else { return CELToken(kind: .end, offset: start) }
        if character.isLetter || character == "_" {
            var name = ""
            while let next = peek(), next.isLetter || next.isNumber || next == "_" { name.append(next); position += 1 }
            // A string prefix: r'raw', b'bytes'.
            if let quote = peek(), quote == "'" || quote == "\"", name.count == 1 {
                switch name {
                case "r", "R": return CELToken(kind: .string(try string(raw: true)), offset: start)
                case "b", "B": throw error("bytes literals are not supported", at: start)
                default: break
                }
            }
            return CELToken(kind: .identifier(name), offset: start)
        }
        if character.isASCII && character.isNumber || (character == "." && peek(1)?.isASCII == true && peek(1)?.isNumber == true) {
            return CELToken(kind: try number(), offset: start)
        }
        if character == "'" || character == "\"" { return CELToken(kind: .string(try string(raw: false)), offset: start) }
        for symbol in ["==", "!=", "<=", ">=", "&&", "||"] where peek() == symbol.first && peek(1) == symbol.last {
            position += 2
            return CELToken(kind: .symbol(symbol), offset: start)
        }
        if "<>!+-*/%?:.,()[]{}".contains(character) {
            position += 1
            return CELToken(kind: .symbol(String(character)), offset: start)
        }
        if character == "=" { throw error("'=' is not an operator (did you mean '=='?)", at: start) }
        if character == "&" || character == "|" { throw error("'\(character)' is not an operator (did you mean '\(character)\(character)'?)", at: start) }
        throw error("unexpected character '\(character)'", at: start)
    }

    private mutating func skipSpaceAndComments() {
        while let character = peek() {
            if character.isWhitespace {
                position += 1
            } else if character == "/" && peek(1) == "/" {
                while let next = peek(), next != "\n" { _ = next; position += 1 }
            } else {
                return
            }
        }
    }

    /// Decimal or hexadecimal integers (`u` suffix: unsigned), doubles with a fraction or an exponent.
    private mutating func number() throws(CELSyntaxError) -> CELToken.Kind {
        let start = position
        if peek() == "0", let x = peek(1), x == "x" || x == "X" {
            position += 2
            var digits = ""
            while let next = peek(), next.isHexDigit { digits.append(next); position += 1 }
            return try integer(digits, radix: 16, start: start)
        }
        var text = ""
        var isDouble = false
        while let next = peek(), next.isASCII && next.isNumber { text.append(next); position += 1 }
        if peek() == ".", let after = peek(1), after.isASCII && after.isNumber {
            isDouble = true
            text.append("."); position += 1
            while let next = peek(), next.isASCII && next.isNumber { text.append(next); position += 1 }
        }
        if let e = peek(), e == "e" || e == "E" {
            var exponent = String(e)
            var ahead = 1
            if let sign = peek(1), sign == "+" || sign == "-" { exponent.append(sign); ahead = 2 }
            if let digit = peek(ahead), digit.isASCII && digit.isNumber {
                isDouble = true
                position += ahead
                text += exponent
                while let next = peek(), next.isASCII && next.isNumber { text.append(next); position += 1 }
            }
        }
        if isDouble {
            guard let value = Double(text.hasPrefix(".") ? "0" + text : text) else { throw error("malformed number '\(text)'", at: start) }
            return .double(value)
        }
        return try integer(text, radix: 10, start: start)
    }

    private mutating func integer(_ digits: String, radix: Int, start: Int) throws(CELSyntaxError) -> CELToken.Kind {
        guard !digits.isEmpty else { throw error("malformed number", at: start) }
        if let u = peek(), u == "u" || u == "U" {
            position += 1
            guard let value = UInt64(digits, radix: radix) else { throw error("integer literal out of range", at: start) }
            return .uint(value)
        }
        if let next = peek(), next.isLetter || next == "_" { throw error("malformed number", at: start) }
        guard let value = Int64(digits, radix: radix) else { throw error("integer literal out of range", at: start) }
        return .int(value)
    }

    /// A quoted string (single, double or triple quotes); escapes unless `raw`.
    private mutating func string(raw: Bool) throws(CELSyntaxError) -> String {
        let start = position
        let quote = source[position]
        let triple = peek(1) == quote && peek(2) == quote
        position += triple ? 3 : 1
        var text = ""
        while true {
            guard let character = peek() else { throw error("unterminated string", at: start) }
            if character == quote && (!triple || (peek(1) == quote && peek(2) == quote)) {
                position += triple ? 3 : 1
                return text
            }
            if character == "\n" && !triple { throw error("unterminated string (a newline inside quotes)", at: start) }
            position += 1
            if character == "\\" && !raw { text.append(try escape()) } else { text.append(character) }
        }
    }

    private mutating func escape() throws(CELSyntaxError) -> Character {
        let start = position - 1
        guard let character = peek() else { throw error("unterminated string", at: start) }
        position += 1
        switch character {
        case "n": return "\n"
        case "t": return "\t"
        case "r": return "\r"
        case "a": return "\u{07}"
        case "b": return "\u{08}"
        case "f": return "\u{0C}"
        case "v": return "\u{0B}"
        case "\\", "'", "\"", "`", "?": return character
        case "x", "X", "u", "U":
            let count = character == "u" ? 4 : (character == "U" ? 8 : 2)
            var digits = ""
            for _ in 0..<count {
                guard let next = peek(), next.isHexDigit else { throw error("malformed \\\(character) escape", at: start) }
                digits.append(next); position += 1
            }
            guard let code = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(code) else {
                throw error("\\\(character)\(digits) is not a character", at: start)
            }
            return Character(scalar)
        case "0"..."3":
            var digits = String(character)
            for _ in 0..<2 {
                guard let next = peek(), ("0"..."7").contains(next) else { throw error("malformed octal escape", at: start) }
                digits.append(next); position += 1
            }
            return Character(Unicode.Scalar(UInt8(digits, radix: 8)!))
        default: throw error("unknown escape '\\\(character)'", at: start)
        }
    }
}
