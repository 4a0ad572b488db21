import Glibc
import PluginABI

/// Reads a plugin's declared operations (`molt_plugin_operations`, ABI 1.2) at load, checks each against
/// molt_plugin.h's rules and the library (its symbol exported), and prepares its call. The first broken
/// rule refuses the plugin, naming the operation and the field.
enum OperationReader {
    /// Operations one plugin may declare (the header sets no limit; this keeps a broken count from
    /// reading far past the array).
    static let maxOperations = 1024

    /// The declarations in the plugin's order, each with its prepared call. `symbol` resolves an
    /// exported name (dlsym on the plugin's handle).
    static func read(_ function: molt_plugin_operations_fn, path: String,
                     symbol: (String) -> UnsafeMutableRawPointer?) throws(LoadError) -> [PreparedOperation] {
        var count: UInt32 = 0
        let array = function(&count)
        guard count > 0 else { return [] }
        guard let array else {
            throw .invalidInfo(path: path, reason: "\(MOLT_SYMBOL_PLUGIN_OPERATIONS) returned NULL with count \(count)")
        }
        guard count <= maxOperations else {
            throw .invalidInfo(path: path, reason: "declares \(count) operations (limit \(maxOperations))")
        }
        var prepared: [PreparedOperation] = []
        var names = Set<String>()
        for index in 0..<Int(count) {
            let declaration = try declaration(array[index], index: index, path: path)
            guard names.insert(declaration.name).inserted else {
                throw .invalidOperation(path: path, operation: declaration.name, field: nil, reason: "declared twice (operation names must be unique)")
            }
            guard let function = symbol(declaration.symbol) else {
                throw .missingSymbol(path: path, symbol: declaration.symbol, why: "the function of declared operation '\(declaration.name)'")
            }
            guard let call = PreparedOperation(declaration, function: function) else {
                throw .invalidOperation(path: path, operation: declaration.name, field: nil, reason: "libffi cannot prepare a call interface for it")
            }
            prepared.append(call)
        }
        return prepared
    }

    /// One `molt_operation` copied and checked (everything but uniqueness across operations and the symbol).
    private static func declaration(_ raw: molt_operation, index: Int, path: String) throws(LoadError) -> OperationDeclaration {
        guard let namePointer = raw.name, let name = String(validatingCString: namePointer) else {
            throw .invalidOperation(path: path, operation: "#\(index)", field: nil, reason: "name is NULL or not UTF-8")
        }
        func refuse(_ reason: String, field: String? = nil) -> LoadError {
            .invalidOperation(path: path, operation: name, field: field, reason: reason)
        }
        guard isValidOperationName(name) else { throw refuse("name must match [a-z][a-z0-9_-]{0,63}") }
        guard let symbolPointer = raw.symbol, let symbol = String(validatingCString: symbolPointer), !symbol.isEmpty else {
            throw refuse("symbol is NULL, empty or not UTF-8")
        }
        let knownFlags = UInt32(MOLT_OPERATION_BLOCKING) | UInt32(MOLT_OPERATION_VALUES)
        guard raw.flags & ~knownFlags == 0 else {
            throw refuse("flags 0x\(String(raw.flags, radix: 16)) set bits molt_plugin.h does not define (known: MOLT_OPERATION_BLOCKING 0x1, MOLT_OPERATION_VALUES 0x2)")
        }
        var seen = Set<String>()
        func fields(_ pointer: UnsafePointer<molt_operation_field>?, _ count: UInt32, _ what: String) throws(LoadError) -> [OperationField] {
            guard count <= UInt32(MOLT_OPERATION_MAX_FIELDS) else {
                throw refuse("declares \(count) \(what)s (limit MOLT_OPERATION_MAX_FIELDS, \(MOLT_OPERATION_MAX_FIELDS))")
            }
            guard count > 0 else { return [] }
            guard let pointer else { throw refuse("\(what)s is NULL with \(what)_count \(count)") }
            var result: [OperationField] = []
            for position in 0..<Int(count) {
                let raw = pointer[position]
                guard let fieldPointer = raw.name, let fieldName = String(validatingCString: fieldPointer) else {
                    throw refuse("name is NULL or not UTF-8", field: "\(what) #\(position)")
                }
                guard isValidFieldName(fieldName) else { throw refuse("name must match [a-z][A-Za-z0-9_]{0,63}", field: fieldName) }
                guard seen.insert(fieldName).inserted else {
                    throw refuse("declared twice (names are unique among an operation's parameters and results)", field: fieldName)
                }
                guard let type = OperationType(abi: raw.type) else {
                    throw refuse("unknown type \(raw.type) (MOLT_TYPE_INT64 1, DOUBLE 2, BOOL 3, STRING 4, BYTES 5)", field: fieldName)
                }
                result.append(OperationField(name: fieldName, type: type, description: raw.description.flatMap { String(validatingCString: $0) } ?? ""))
            }
            return result
        }
        let parameters = try fields(raw.parameters, raw.parameter_count, "parameter")
        let results = try fields(raw.results, raw.result_count, "result")
        return OperationDeclaration(
            name: name, description: raw.description.flatMap { String(validatingCString: $0) } ?? "", symbol: symbol,
            blocking: raw.flags & UInt32(MOLT_OPERATION_BLOCKING) != 0, valuesForm: raw.flags & UInt32(MOLT_OPERATION_VALUES) != 0,
            parameters: parameters, results: results)
    }
}

/// `[a-z][a-z0-9_-]{0,63}`: what apps call.
public func isValidOperationName(_ name: String) -> Bool {
    matches(name) { byte, first in
        (byte >= 0x61 && byte <= 0x7A) || (!first && ((byte >= 0x30 && byte <= 0x39) || byte == 0x5F || byte == 0x2D))
    }
}

/// `[a-z][A-Za-z0-9_]{0,63}`: a parameter or result (a JSON key apps write).
public func isValidFieldName(_ name: String) -> Bool {
    matches(name) { byte, first in
        (byte >= 0x61 && byte <= 0x7A) || (!first && ((byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x5F))
    }
}

private func matches(_ name: String, _ allowed: (UInt8, Bool) -> Bool) -> Bool {
    let bytes = Array(name.utf8)
    return (1...64).contains(bytes.count) && bytes.enumerated().allSatisfy { allowed($0.element, $0.offset == 0) }
}

extension OperationType {
    /// The type of a `MOLT_TYPE_*` code; nil for any other value.
    init?(abi: molt_type) {
        switch abi {
        case MOLT_TYPE_INT64: self = .int64
        case MOLT_TYPE_DOUBLE: self = .double
        case MOLT_TYPE_BOOL: self = .bool
        case MOLT_TYPE_STRING: self = .string
        case MOLT_TYPE_BYTES: self = .bytes
        default: return nil
        }
    }

    var abi: molt_type {
        switch self {
        case .int64: MOLT_TYPE_INT64
        case .double: MOLT_TYPE_DOUBLE
        case .bool: MOLT_TYPE_BOOL
        case .string: MOLT_TYPE_STRING
        case .bytes: MOLT_TYPE_BYTES
        }
    }

    /// C arguments (and 8-byte slots) one value takes: bytes are a pointer and a length.
    var cArity: Int { self == .bytes ? 2 : 1 }
}
