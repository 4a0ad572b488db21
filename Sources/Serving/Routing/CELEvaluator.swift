/// Why an expression could not be evaluated for one event (cel-go's runtime errors: a missing key, no overload
/// for the operand types, division by zero, overflow). In Dapr such an error stops the routing of that event.
public struct CELEvaluationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Evaluates a `CELNode` with variables bound (`event`, comprehension variables). Pure: no state outside the
/// bindings, so one compiled expression serves every thread.
struct CELEvaluator {
    var bindings: [String: CELValue]

    func evaluate(_ node: CELNode) throws(CELEvaluationError) -> CELValue {
        switch node {
        case .literal(let value): return value
        case .identifier(let name):
            guard let value = bindings[name] else { throw CELEvaluationError("no such attribute: '\(name)' (only 'event' is defined)") }
            return value
        case .select(let operand, let field, let testOnly):
            let value = try evaluate(operand)
            guard case .map(let fields) = value else {
                throw CELEvaluationError("cannot select field '\(field)' of a \(value.typeName)")
            }
            if testOnly { return .bool(fields[field] != nil) }
            guard let found = fields[field] else { throw CELEvaluationError("no such key: \(field)") }
            return found
        case .index(let operand, let key):
            return try index(try evaluate(operand), try evaluate(key))
        case .call(let name, let target, let arguments):
            var values: [CELValue] = []
            if let target { values.append(try evaluate(target)) }
            for argument in arguments { values.append(try evaluate(argument)) }
            return try CELFunctions.call(name, method: target != nil, values)
        case .list(let items):
            var values: [CELValue] = []
            for item in items { values.append(try evaluate(item)) }
            return .list(values)
        case .map(let entries):
            var fields: [String: CELValue] = [:]
            for entry in entries {
                let key = try evaluate(entry.key)
                guard case .string(let name) = key else { throw CELEvaluationError("molt's maps have string keys, not \(key.typeName)") }
                guard fields[name] == nil else { throw CELEvaluationError("repeated map key: \(name)") }
                fields[name] = try evaluate(entry.value)
            }
            return .map(fields)
        case .not(let operand):
            let value = try evaluate(operand)
            guard case .bool(let flag) = value else { throw noOverload("!_", value) }
            return .bool(!flag)
        case .negate(let operand):
            let value = try evaluate(operand)
            switch value {
            case .int(let x):
                guard x != .min else { throw CELEvaluationError("int overflow") }
                return .int(-x)
            case .double(let x): return .double(-x)
            default: throw noOverload("-_", value)
            }
        case .binary(let op, let left, let right):
            return try CELFunctions.binary(op, try evaluate(left), try evaluate(right))
        case .and(let left, let right):
            // Commutative, as in CEL: a false side decides even when the other is an error.
            return try logical(left, right, decisive: false, name: "_&&_")
        case .or(let left, let right):
            return try logical(left, right, decisive: true, name: "_||_")
        case .conditional(let condition, let whenTrue, let whenFalse):
            let value = try evaluate(condition)
            guard case .bool(let flag) = value else { throw noOverload("_?_:_", value) }
            return try evaluate(flag ? whenTrue : whenFalse)
        case .comprehension(let macro, let range, let variable, let body, let transform):
            return try comprehension(macro, range: try evaluate(range), variable: variable, body: body, transform: transform)
        case .matchesConstant(let operand, let pattern):
            let value = try evaluate(operand)
            guard case .string(let text) = value else { throw noOverload("matches", value) }
            return .bool(pattern.found(in: text))
        }
    }

    private func noOverload(_ function: String, _ values: CELValue...) -> CELEvaluationError {
        CELFunctions.noOverload(function, values)
    }

    /// `&&` (decisive false) and `||` (decisive true): a decisive side wins over an error or a non-bool on the other.
    private func logical(_ left: CELNode, _ right: CELNode, decisive: Bool, name: String) throws(CELEvaluationError) -> CELValue {
        func side(_ node: CELNode) -> Result<Bool, CELEvaluationError> {
            do {
                let value = try evaluate(node)
                guard case .bool(let flag) = value else { return .failure(noOverload(name, value)) }
                return .success(flag)
            } catch {
                return .failure(error)
            }
        }
        let first = side(left)
        if case .success(decisive) = first { return .bool(decisive) }
        let second = side(right)
        if case .success(decisive) = second { return .bool(decisive) }
        if case .failure(let error) = first { throw error }
        if case .failure(let error) = second { throw error }
        return .bool(!decisive)
    }

    private func index(_ container: CELValue, _ key: CELValue) throws(CELEvaluationError) -> CELValue {
        switch (container, key) {
        case (.map(let fields), .string(let name)):
            guard let found = fields[name] else { throw CELEvaluationError("no such key: \(name)") }
            return found
        case (.map, _): throw CELEvaluationError("no such key: \(key)")
        case (.list(let items), _):
            let position: Int64
            switch key {
            case .int(let x): position = x
            case .uint(let x) where x <= UInt64(Int64.max): position = Int64(x)
            case .double(let x) where abs(x) < 9e18 && Double(Int64(x)) == x: position = Int64(x)
            default: throw noOverload("_[_]", container, key)
            }
            guard position >= 0 && position < items.count else {
                throw CELEvaluationError("index out of bounds: \(position) (the list has \(items.count))")
            }
            return items[Int(position)]
        default: throw noOverload("_[_]", container, key)
        }
    }

    private func comprehension(_ macro: CELMacro, range: CELValue, variable: String, body: CELNode,
                               transform: CELNode?) throws(CELEvaluationError) -> CELValue {
        let elements: [CELValue]
        switch range {
        case .list(let items): elements = items
        case .map(let fields): elements = fields.keys.sorted().map(CELValue.string)
        default: throw noOverload(macro.rawValue, range)
        }
        var scope = self
        func test(_ element: CELValue) throws(CELEvaluationError) -> Bool {
            scope.bindings[variable] = element
            let value = try scope.evaluate(body)
            guard case .bool(let flag) = value else { throw noOverload(macro.rawValue, value) }
            return flag
        }
        switch macro {
        case .all, .exists:
            // Like && and ||: a decisive element wins over an error elsewhere.
            var firstError: CELEvaluationError?
            for element in elements {
                do {
                    if try test(element) == (macro == .exists) { return .bool(macro == .exists) }
                } catch {
                    firstError = firstError ?? error
                }
            }
            if let firstError { throw firstError }
            return .bool(macro == .all)
        case .existsOne:
            var count = 0
            for element in elements {
                if try test(element) { count += 1 }
            }
            return .bool(count == 1)
        case .filter:
            var kept: [CELValue] = []
            for element in elements {
                if try test(element) { kept.append(element) }
            }
            return .list(kept)
        case .map:
            var mapped: [CELValue] = []
            for element in elements {
                if let transform {
                    guard try test(element) else { continue }
                    mapped.append(try scope.evaluate(transform))
                } else {
                    scope.bindings[variable] = element
                    mapped.append(try scope.evaluate(body))
                }
            }
            return .list(mapped)
        }
    }
}
