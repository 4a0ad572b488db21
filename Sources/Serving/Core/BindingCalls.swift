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
        if let raw = rawPayloadParameter(of: declaration) {
            return [raw.name: .bytes(data)]
        }
        if declaration.parameters.isEmpty && data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return [:]
        }
        return try decode(TypedArguments.self, from: data, for: declaration).values
    }

    /// The parameter that takes the raw payload: the only one, when it is bytes.
    public static func rawPayloadParameter(of declaration: OperationDeclaration) -> OperationField? {
        guard declaration.parameters.count == 1, let only = declaration.parameters.first, only.type == .bytes else { return nil }
        return only
    }

    /// Decodes `Value` (`TypedArguments`, or a body holding them) from JSON `bytes` for `declaration`.
    package static func decode<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8], for declaration: OperationDeclaration) throws(APIFailure) -> Value {
        let decoder = JSONDecoder()
        decoder.userInfo[TypedArguments.declarationKey] = declaration
        do {
            return try decoder.decode(type, from: Data(bytes))
        } catch let refusal as ArgumentRefusal {
            throw refusal.failure
        } catch {
            throw failure("data of operation \(declaration.signature) must be a JSON object of its arguments")
        }
    }

    /// The answer's data: a JSON object of `results`, in the order `declaration` declares them.
    public static func data(_ results: [String: OperationValue], for declaration: OperationDeclaration) -> [UInt8] {
        // Values are scalars, strings and base64 text: encoding cannot fail.
        (try? resultEncoder.encode(EncodedResults(fields: declaration.results, values: results))).map(Array.init) ?? Array("{}".utf8)
    }

    /// Compact, keys in the order written (the declared order), slashes unescaped. Shared: never changed after.
    private static let resultEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()

    public static func failure(_ message: String) -> APIFailure {
        APIFailure(kind: .invalidArgument, message: message, daprErrorCode: errorCode)
    }

    private static func listing(_ operations: [OperationDeclaration]) -> String {
        operations.map(\.signature).joined(separator: "; ")
    }

    /// `value` as `field`'s type; a value of another type is refused naming the argument and what it got.
    package static func convert(_ value: JSONValue, to field: OperationField, of declaration: OperationDeclaration) throws(APIFailure) -> OperationValue {
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

/// An argument refused while decoding (carried through `JSONDecoder`, which rethrows it as it is).
package struct ArgumentRefusal: Error {
    let failure: APIFailure
}

/// The arguments of one operation (`userInfo[declarationKey]`), decoded straight into their declared types.
/// A value of the wrong type takes the slow path: decoded as any JSON to say what it was.
package struct TypedArguments: Decodable {
    package static let declarationKey = CodingUserInfoKey(rawValue: "molt.operation")!
    package let values: [String: OperationValue]

    private struct FieldKey: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    package init(from decoder: any Decoder) throws {
        guard let declaration = decoder.userInfo[Self.declarationKey] as? OperationDeclaration else {
            throw ArgumentRefusal(failure: BindingCalls.failure("no operation to decode arguments for"))
        }
        let container = try decoder.container(keyedBy: FieldKey.self)
        var values: [String: OperationValue] = [:]
        for field in declaration.parameters {
            let key = FieldKey(stringValue: field.name)
            guard container.contains(key) else {
                throw ArgumentRefusal(failure: BindingCalls.failure("missing argument '\(field.name)' of operation \(declaration.signature)"))
            }
            do {
                switch field.type {
                case .int64: values[field.name] = .int64(try container.decode(Int64.self, forKey: key))
                case .double: values[field.name] = .double(try container.decode(Double.self, forKey: key))
                case .bool: values[field.name] = .bool(try container.decode(Bool.self, forKey: key))
                case .string: values[field.name] = .string(try container.decode(String.self, forKey: key))
                case .bytes:
                    guard let bytes = Data(base64Encoded: try container.decode(String.self, forKey: key)) else {
                        throw ArgumentRefusal(failure: BindingCalls.failure(
                            "argument '\(field.name)' of operation \(declaration.signature) must be base64, got a string"))
                    }
                    values[field.name] = .bytes(Array(bytes))
                }
            } catch let refusal as ArgumentRefusal {
                throw refusal
            } catch {
                let given = try container.decode(JSONValue.self, forKey: key)
                do throws(APIFailure) {
                    values[field.name] = try BindingCalls.convert(given, to: field, of: declaration)
                } catch {
                    throw ArgumentRefusal(failure: error)
                }
            }
        }
        if let extra = container.allKeys.map(\.stringValue).sorted().first(where: { name in !declaration.parameters.contains { $0.name == name } }) {
            throw ArgumentRefusal(failure: BindingCalls.failure("unknown argument '\(extra)' of operation \(declaration.signature)"))
        }
        self.values = values
    }
}

/// An operation's results as a JSON object, keys in declared order (bytes as base64).
private struct EncodedResults: Encodable {
    let fields: [OperationField]
    let values: [String: OperationValue]

    private struct FieldKey: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: FieldKey.self)
        for field in fields {
            guard let value = values[field.name] else { continue }
            let key = FieldKey(stringValue: field.name)
            switch value {
            case .int64(let number): try container.encode(number, forKey: key)
            case .double(let number): try container.encode(number, forKey: key)
            case .bool(let flag): try container.encode(flag, forKey: key)
            case .string(let text): try container.encode(text, forKey: key)
            case .bytes(let bytes): try container.encode(Data(bytes).base64EncodedString(), forKey: key)
            }
        }
    }
}
