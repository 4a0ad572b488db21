import Glibc
import PluginABI

/// Owns the C memory of one request (strings, byte buffers, structs, arrays) until the plugin calls
/// `done`: the ABI says a request stays valid until then. Everything is freed with the arena.
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit { allocations.forEach { free($0) } }

    func string(_ text: String) -> UnsafePointer<CChar> {
        let copy = strdup(text)!
        allocations.append(copy)
        return UnsafePointer(copy)
    }

    func optionalString(_ text: String?) -> UnsafePointer<CChar>? { text.map { string($0) } }

    func bytes(_ value: [UInt8]) -> molt_bytes {
        guard !value.isEmpty else { return molt_bytes(data: nil, length: 0) }
        let copy = malloc(value.count)!
        allocations.append(copy)
        value.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return molt_bytes(data: UnsafePointer(copy.assumingMemoryBound(to: UInt8.self)), length: value.count)
    }

    func array<T>(_ values: [T]) -> UnsafePointer<T>? {
        guard !values.isEmpty else { return nil }
        let memory = malloc(MemoryLayout<T>.stride * values.count)!
        allocations.append(memory)
        let typed = memory.bindMemory(to: T.self, capacity: values.count)
        typed.initialize(from: values, count: values.count)
        return UnsafePointer(typed)
    }

    func value<T>(_ value: T) -> UnsafePointer<T> { array([value])! }

    /// Metadata as a molt_kv array sorted by key, and its count.
    func keyValues(_ pairs: [String: String]) -> (UnsafePointer<molt_kv>?, UInt32) {
        let sorted = pairs.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return (array(sorted.map { molt_kv(key: string($0.key), value: string($0.value)) }), UInt32(sorted.count))
    }
}

/// One operation in flight in a plugin: its arena and the continuation its completion resumes.
/// The plugin holds one retained reference (the call context) from the call until `done`.
final class PendingCall<Outcome: Sendable>: @unchecked Sendable {
    // @unchecked: `continuation` is set before the plugin sees the call and read once, in `done`,
    // which the ABI says is called exactly once; the arena is only touched before the call starts.
    let arena = CArena()
    private var continuation: UnsafeContinuation<Outcome, Never>?

    /// Starts an operation: `start` builds the request in the arena and calls the plugin with the
    /// given context; the returned value is what the completion delivered.
    static func run(_ start: (PendingCall, UnsafeMutableRawPointer) -> Void) async -> Outcome {
        let call = PendingCall()
        return await withUnsafeContinuation { continuation in
            call.continuation = continuation
            start(call, Unmanaged.passRetained(call).toOpaque())
        }
    }

    /// Called from the plugin's `done`: resumes the caller and releases the plugin's reference
    /// (and with it the request memory, once the caller has moved on).
    static func finish(_ context: UnsafeMutableRawPointer?, _ outcome: Outcome) {
        let call = Unmanaged<PendingCall>.fromOpaque(context!).takeRetainedValue()
        call.continuation?.resume(returning: outcome)
    }
}

/// The plugin's failure from a result's status and message fields.
func failure(_ status: molt_status, _ message: UnsafePointer<CChar>?, operation: String) -> PluginError {
    PluginError(status: status == MOLT_OK ? MOLT_ERR_INTERNAL : status, message: copiedString(message) ?? "\(operation) failed")
}

/// A plugin-owned molt_kv array copied into a dictionary.
func copiedKeyValues(_ pairs: UnsafePointer<molt_kv>?, _ count: UInt32) -> [String: String] {
    guard let pairs, count > 0 else { return [:] }
    var result: [String: String] = [:]
    for index in 0..<Int(count) {
        if let key = copiedString(pairs[index].key) { result[key] = copiedString(pairs[index].value) ?? "" }
    }
    return result
}

func copiedBytes(_ bytes: molt_bytes) -> [UInt8] {
    guard let data = bytes.data, bytes.length > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: bytes.length))
}
