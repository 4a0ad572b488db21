#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Engine
import PluginHost

/// Dapr's output bindings API mapped onto declared operations (issue 18), shared by gRPC `InvokeBinding` and
/// HTTP `POST /v1.0/bindings/{name}`:
///
/// - the binding name is a component that declares operations (`Engine.operationsComponent(named:)`), the
///   request's `operation` one of them;
/// - `data` is a JSON object of named arguments: int64 from a JSON integer, double from any number, bool,
///   string, bytes from a base64 string. An operation whose only parameter is bytes takes the raw payload;
/// - the answer's data is a JSON object of the named results (bytes as base64), keys sorted.
///
/// Every refusal names what is wrong and what exists: an unknown operation lists the component's operations,
/// a missing, unknown or mistyped argument names it beside the signature.
public enum BindingCalls {
    /// Dapr's error code for every output binding failure.
    public static let errorCode = "ERR_INVOKE_OUTPUT_BINDING"

    /// The component and declaration `operation` of binding `name` means.
    public static func resolve(_ engine: Engine, name: String, operation: String) throws(APIFailure)
        -> (key: ComponentKey, declaration: OperationDeclaration) {
        guard !name.isEmpty else { throw failure("binding name is empty") }
        let component: (key: ComponentKey, operations: [OperationDeclaration])
        do {
            component = try engine.operationsComponent(named: name)
        } catch {
            throw failure(error.description)
        }
        guard !operation.isEmpty else {
            throw failure("operation is empty; binding \(name) has: \(listing(component.operations))")
        }
        guard let declaration = component.operations.first(where: { $0.name == operation }) else {
            throw failure("binding \(name) has no operation '\(operation)'; it has: \(listing(component.operations))")
        }
        return (component.key, declaration)
    }

    /// The arguments `data` gives `declaration` (see the type's comment for the mapping).
    public static func arguments(_ data: [UInt8], for declaration: OperationDeclaration) throws(APIFailure) -> [String: OperationValue] {
        if declaration.parameters.count == 1, let only = declaration.parameters.first, only.type == .bytes {
            return [only.name: .bytes(data)]
        }
        if declaration.parameters.isEmpty && data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return [:]
        }
        guard let parsed = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(data)), case .object(let object) = parsed else {
            throw failure("data of operation \(declaration.signature) must be a JSON object of its arguments")
        }
        var arguments: [String: OperationValue] = [:]
        for field in declaration.parameters {
            guard let value = object[field.name] else {
                throw failure("missing argument '\(field.name)' of operation \(declaration.signature)")
            }
            arguments[field.name] = try convert(value, to: field, of: declaration)
        }
        if let extra = object.keys.sorted().first(where: { name in !declaration.parameters.contains { $0.name == name } }) {
            throw failure("unknown argument '\(extra)' of operation \(declaration.signature)")
        }
        return arguments
    }

    /// The answer's data: a JSON object of `results`.
    public static func data(_ results: [String: OperationValue]) -> [UInt8] {
        var object: [String: JSONValue] = [:]
        for (name, value) in results {
            switch value {
            case .int64(let number): object[name] = .integer(number)
            case .double(let number): object[name] = .number(number)
            case .bool(let flag): object[name] = .bool(flag)
            case .string(let text): object[name] = .string(text)
            case .bytes(let bytes): object[name] = .string(Data(bytes).base64EncodedString())
            }
        }
        return JSONValue.object(object).storedBytes
    }

    public static func failure(_ message: String) -> APIFailure {
        APIFailure(kind: .invalidArgument, message: message, daprErrorCode: errorCode)
    }

    private static func listing(_ operations: [OperationDeclaration]) -> String {
        operations.map(\.signature).joined(separator: "; ")
    }

    private static func convert(_ value: JSONValue, to field: OperationField, of declaration: OperationDeclaration) throws(APIFailure) -> OperationValue {
        func wrong(_ wanted: String) -> APIFailure {
            failure("argument '\(field.name)' of operation \(declaration.signature) must be \(wanted), got \(describe(value))")
        }
        switch (field.type, value) {
        case (.int64, .integer(let number)): return .int64(number)
        case (.int64, .number(let number)):
            throw number.rounded() == number ? wrong("an integer within int64's range") : wrong("an integer")
        case (.double, .integer(let number)): return .double(Double(number))
        case (.double, .number(let number)): return .double(number)
        case (.bool, .bool(let flag)): return .bool(flag)
        case (.string, .string(let text)): return .string(text)
        case (.bytes, .string(let text)):
            guard let bytes = Data(base64Encoded: text) else { throw wrong("base64") }
            return .bytes(Array(bytes))
        case (.int64, _): throw wrong("an integer")
        case (.double, _): throw wrong("a number")
        case (.bool, _): throw wrong("true or false")
        case (.string, _): throw wrong("a string")
        case (.bytes, _): throw wrong("a base64 string")
        }
    }

    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): "\(flag)"
        case .integer(let number): "\(number)"
        case .number(let number): "\(number)"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
