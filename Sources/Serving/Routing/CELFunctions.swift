/// CEL's operators and the standard functions molt evaluates, with cel-go's overloads: arithmetic within one
/// numeric type (int overflow and division by zero are errors), `+` on strings and lists, comparisons across
/// numeric types and within strings and bools, `in` on lists and map keys.
enum CELFunctions {
    static func noOverload(_ function: String, _ values: [CELValue]) -> CELEvaluationError {
        CELEvaluationError("no such overload: \(function) applied to (\(values.map(\.typeName).joined(separator: ", ")))")
    }

    static func binary(_ op: CELBinaryOperator, _ a: CELValue, _ b: CELValue) throws(CELEvaluationError) -> CELValue {
        let name = op == .in ? "@in" : "_\(op.rawValue)_"
        switch op {
        case .equal: return .bool(CELValue.celEquals(a, b))
        case .notEqual: return .bool(!CELValue.celEquals(a, b))
        case .less, .lessOrEqual, .greater, .greaterOrEqual:
            let order: Int
            if let numeric = CELValue.numericOrder(a, b) {
                order = numeric
            } else {
                switch (a, b) {
                case (.string(let x), .string(let y)):
                    // Go compares strings byte by byte (UTF-8).
                    order = x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : (x == y ? 0 : 1)
                case (.bool(let x), .bool(let y)): order = x == y ? 0 : (!x ? -1 : 1)
                default:
                    if isNumber(a) && isNumber(b) { return .bool(false) }  // NaN is unordered
                    throw noOverload(name, [a, b])
                }
            }
            switch op {
            case .less: return .bool(order < 0)
            case .lessOrEqual: return .bool(order <= 0)
            case .greater: return .bool(order > 0)
            default: return .bool(order >= 0)
            }
        case .in:
            switch b {
            case .list(let items): return .bool(items.contains { CELValue.celEquals(a, $0) })
            case .map(let fields):
                guard case .string(let key) = a else { return .bool(false) }
                return .bool(fields[key] != nil)
            default: throw noOverload(name, [a, b])
            }
        case .add, .subtract, .multiply, .divide, .remainder:
            return try arithmetic(op, name, a, b)
        }
    }

    private static func isNumber(_ value: CELValue) -> Bool {
        switch value {
        case .int, .uint, .double: true
        default: false
        }
    }

    private static func arithmetic(_ op: CELBinaryOperator, _ name: String, _ a: CELValue, _ b: CELValue) throws(CELEvaluationError) -> CELValue {
        switch (a, b) {
        case (.int(let x), .int(let y)): return .int(try checked(op, x, y, type: "int"))
        case (.uint(let x), .uint(let y)): return .uint(try checked(op, x, y, type: "uint"))
        case (.double(let x), .double(let y)):
            switch op {
            case .add: return .double(x + y)
            case .subtract: return .double(x - y)
            case .multiply: return .double(x * y)
            case .divide: return .double(x / y)
            default: throw noOverload(name, [a, b])
            }
        case (.string(let x), .string(let y)) where op == .add: return .string(x + y)
        case (.list(let x), .list(let y)) where op == .add: return .list(x + y)
        default: throw noOverload(name, [a, b])
        }
    }

    /// `op` on two integers of one type, as CEL does it: overflow and division by zero are errors.
    private static func checked<Integer: FixedWidthInteger>(_ op: CELBinaryOperator, _ x: Integer, _ y: Integer,
                                                            type: String) throws(CELEvaluationError) -> Integer {
        let (value, overflow): (Integer, Bool)
        switch op {
        case .add: (value, overflow) = x.addingReportingOverflow(y)
        case .subtract: (value, overflow) = x.subtractingReportingOverflow(y)
        case .multiply: (value, overflow) = x.multipliedReportingOverflow(by: y)
        case .divide, .remainder:
            guard y != 0 else { throw CELEvaluationError(op == .divide ? "division by zero" : "modulus by zero") }
            (value, overflow) = op == .divide ? x.dividedReportingOverflow(by: y) : x.remainderReportingOverflow(dividingBy: y)
        default: (value, overflow) = (0, true)
        }
        guard !overflow else { throw CELEvaluationError("\(type) overflow") }
        return value
    }

    /// A function (`size(x)`, `int(x)`, …) or a method (`x.startsWith(y)`, …; `values[0]` is the receiver).
    static func call(_ name: String, method: Bool, _ values: [CELValue]) throws(CELEvaluationError) -> CELValue {
        switch (name, values.count) {
        case ("size", 1):
            switch values[0] {
            case .string(let text): return .int(Int64(text.unicodeScalars.count))
            case .list(let items): return .int(Int64(items.count))
            case .map(let fields): return .int(Int64(fields.count))
            default: break
            }
        case ("startsWith", 2), ("endsWith", 2), ("contains", 2):
            if case .string(let text) = values[0], case .string(let part) = values[1] {
                // By Unicode scalars, as Go's strings package compares bytes (no Unicode equivalence).
                let (whole, piece) = (Array(text.unicodeScalars), Array(part.unicodeScalars))
                switch name {
                case "startsWith": return .bool(whole.starts(with: piece))
                case "endsWith": return .bool(whole.reversed().starts(with: piece.reversed()))
                default: return .bool(piece.isEmpty || whole.indices.contains { whole[$0...].starts(with: piece) })
                }
            }
        case ("matches", 2):
            if case .string(let text) = values[0], case .string(let pattern) = values[1] {
                do {
                    return .bool(try CELPattern(pattern).found(in: text))
                } catch {
                    throw CELEvaluationError("invalid regular expression '\(pattern)': \(error)")
                }
            }
        case ("int", 1): return try toInt(values[0])
        case ("uint", 1): return try toUInt(values[0])
        case ("double", 1):
            switch values[0] {
            case .int(let x): return .double(Double(x))
            case .uint(let x): return .double(Double(x))
            case .double: return values[0]
            case .string(let text):
                guard let value = Double(text) else { throw CELEvaluationError("cannot convert '\(text)' to double") }
                return .double(value)
            default: break
            }
        case ("string", 1):
            switch values[0] {
            case .string: return values[0]
            case .int(let x): return .string(String(x))
            case .uint(let x): return .string(String(x))
            case .double(let x):
                // Go's FormatFloat(x, 'g', -1, 64) for whole numbers below 1e15: no ".0".
                return .string(abs(x) < 1e15 && Double(Int64(x)) == x ? String(Int64(x)) : String(x))
            case .bool(let x): return .string(String(x))
            default: break
            }
        case ("bool", 1):
            switch values[0] {
            case .bool: return values[0]
            case .string(let text):
                switch text {
                case "1", "t", "true", "TRUE", "True": return .bool(true)
                case "0", "f", "false", "FALSE", "False": return .bool(false)
                default: throw CELEvaluationError("cannot convert '\(text)' to bool")
                }
            default: break
            }
        default: break
        }
        throw noOverload(name, values)
    }

    private static func toInt(_ value: CELValue) throws(CELEvaluationError) -> CELValue {
        switch value {
        case .int: return value
        case .uint(let x):
            guard x <= UInt64(Int64.max) else { throw CELEvaluationError("int overflow") }
            return .int(Int64(x))
        case .double(let x):
            guard x.isFinite, x > -9.223372036854775808e18, x < 9.223372036854775807e18 else { throw CELEvaluationError("int overflow") }
            return .int(Int64(x))  // truncates toward zero
        case .string(let text):
            guard let x = Int64(text) else { throw CELEvaluationError("cannot convert '\(text)' to int") }
            return .int(x)
        default: throw noOverload("int", [value])
        }
    }

    private static func toUInt(_ value: CELValue) throws(CELEvaluationError) -> CELValue {
        switch value {
        case .uint: return value
        case .int(let x):
            guard x >= 0 else { throw CELEvaluationError("uint overflow") }
            return .uint(UInt64(x))
        case .double(let x):
            guard x.isFinite, x > -1, x < 1.8446744073709552e19 else { throw CELEvaluationError("uint overflow") }
            return .uint(UInt64(x))  // truncates toward zero
        case .string(let text):
            guard let x = UInt64(text) else { throw CELEvaluationError("cannot convert '\(text)' to uint") }
            return .uint(x)
        default: throw noOverload("uint", [value])
        }
    }
}
