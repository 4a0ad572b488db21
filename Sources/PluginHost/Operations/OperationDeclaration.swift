/// A type of a declared operation's parameter or result (`MOLT_TYPE_*`). The raw value is how
/// operators, `molt plugin inspect` and error messages name it.
public enum OperationType: String, Sendable, CaseIterable, Codable {
    case int64, double, bool, string, bytes
}

/// One parameter or result of a declared operation (`molt_operation_field`), copied out of the plugin.
public struct OperationField: Sendable, Equatable, Codable {
    public var name: String
    public var type: OperationType
    public var description: String

    public init(name: String, type: OperationType, description: String = "") {
        self.name = name
        self.type = type
        self.description = description
    }
}

/// An operation a plugin declares (`molt_operation`, ABI 1.2), copied out of the plugin and checked
/// against its library at load.
public struct OperationDeclaration: Sendable, Equatable, Codable {
    public var name: String
    public var description: String
    /// The exported function the host calls.
    public var symbol: String
    /// MOLT_OPERATION_BLOCKING: called on a worker thread, never on an event loop.
    public var blocking: Bool
    /// MOLT_OPERATION_VALUES: the function takes `molt_value` arrays (PluginKit's form), not C arguments.
    public var valuesForm: Bool
    public var parameters: [OperationField]
    public var results: [OperationField]

    public init(name: String, description: String, symbol: String, blocking: Bool = false, valuesForm: Bool = false,
                parameters: [OperationField], results: [OperationField]) {
        self.name = name
        self.description = description
        self.symbol = symbol
        self.blocking = blocking
        self.valuesForm = valuesForm
        self.parameters = parameters
        self.results = results
    }

    /// `allow(key: string, cost: int64) -> (allowed: bool, remaining: int64)`: how inspect and error
    /// messages show it. Two declarations with equal signatures are compatible for apps.
    public var signature: String {
        let parameters = parameters.map { "\($0.name): \($0.type.rawValue)" }.joined(separator: ", ")
        let results = results.map { "\($0.name): \($0.type.rawValue)" }.joined(separator: ", ")
        return "\(name)(\(parameters)) -> (\(results))"
    }
}

/// A value of an operation's argument or result.
public enum OperationValue: Sendable, Equatable {
    case int64(Int64)
    case double(Double)
    case bool(Bool)
    case string(String)
    case bytes([UInt8])

    public var type: OperationType {
        switch self {
        case .int64: .int64
        case .double: .double
        case .bool: .bool
        case .string: .string
        case .bytes: .bytes
        }
    }
}
