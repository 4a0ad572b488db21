/// The host's limits on declared operations' values (README, "Limits"). Arguments over them are refused
/// before the plugin is called; results over them fail the call (and are freed).
public enum OperationLimits {
    /// Bytes of one string argument (UTF-8, without the NUL the host adds).
    public static let maxStringArgumentBytes = 64 << 10
    /// Bytes of one bytes argument.
    public static let maxBytesArgumentBytes = 1 << 20
    /// Bytes of one string or bytes result.
    public static let maxResultBytes = 4 << 20
}

/// Why a call of a declared operation failed.
public enum OperationCallError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The call does not match the declaration (unknown operation; missing, extra, wrongly typed or
    /// oversize argument): the caller must change it. Nothing reached the plugin.
    case invalidRequest(String)
    /// The plugin's failure (its status and message), or results the host refuses (a NULL string,
    /// a non-finite double, invalid UTF-8, oversize), or the deadline passing on a blocking operation.
    case plugin(PluginError)

    public var description: String {
        switch self {
        case .invalidRequest(let message): message
        case .plugin(let error): error.description
        }
    }
}

extension OperationDeclaration {
    /// `arguments` in the order of the parameters, each checked against its declaration: every parameter
    /// given, no other name, the declared type (an int64 is taken for a double when the double holds it
    /// exactly), strings without NUL, finite doubles, sizes within `OperationLimits`.
    func orderedArguments(_ arguments: [String: OperationValue]) throws(OperationCallError) -> [OperationValue] {
        func refuse(_ message: String) -> OperationCallError { .invalidRequest("operation \(name): \(message)") }
        if arguments.count > parameters.count || arguments.keys.contains(where: { key in !parameters.contains { $0.name == key } }) {
            let unknown = arguments.keys.filter { key in !parameters.contains { $0.name == key } }.sorted()
            let declared = parameters.isEmpty ? "it takes none" : "parameters: " + parameters.map { "\($0.name): \($0.type.rawValue)" }.joined(separator: ", ")
            throw refuse("unknown argument\(unknown.count == 1 ? "" : "s") \(unknown.map { "'\($0)'" }.joined(separator: ", ")) (\(declared))")
        }
        var ordered: [OperationValue] = []
        ordered.reserveCapacity(parameters.count)
        for parameter in parameters {
            guard let value = arguments[parameter.name] else {
                throw refuse("missing argument '\(parameter.name)' (\(parameter.type.rawValue))")
            }
            switch (parameter.type, value) {
            case (.int64, .int64), (.bool, .bool):
                ordered.append(value)
            case (.double, .double(let number)):
                guard number.isFinite else { throw refuse("argument '\(parameter.name)' must be a finite double, not \(number)") }
                ordered.append(value)
            case (.double, .int64(let integer)):
                guard let exact = Double(exactly: integer) else {
                    throw refuse("argument '\(parameter.name)' (double) cannot hold the integer \(integer) exactly")
                }
                ordered.append(.double(exact))
            case (.string, .string(let text)):
                let length = text.utf8.count
                guard length <= OperationLimits.maxStringArgumentBytes else {
                    throw refuse("argument '\(parameter.name)' is \(length) bytes (a string argument is limited to \(OperationLimits.maxStringArgumentBytes))")
                }
                guard !text.utf8.contains(0) else { throw refuse("argument '\(parameter.name)' contains a NUL character") }
                ordered.append(value)
            case (.bytes, .bytes(let bytes)):
                guard bytes.count <= OperationLimits.maxBytesArgumentBytes else {
                    throw refuse("argument '\(parameter.name)' is \(bytes.count) bytes (a bytes argument is limited to \(OperationLimits.maxBytesArgumentBytes))")
                }
                ordered.append(value)
            default:
                throw refuse("argument '\(parameter.name)' must be \(parameter.type.rawValue), not \(value.type.rawValue)")
            }
        }
        return ordered
    }
}
