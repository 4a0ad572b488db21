/// A value of the CEL subset molt evaluates for subscription routing rules (Dapr compiles `match` with cel-go
/// over a variable `event`, the CloudEvent decoded from JSON the way Go's encoding/json decodes into `any`).
///
/// Numbers from JSON are doubles, as they are in Dapr (Go decodes every JSON number to float64): `event.data.n == 1`
/// holds for 1.0 (CEL compares numbers across types), while `event.data.n + 1` is an error (CEL has no double + int;
/// `int(event.data.n) + 1` works). Maps have string keys (JSON objects; a map literal with another key is an error).
public enum CELValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case list([CELValue])
    case map([String: CELValue])

    /// The CEL type name, as error messages spell it.
    public var typeName: String {
        switch self {
        case .null: "null_type"
        case .bool: "bool"
        case .int: "int"
        case .uint: "uint"
        case .double: "double"
        case .string: "string"
        case .list: "list"
        case .map: "map"
        }
    }

    /// CEL's heterogeneous equality: numbers compare by value across int, uint and double; values of other
    /// different types are unequal; lists and maps compare element by element.
    public static func celEquals(_ a: CELValue, _ b: CELValue) -> Bool {
        if let order = numericOrder(a, b) { return order == 0 }
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.list(let x), .list(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { celEquals($0, $1) }
        case (.map(let x), .map(let y)):
            return x.count == y.count && x.allSatisfy { key, value in y[key].map { celEquals(value, $0) } ?? false }
        default: return false
        }
    }

    /// -1, 0 or 1 when both are numbers (NaN: nil, unordered); nil otherwise.
    static func numericOrder(_ a: CELValue, _ b: CELValue) -> Int? {
        func sign<T: Comparable>(_ x: T, _ y: T) -> Int { x < y ? -1 : (x == y ? 0 : 1) }
        switch (a, b) {
        case (.int(let x), .int(let y)): return sign(x, y)
        case (.uint(let x), .uint(let y)): return sign(x, y)
        case (.double(let x), .double(let y)): return x.isNaN || y.isNaN ? nil : sign(x, y)
        case (.int(let x), .uint(let y)): return x < 0 ? -1 : sign(UInt64(x), y)
        case (.uint, .int): return numericOrder(b, a).map { -$0 }
        // An integer against a double: by the integer's nearest double (exact below 2^53, as JSON numbers are).
        case (.int(let x), .double(let y)): return y.isNaN ? nil : sign(Double(x), y)
        case (.uint(let x), .double(let y)): return y.isNaN ? nil : sign(Double(x), y)
        case (.double, .int), (.double, .uint): return numericOrder(b, a).map { -$0 }
        default: return nil
        }
    }
}

extension CELValue: CustomStringConvertible {
    /// CEL-like text for logs: strings quoted, lists and maps spelled out.
    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let x): return "\(x)"
        case .int(let x): return "\(x)"
        case .uint(let x): return "\(x)u"
        case .double(let x): return "\(x)"
        case .string(let x): return "\"\(x)\""
        case .list(let items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .map(let fields):
            return "{" + fields.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
        }
    }
}
