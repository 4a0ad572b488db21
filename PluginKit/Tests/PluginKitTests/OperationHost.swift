import PluginABI
@testable import PluginKit
@testable import PluginKitOperations
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value as the tests write and read it.
enum TestValue: Equatable {
    case int64(Int64), double(Double), bool(Bool), string(String), bytes([UInt8])
}

/// One declaration read back through the C structs, as the host reads it.
struct SeenOperation: Equatable {
    struct Field: Equatable {
        var name: String, type: molt_type, description: String?
    }
    var name: String, description: String, symbol: String, flags: UInt32
    var parameters: [Field], results: [Field]
    var parametersIsNull: Bool, resultsIsNull: Bool
}

/// What a thunk answered: the status, the message, and the results copied out (then freed with free(),
/// as the host does).
struct Answer {
    var status: molt_status
    var message: String
    var results: [TestValue?]
}

/// The host's side of the values form, driven by the tests: reads declarations, creates instances of
/// the registered component, calls the exported thunks with molt_value arrays.
enum OperationHost {
    static func declarations() -> [SeenOperation] {
        var count: UInt32 = 99
        let array = _moltPluginOperations(&count)
        return read(array, count)
    }

    static func read(_ array: UnsafePointer<molt_operation>?, _ count: UInt32) -> [SeenOperation] {
        (0..<Int(count)).map { i in
            let o = array![i]
            return SeenOperation(
                name: String(cString: o.name), description: String(cString: o.description),
                symbol: String(cString: o.symbol), flags: o.flags,
                parameters: fields(o.parameters, o.parameter_count), results: fields(o.results, o.result_count),
                parametersIsNull: o.parameters == nil, resultsIsNull: o.results == nil)
        }
    }

    private static func fields(_ array: UnsafePointer<molt_operation_field>?, _ count: UInt32) -> [SeenOperation.Field] {
        (0..<Int(count)).map { i in
            SeenOperation.Field(name: String(cString: array![i].name), type: array![i].type,
                                description: array![i].description.map { String(cString: $0) })
        }
    }

    /// A new instance of the registered component (Probe) through molt_plugin_init.
    static func instance(offset: Int64 = 0) -> molt_instance {
        let key = strdup("offset")!, value = strdup(String(offset))!, name = strdup("probe")!
        defer { free(key); free(value); free(name) }
        var pair = molt_kv(key: key, value: value)
        var instance: molt_instance? = nil
        let status = withUnsafePointer(to: &pair) { entries in
            var config = molt_config(struct_size: UInt32(MemoryLayout<molt_config>.size), entry_count: 1,
                                     entries: entries, component_name: name)
            return _moltPluginInit(&config, nil, &instance, nil)
        }
        precondition(status == MOLT_OK && instance != nil)
        return instance!
    }

    /// The thunk a declaration names.
    static func thunk(_ operation: String) -> @convention(c) (
        molt_instance?, UnsafePointer<molt_value>?, UnsafeMutablePointer<molt_value>?, UnsafeMutablePointer<molt_message>?
    ) -> molt_status {
        let symbol = declarations().first { $0.name == operation }!.symbol
        return operationThunks[Int(symbol.dropFirst("molt_pluginkit_operation_".count))!]
    }

    /// Calls `operation` as the host would: parameters host-owned (freed here after the call), results
    /// typed and zeroed, then copied out and freed with free(). `results` overrides the result types.
    static func call(
        _ operation: String, on instance: molt_instance?, _ arguments: [TestValue], results: [molt_type]? = nil,
        capacity: UInt32 = 256
    ) -> Answer {
        let declared = declarations().first { $0.name == operation }!
        let types = results ?? declared.results.map(\.type)
        return call(thunk(operation), on: instance, arguments.map(value), resultTypes: types, capacity: capacity)
    }

    /// Calls `thunk` with raw values (freed after the call when they are strings or bytes).
    static func call(
        _ thunk: @convention(c) (molt_instance?, UnsafePointer<molt_value>?, UnsafeMutablePointer<molt_value>?,
                                 UnsafeMutablePointer<molt_message>?) -> molt_status,
        on instance: molt_instance?, _ parameters: [molt_value], resultTypes: [molt_type], capacity: UInt32 = 256
    ) -> Answer {
        defer { for p in parameters { freeHostOwned(p) } }
        let text = UnsafeMutablePointer<CChar>.allocate(capacity: Int(capacity))
        defer { text.deallocate() }
        text[0] = 0
        var message = molt_message(text: text, capacity: capacity)
        var out = resultTypes.map { type -> molt_value in
            var value = molt_value()
            value.type = type
            return value
        }
        let status = parameters.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { r in thunk(instance, p.baseAddress, r.baseAddress, &message) }
        }
        return Answer(status: status, message: String(cString: text), results: out.map(takeResult))
    }

    /// A host-owned parameter.
    static func value(_ value: TestValue) -> molt_value {
        var v = molt_value()
        switch value {
        case .int64(let x): v.type = MOLT_TYPE_INT64; v.as.int64 = x
        case .double(let x): v.type = MOLT_TYPE_DOUBLE; v.as.float64 = x
        case .bool(let x): v.type = MOLT_TYPE_BOOL; v.as.boolean = x
        case .string(let x): v.type = MOLT_TYPE_STRING; v.as.string = UnsafePointer(strdup(x))
        case .bytes(let x):
            v.type = MOLT_TYPE_BYTES
            let data = UnsafeMutablePointer<UInt8>.allocate(capacity: max(x.count, 1))
            data.initialize(from: x, count: x.count)
            v.as.bytes = molt_bytes(data: UnsafePointer(data), length: x.count)
        }
        return v
    }

    private static func freeHostOwned(_ value: molt_value) {
        switch value.type {
        case MOLT_TYPE_STRING: free(UnsafeMutableRawPointer(mutating: value.as.string))
        case MOLT_TYPE_BYTES: value.as.bytes.data.map { UnsafeMutablePointer(mutating: $0).deallocate() }
        default: break
        }
    }

    /// Copies a result out and frees what the plugin allocated, with free(), as the host does. A string
    /// or bytes result must be a malloc() block at least as large as its contents.
    private static func takeResult(_ value: molt_value) -> TestValue? {
        switch value.type {
        case MOLT_TYPE_INT64: return .int64(value.as.int64)
        case MOLT_TYPE_DOUBLE: return .double(value.as.float64)
        case MOLT_TYPE_BOOL: return .bool(value.as.boolean)
        case MOLT_TYPE_STRING:
            guard let pointer = value.as.string else { return nil }
            let string = String(cString: pointer)
            precondition(isMallocBlock(pointer, holding: string.utf8.count + 1))
            free(UnsafeMutableRawPointer(mutating: pointer))
            return .string(string)
        case MOLT_TYPE_BYTES:
            let bytes = value.as.bytes
            guard let data = bytes.data else { return bytes.length == 0 ? .bytes([]) : nil }
            precondition(isMallocBlock(data, holding: bytes.length))
            defer { free(UnsafeMutableRawPointer(mutating: data)) }
            return .bytes(Array(UnsafeBufferPointer(start: data, count: bytes.length)))
        default:
            return nil
        }
    }
}

/// Whether `pointer` is a malloc() block of at least `size` bytes (glibc's malloc_usable_size, looked up
/// because the Glibc module does not import <malloc.h>; elsewhere assumed).
private func isMallocBlock(_ pointer: UnsafeRawPointer, holding size: Int) -> Bool {
    typealias UsableSize = @convention(c) (UnsafeMutableRawPointer?) -> Int
    guard let symbol = dlsym(nil, "malloc_usable_size") else { return true }
    return unsafeBitCast(symbol, to: UsableSize.self)(UnsafeMutableRawPointer(mutating: pointer)) >= size
}
