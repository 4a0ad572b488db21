/// The static types the parser can tell without knowing `event` (everything reached through a variable is `dyn`:
/// nil). Used to refuse, when the expression compiles, the operations cel-go's checker refuses whatever the event:
/// an operator or a function applied to literal-typed operands it has no overload for (`event.a > 1 > 2`,
/// `'a' - 1`, `!'x'`, `(1).startsWith('a')`). Operands of type dyn always pass: they are checked per evaluation.
enum CELStaticType: String {
    case bool, int, uint, double, string, null = "null_type", list, map

    var isNumber: Bool { self == .int || self == .uint || self == .double }
}

extension CELNode {
    /// The type every evaluation of this node has, when it does not depend on the event; nil: dyn.
    var staticType: CELStaticType? {
        switch self {
        case .literal(let value):
            switch value {
            case .null: return .null
            case .bool: return .bool
            case .int: return .int
            case .uint: return .uint
            case .double: return .double
            case .string: return .string
            case .list: return .list
            case .map: return .map
            }
        case .identifier, .select(_, _, false), .index, .conditional: return nil
        case .select(_, _, true), .not, .and, .or, .matchesConstant: return .bool
        case .list: return .list
        case .map: return .map
        case .negate(let operand): return operand.staticType
        case .call(let name, _, _):
            switch name {
            case "size", "int": return .int
            case "uint": return .uint
            case "double": return .double
            case "string": return .string
            default: return .bool  // bool, matches, startsWith, endsWith, contains
            }
        case .binary(let op, let left, let right):
            switch op {
            case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual, .in: return .bool
            default:
                // Arithmetic keeps its operands' type (checked alike on both sides when both are known).
                return left.staticType ?? right.staticType
            }
        case .comprehension(let macro, _, _, _, _):
            return macro == .filter || macro == .map ? .list : .bool
        }
    }
}

enum CELTypeCheck {
    private static func text(_ types: CELStaticType?...) -> String { types.map { $0?.rawValue ?? "dyn" }.joined(separator: ", ") }

    /// Why `left op right` can never evaluate, or nil.
    static func binary(_ op: CELBinaryOperator, _ left: CELNode, _ right: CELNode) -> String? {
        guard let a = left.staticType, let b = right.staticType else {
            // One side known: arithmetic and ordering still need a type that has the operator.
            let known = left.staticType ?? right.staticType
            switch op {
            case .less, .lessOrEqual, .greater, .greaterOrEqual:
                if let known, known == .null || known == .list || known == .map { return noOverload(op, left.staticType, right.staticType) }
            case .subtract, .multiply, .divide:
                if let known, !known.isNumber { return noOverload(op, left.staticType, right.staticType) }
            case .remainder:
                if let known, known != .int && known != .uint { return noOverload(op, left.staticType, right.staticType) }
            case .in:
                if let container = right.staticType, container != .list && container != .map { return noOverload(op, nil, container) }
            case .add:
                if let known, known == .bool || known == .null || known == .map { return noOverload(op, left.staticType, right.staticType) }
            default: break
            }
            return nil
        }
        switch op {
        case .equal, .notEqual: return nil  // heterogeneous equality: false, never an error
        case .in: return b == .list || b == .map ? nil : noOverload(op, a, b)
        case .less, .lessOrEqual, .greater, .greaterOrEqual:
            if a.isNumber && b.isNumber { return nil }
            return a == b && (a == .string || a == .bool) ? nil : noOverload(op, a, b)
        case .add:
            return a == b && (a.isNumber || a == .string || a == .list) ? nil : noOverload(op, a, b)
        case .subtract, .multiply, .divide:
            return a == b && a.isNumber ? nil : noOverload(op, a, b)
        case .remainder:
            return a == b && (a == .int || a == .uint) ? nil : noOverload(op, a, b)
        }
    }

    private static func noOverload(_ op: CELBinaryOperator, _ a: CELStaticType?, _ b: CELStaticType?) -> String {
        "no operator '\(op.rawValue)' for (\(text(a, b)))"
    }

    /// Why `!operand`, `-operand`, or a condition / logical operand of this type can never evaluate, or nil.
    static func mustBeBool(_ what: String, _ operand: CELNode) -> String? {
        guard let type = operand.staticType, type != .bool else { return nil }
        return "\(what) needs a bool, not \(type.rawValue)"
    }

    static func negatable(_ operand: CELNode) -> String? {
        guard let type = operand.staticType, type != .int, type != .double else { return nil }
        return "no operator '-' for (\(type.rawValue))"
    }

    /// Why a method or function call can never evaluate (`values`: receiver first for methods), or nil.
    static func call(_ name: String, _ values: [CELNode]) -> String? {
        let types = values.map(\.staticType)
        let fails: Bool
        switch name {
        case "startsWith", "endsWith", "contains", "matches":
            fails = types.contains { $0 != nil && $0 != .string }
        case "size":
            fails = types.contains { $0 != nil && ![.string, .list, .map].contains($0!) }
        case "int", "uint", "double":
            fails = types.contains { $0 != nil && !$0!.isNumber && $0 != .string }
        case "string":
            fails = types.contains { $0 == .null || $0 == .list || $0 == .map }
        case "bool":
            fails = types.contains { $0 != nil && $0 != .bool && $0 != .string }
        default:
            fails = false
        }
        return fails ? "no overload of \(name) for (\(types.map { $0?.rawValue ?? "dyn" }.joined(separator: ", ")))" : nil
    }
}
