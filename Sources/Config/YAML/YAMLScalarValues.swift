/// YAML 1.1 implicit typing of plain scalars, as the config files have always been read (the rules and their
/// order are Yams' default resolver's: bool, int, float, merge, null, timestamp, value, else str), and the values
/// of int scalars. Hand-written matchers over the text's bytes (ASCII rules) instead of regular expressions.
enum YAMLScalarValues {
    static func resolve(_ text: String) -> YAMLTag {
        let bytes = Array(text.utf8)
        if isBool(text) { return .bool }
        if isInt(bytes) { return .int }
        if isFloat(bytes) { return .float }
        if text == "<<" { return .merge }
        if text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL" { return .null }
        if isTimestamp(bytes) { return .timestamp }
        if text == "=" { return .value }
        return .str
    }

    /// The value of an int scalar: `_` ignored; `0x` hex, `0b` binary, `0o` or a leading `0` octal, `a:b:c` base 60.
    static func integer(_ text: String) -> Int? {
        let digits = text.filter { $0 != "_" }
        if digits == "0" { return 0 }
        let negative = digits.hasPrefix("-")
        let unsigned = digits.dropFirst(negative || digits.hasPrefix("+") ? 1 : 0)
        let sign = negative ? "-" : ""
        for (prefix, radix) in [("0x", 16), ("0b", 2), ("0o", 8), ("0", 8)] where unsigned.hasPrefix(prefix) {
            return Int(sign + unsigned.dropFirst(prefix.count), radix: radix)
        }
        if unsigned.contains(":") {
            var value = 0
            for part in unsigned.split(separator: ":", omittingEmptySubsequences: false) {
                guard let number = Int(part) else { return nil }
                let (shifted, overflow) = value.multipliedReportingOverflow(by: 60)
                guard !overflow else { return nil }
                value = shifted + number
            }
            return negative ? -value : value
        }
        return Int(digits)
    }

    // MARK: - Matchers (each mirrors one YAML 1.1 pattern; comments give the pattern)

    private static let boolWords: Set<String> = [
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
    ]

    private static func isBool(_ text: String) -> Bool { boolWords.contains(text) }

    private static func isInt(_ bytes: [UInt8]) -> Bool {
        var cursor = Cursor(bytes)
        cursor.skipSign()
        let body = cursor
        // [-+]?0b[0-1_]+
        var binary = body
        if binary.skip("0b"), binary.many({ $0 == 0x30 || $0 == 0x31 || $0 == 0x5F }) >= 1, binary.atEnd { return true }
        // [-+]?0o?[0-7_]+
        var octal = body
        if octal.skip("0") {
            _ = octal.skip("o")
            if octal.many({ (0x30...0x37).contains($0) || $0 == 0x5F }) >= 1, octal.atEnd { return true }
        }
        // [-+]?(?:0|[1-9][0-9_]*)
        var decimal = body
        if decimal.skip("0"), decimal.atEnd { return true }
        decimal = body
        if decimal.one({ (0x31...0x39).contains($0) }) {
            _ = decimal.many { isDigit($0) || $0 == 0x5F }
            if decimal.atEnd { return true }
        }
        // [-+]?0x[0-9a-fA-F_]+
        var hex = body
        if hex.skip("0x"), hex.many({ isHexDigit($0) || $0 == 0x5F }) >= 1, hex.atEnd { return true }
        // [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
        var sexagesimal = body
        if sexagesimal.one({ (0x31...0x39).contains($0) }) {
            _ = sexagesimal.many { isDigit($0) || $0 == 0x5F }
            if sexagesimal.baseSixtyGroups() >= 1, sexagesimal.atEnd { return true }
        }
        return false
    }

    private static func isFloat(_ bytes: [UInt8]) -> Bool {
        // [-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
        var plain = Cursor(bytes)
        plain.skipSign()
        if plain.one(isDigit) {
            _ = plain.many { isDigit($0) || $0 == 0x5F }
            if plain.skip(".") { _ = plain.many { isDigit($0) || $0 == 0x5F } }
            if plain.exponent(signRequired: false), plain.atEnd { return true }
        }
        // \.[0-9_]+(?:[eE][-+][0-9]+)?
        var fraction = Cursor(bytes)
        if fraction.skip("."), fraction.many({ isDigit($0) || $0 == 0x5F }) >= 1, fraction.exponent(signRequired: true), fraction.atEnd {
            return true
        }
        // [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
        var sexagesimal = Cursor(bytes)
        sexagesimal.skipSign()
        if sexagesimal.one(isDigit) {
            _ = sexagesimal.many { isDigit($0) || $0 == 0x5F }
            if sexagesimal.baseSixtyGroups() >= 1, sexagesimal.skip(".") {
                _ = sexagesimal.many { isDigit($0) || $0 == 0x5F }
                if sexagesimal.atEnd { return true }
            }
        }
        // [-+]?\.(?:inf|Inf|INF)
        var infinity = Cursor(bytes)
        infinity.skipSign()
        if infinity.skip("."), infinity.skipAny(["inf", "Inf", "INF"]), infinity.atEnd { return true }
        // \.(?:nan|NaN|NAN)
        var nan = Cursor(bytes)
        return nan.skip(".") && nan.skipAny(["nan", "NaN", "NAN"]) && nan.atEnd
    }

    private static func isTimestamp(_ bytes: [UInt8]) -> Bool {
        // [0-9]{4}-[0-9]{2}-[0-9]{2}
        var date = Cursor(bytes)
        if date.digits(4...4), date.skip("-"), date.digits(2...2), date.skip("-"), date.digits(2...2), date.atEnd { return true }
        // [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?
        var time = Cursor(bytes)
        guard time.digits(4...4), time.skip("-"), time.digits(1...2), time.skip("-"), time.digits(1...2) else { return false }
        if !time.one({ $0 == 0x54 || $0 == 0x74 }) {
            guard time.many({ $0 == 0x20 || $0 == 0x09 }) >= 1 else { return false }
        }
        guard time.digits(1...2), time.skip(":"), time.digits(2...2), time.skip(":"), time.digits(2...2) else { return false }
        if time.skip(".") { _ = time.many(isDigit) }
        if time.atEnd { return true }
        _ = time.many { $0 == 0x20 || $0 == 0x09 }
        if time.skip("Z") { return time.atEnd }
        guard time.one({ $0 == 0x2B || $0 == 0x2D }), time.digits(1...2) else { return false }
        if time.skip(":") { guard time.digits(2...2) else { return false } }
        return time.atEnd
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }
    private static func isHexDigit(_ byte: UInt8) -> Bool { isDigit(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte) }

    /// A position in the bytes being matched; every step either advances and returns true/a count, or leaves it.
    private struct Cursor {
        let bytes: [UInt8]
        var index = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { index == bytes.count }

        mutating func one(_ accepts: (UInt8) -> Bool) -> Bool {
            guard index < bytes.count, accepts(bytes[index]) else { return false }
            index += 1
            return true
        }

        mutating func many(_ accepts: (UInt8) -> Bool) -> Int {
            let start = index
            while index < bytes.count, accepts(bytes[index]) { index += 1 }
            return index - start
        }

        mutating func skip(_ literal: String) -> Bool {
            let expected = Array(literal.utf8)
            guard bytes.count - index >= expected.count, Array(bytes[index..<index + expected.count]) == expected else { return false }
            index += expected.count
            return true
        }

        mutating func skipAny(_ literals: [String]) -> Bool { literals.contains { skip($0) } }

        mutating func skipSign() { _ = one { $0 == 0x2B || $0 == 0x2D } }

        /// Digits, between `count.lowerBound` and `count.upperBound` of them (greedy up to the upper bound).
        mutating func digits(_ count: ClosedRange<Int>) -> Bool {
            let start = index
            while index < bytes.count, index - start < count.upperBound, isDigit(bytes[index]) { index += 1 }
            if index - start >= count.lowerBound { return true }
            index = start
            return false
        }

        /// `(?::[0-5]?[0-9])*`: how many groups were read.
        mutating func baseSixtyGroups() -> Int {
            var groups = 0
            while true {
                let start = index
                guard skip(":") else { return groups }
                let first = index
                if one({ (0x30...0x35).contains($0) }), one(isDigit) { groups += 1; continue }
                index = first
                if one(isDigit) { groups += 1; continue }
                index = start
                return groups
            }
        }

        /// `(?:[eE][-+]?[0-9]+)?` (or with the sign required): true unless an exponent starts and is malformed.
        mutating func exponent(signRequired: Bool) -> Bool {
            let start = index
            guard one({ $0 == 0x65 || $0 == 0x45 }) else { return true }
            let signed = one { $0 == 0x2B || $0 == 0x2D }
            if (signed || !signRequired), many(isDigit) >= 1 { return true }
            index = start
            return true  // the optional exponent is absent; the caller's atEnd check decides
        }
    }
}
