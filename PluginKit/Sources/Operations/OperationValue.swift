// The Swift types an operation's parameters and results may have, and how each crosses the values form
// (molt_value, molt_plugin.h "Declared operations"): a parameter is copied out of host-lent memory; a
// string or bytes result is malloc()ed here and freed by the host with free().
public import PluginABI
public import PluginKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The ABI's closed set of value types (`MOLT_TYPE_*`); the raw value is the C constant.
public enum ValueType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case int64 = 1, double = 2, bool = 3, string = 4, bytes = 5

    /// How the host and operators name it (`molt plugin inspect`).
    public var description: String {
        switch self {
        case .int64: "int64"
        case .double: "double"
        case .bool: "bool"
        case .string: "string"
        case .bytes: "bytes"
        }
    }

    /// The name of a `molt_type` the host passed, known or not ("type 9").
    static func describe(_ type: molt_type) -> String { ValueType(rawValue: type)?.description ?? "type \(type)" }
}

/// A Swift type an operation's parameter or result may have: `Int64` (int64), `Double` (double),
/// `Bool` (bool), `String` (string), `[UInt8]` (bytes). The set is the ABI's and closed: do not
/// conform other types (the underscored requirements are PluginKit's).
public protocol OperationValue: Sendable {
    static var _valueType: ValueType { get }
    /// A copy of a host-lent parameter whose `type` PluginKit checked already. Throws INVALID_ARGUMENT
    /// naming `field` when it holds what the Swift type cannot (a NULL string, invalid UTF-8).
    static func _read(_ value: molt_value, field: String) throws(PluginError) -> Self
    /// Stores the value into a result whose payload is zero (its `type` checked already); a string or
    /// bytes is malloc()ed, and the host frees it. Throws INTERNAL naming `field` when it cannot.
    func _write(to value: inout molt_value, field: String) throws(PluginError)
}

extension Int64: OperationValue {
    public static var _valueType: ValueType { .int64 }
    public static func _read(_ value: molt_value, field: String) throws(PluginError) -> Int64 { value.as.int64 }
    public func _write(to value: inout molt_value, field: String) throws(PluginError) { value.as.int64 = self }
}

extension Double: OperationValue {
    public static var _valueType: ValueType { .double }
    public static func _read(_ value: molt_value, field: String) throws(PluginError) -> Double { value.as.float64 }
    public func _write(to value: inout molt_value, field: String) throws(PluginError) {
        // The host refuses them too; saying so here names the result.
        guard isFinite else { throw .internalError("result '\(field)' is \(self); a double result must be finite") }
        value.as.float64 = self
    }
}

extension Bool: OperationValue {
    public static var _valueType: ValueType { .bool }
    public static func _read(_ value: molt_value, field: String) throws(PluginError) -> Bool {
        // Any non-zero byte is true: a C bool holding another bit pattern must not reach Swift's Bool.
        withUnsafeBytes(of: value) { $0[MemoryLayout<molt_value>.offset(of: \.as)!] != 0 }
    }
    public func _write(to value: inout molt_value, field: String) throws(PluginError) { value.as.boolean = self }
}

extension String: OperationValue {
    public static var _valueType: ValueType { .string }
    public static func _read(_ value: molt_value, field: String) throws(PluginError) -> String {
        guard let text = value.as.string else { throw .invalidArgument("parameter '\(field)' is NULL") }
        guard let string = String(validatingCString: text) else {
            throw .invalidArgument("parameter '\(field)' is not valid UTF-8")
        }
        return string
    }
    public func _write(to value: inout molt_value, field: String) throws(PluginError) {
        var copy = self
        let outcome = copy.withUTF8 { utf8 -> MallocOutcome in
            if utf8.contains(0) { return .refused }
            guard let block = mallocCopy(UnsafeRawBufferPointer(utf8), extra: 1) else { return .outOfMemory }
            block[utf8.count] = 0
            return .copied(block)
        }
        switch outcome {
        case .copied(let block):
            value.as.string = UnsafeRawPointer(block).assumingMemoryBound(to: CChar.self)
        case .refused:
            throw .internalError("result '\(field)' contains a NUL character, which a C string cannot hold")
        case .outOfMemory:
            throw .internalError("result '\(field)': out of memory for \(utf8.count + 1) bytes")
        }
    }
}

extension [UInt8]: OperationValue {
    public static var _valueType: ValueType { .bytes }
    public static func _read(_ value: molt_value, field: String) throws(PluginError) -> [UInt8] {
        let bytes = value.as.bytes
        guard bytes.length > 0 else { return [] }
        guard let data = bytes.data else {
            throw .invalidArgument("parameter '\(field)' is NULL with length \(bytes.length)")
        }
        return Array(UnsafeBufferPointer(start: data, count: bytes.length))
    }
    public func _write(to value: inout molt_value, field: String) throws(PluginError) {
        guard !isEmpty else { return }  // NULL with length 0: empty
        let block = withUnsafeBytes { mallocCopy($0, extra: 0) }
        guard let block else { throw .internalError("result '\(field)': out of memory for \(count) bytes") }
        value.as.bytes = molt_bytes(data: UnsafePointer(block), length: count)
    }
}

private enum MallocOutcome {
    case copied(UnsafeMutablePointer<UInt8>)
    case refused
    case outOfMemory
}

/// A malloc()ed copy of `bytes` with `extra` uninitialized bytes after them, or nil when memory is
/// short. The caller hands it to the host, which frees it with free().
private func mallocCopy(_ bytes: UnsafeRawBufferPointer, extra: Int) -> UnsafeMutablePointer<UInt8>? {
    guard let block = malloc(bytes.count + extra) else { return nil }
    if let base = bytes.baseAddress, bytes.count > 0 { block.copyMemory(from: base, byteCount: bytes.count) }
    return block.bindMemory(to: UInt8.self, capacity: bytes.count + extra)
}
