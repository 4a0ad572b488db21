// One declared operation, made from an ordinary Swift method with one line:
//
//     Operation("slugify", "Lowercases and dashes a text", TextTools.slugify, parameters: ["text"], results: ["slug"])
//
// The method's parameter and result types (OperationValue) give the declared types; the names are the
// ones given here, in order. PluginKit turns the list into molt_operation declarations in the values
// form and calls the method from one of its exported thunks (OperationTable.swift, Exports.swift).
public import PluginABI
public import PluginKit

/// The name (and optional one-line description) of a parameter or result. A string literal is a name.
public struct OperationField: Sendable, Equatable, ExpressibleByStringLiteral {
    /// `[a-z][A-Za-z0-9_]{0,63}`, unique among the operation's parameters and results: the key of the
    /// app's JSON arguments and results.
    public var name: String
    /// One line for operators, or nil.
    public var description: String?

    public init(_ name: String, _ description: String? = nil) {
        self.name = name
        self.description = description
    }

    public init(stringLiteral name: String) { self.init(name) }
}

/// An operation of component type `C`, declared from one of its methods. The method is called on the
/// instance the host passes, from many threads at once (see `blocking`); it may throw `PluginError` to
/// fail with that status and message (any other error fails with INTERNAL).
///
/// With Foundation imported too, spell it `PluginKitOperations.Operation` (Foundation has one).
public struct Operation<C: Component>: Sendable {
    /// `[a-z][a-z0-9_-]{0,63}`, unique in the plugin: what apps call.
    public let name: String
    /// One line for operators and `molt plugin inspect`.
    public let description: String
    /// MOLT_OPERATION_BLOCKING: the method may wait (disk, a synchronous client), so the host calls it on
    /// a worker thread. Without it the method runs where the app's call is served, usually on an event
    /// loop: it must return quickly.
    public let blocking: Bool
    public let parameters: [OperationField]
    /// The method's parameter types, in order.
    public let parameterTypes: [ValueType]
    public let results: [OperationField]
    /// The method's result types, in order (a tuple's elements).
    public let resultTypes: [ValueType]

    /// Reads the arguments from `values`, calls the method, writes the results into `results`. Called
    /// only once the counts match and the host's values have the declared types (OperationTable).
    @usableFromInline let invoke: @Sendable (C, UnsafePointer<molt_value>?, UnsafeMutablePointer<molt_value>?) throws(PluginError) -> Void

    @usableFromInline
    init(
        _ name: String, _ description: String, blocking: Bool,
        parameters: [OperationField], parameterTypes: [ValueType],
        results: [OperationField], resultTypes: [ValueType],
        invoke: @escaping @Sendable (C, UnsafePointer<molt_value>?, UnsafeMutablePointer<molt_value>?) throws(PluginError) -> Void
    ) {
        self.name = name
        self.description = description
        self.blocking = blocking
        self.parameters = parameters
        self.parameterTypes = parameterTypes
        self.results = results
        self.resultTypes = resultTypes
        self.invoke = invoke
    }
}

// One initializer per number of results (0 to 3: a tuple cannot conform to a protocol); any number
// of parameters (a parameter pack; the ABI allows up to MOLT_OPERATION_MAX_FIELDS). Inlinable, so that
// the call path is specialized for the method's types in the plugin's own module (unspecialized, every
// call would build pack metadata at run time).
extension Operation {
    /// An operation with one result: `func wordCount(text: String) -> Int64`.
    @inlinable
    public init<each P: OperationValue, R: OperationValue>(
        _ name: String, _ description: String, _ method: @escaping @Sendable (C) -> (repeat each P) throws -> R,
        parameters: [OperationField] = [], results: [OperationField], blocking: Bool = false
    ) {
        self.init(
            name, description, blocking: blocking, parameters: parameters, parameterTypes: valueTypes(repeat (each P).self),
            results: results, resultTypes: [R._valueType]
        ) { (component, values, out) throws(PluginError) in
            var arguments = Arguments(values, parameters)
            let r: R
            do { r = try method(component)(repeat arguments.next((each P).self)) } catch { throw PluginError(error, in: name) }
            try r._write(to: &out![0], field: results[0].name)
        }
    }

    /// An operation with two results: `func digest(data: [UInt8]) -> (Int64, Int64)`.
    @inlinable
    public init<each P: OperationValue, R0: OperationValue, R1: OperationValue>(
        _ name: String, _ description: String, _ method: @escaping @Sendable (C) -> (repeat each P) throws -> (R0, R1),
        parameters: [OperationField] = [], results: [OperationField], blocking: Bool = false
    ) {
        self.init(
            name, description, blocking: blocking, parameters: parameters, parameterTypes: valueTypes(repeat (each P).self),
            results: results, resultTypes: [R0._valueType, R1._valueType]
        ) { (component, values, out) throws(PluginError) in
            var arguments = Arguments(values, parameters)
            let r: (R0, R1)
            do { r = try method(component)(repeat arguments.next((each P).self)) } catch { throw PluginError(error, in: name) }
            try r.0._write(to: &out![0], field: results[0].name)
            try r.1._write(to: &out![1], field: results[1].name)
        }
    }

    /// An operation with three results.
    @inlinable
    public init<each P: OperationValue, R0: OperationValue, R1: OperationValue, R2: OperationValue>(
        _ name: String, _ description: String, _ method: @escaping @Sendable (C) -> (repeat each P) throws -> (R0, R1, R2),
        parameters: [OperationField] = [], results: [OperationField], blocking: Bool = false
    ) {
        self.init(
            name, description, blocking: blocking, parameters: parameters, parameterTypes: valueTypes(repeat (each P).self),
            results: results, resultTypes: [R0._valueType, R1._valueType, R2._valueType]
        ) { (component, values, out) throws(PluginError) in
            var arguments = Arguments(values, parameters)
            let r: (R0, R1, R2)
            do { r = try method(component)(repeat arguments.next((each P).self)) } catch { throw PluginError(error, in: name) }
            try r.0._write(to: &out![0], field: results[0].name)
            try r.1._write(to: &out![1], field: results[1].name)
            try r.2._write(to: &out![2], field: results[2].name)
        }
    }

    /// An operation without results (the app gets an empty JSON object): `func reset() throws`.
    @inlinable
    public init<each P: OperationValue>(
        _ name: String, _ description: String, _ method: @escaping @Sendable (C) -> (repeat each P) throws -> Void,
        parameters: [OperationField] = [], blocking: Bool = false
    ) {
        self.init(
            name, description, blocking: blocking, parameters: parameters, parameterTypes: valueTypes(repeat (each P).self),
            results: [], resultTypes: []
        ) { (component, values, _) throws(PluginError) in
            var arguments = Arguments(values, parameters)
            do { try method(component)(repeat arguments.next((each P).self)) } catch { throw PluginError(error, in: name) }
        }
    }
}

/// The declared types of a parameter pack, in order.
@usableFromInline
func valueTypes<each T: OperationValue>(_ types: repeat (each T).Type) -> [ValueType] {
    var result: [ValueType] = []
    for type in repeat each types { result.append(type._valueType) }
    return result
}

/// Copies the host's parameters out, in order. Counts and types were checked before the call.
@usableFromInline
struct Arguments {
    @usableFromInline let values: UnsafePointer<molt_value>?
    @usableFromInline let fields: [OperationField]
    @usableFromInline var index = 0

    @inlinable
    init(_ values: UnsafePointer<molt_value>?, _ fields: [OperationField]) {
        self.values = values
        self.fields = fields
    }

    @inlinable
    mutating func next<T: OperationValue>(_: T.Type) throws(PluginError) -> T {
        defer { index += 1 }
        return try T._read(values![index], field: fields[index].name)
    }
}

extension PluginError {
    /// What a method threw: a PluginError as it is, anything else INTERNAL naming the operation.
    @usableFromInline
    init(_ error: any Error, in operation: String) {
        self = (error as? PluginError) ?? .internalError("operation '\(operation)' failed: \(error)")
    }
}
