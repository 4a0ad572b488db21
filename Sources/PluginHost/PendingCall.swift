import Glibc
import PluginABI
import Synchronization

/// Owns the C memory of one request (strings, byte buffers, structs, arrays) until the plugin calls
/// `done`: the ABI says a request stays valid until then. Everything is freed with the arena.
///
/// Each block is one malloc whose first 16 bytes link it to the block before (an intrusive list), so a
/// request costs one allocation per piece and none for bookkeeping; the payload after the link keeps
/// malloc's 16-byte alignment.
final class CArena {
    private static var linkSize: Int { 16 }
    /// The newest block; each holds the address of the one allocated before it.
    private var newest: UnsafeMutableRawPointer?

    deinit {
        var block = newest
        while let current = block {
            block = current.load(as: UnsafeMutableRawPointer?.self)
            free(current)
        }
    }

    private func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer {
        let block = malloc(Self.linkSize + byteCount)!
        block.storeBytes(of: newest, as: UnsafeMutableRawPointer?.self)
        newest = block
        return block + Self.linkSize
    }

    /// `text` NUL-terminated (a C reader stops at its first NUL, as with strdup).
    func string(_ text: String) -> UnsafePointer<CChar> {
        var text = text
        return text.withUTF8 { utf8 in
            let copy = allocate(utf8.count + 1)
            if let base = utf8.baseAddress { copy.copyMemory(from: base, byteCount: utf8.count) }
            copy.storeBytes(of: 0, toByteOffset: utf8.count, as: UInt8.self)
            return UnsafePointer(copy.assumingMemoryBound(to: CChar.self))
        }
    }

    func optionalString(_ text: String?) -> UnsafePointer<CChar>? { text.map { string($0) } }

    func bytes(_ value: [UInt8]) -> molt_bytes {
        guard !value.isEmpty else { return molt_bytes(data: nil, length: 0) }
        let copy = allocate(value.count)
        value.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return molt_bytes(data: UnsafePointer(copy.assumingMemoryBound(to: UInt8.self)), length: value.count)
    }

    func array<T>(_ values: [T]) -> UnsafePointer<T>? {
        guard !values.isEmpty else { return nil }
        precondition(MemoryLayout<T>.alignment <= Self.linkSize, "over-aligned C type")
        let typed = allocate(MemoryLayout<T>.stride * values.count).bindMemory(to: T.self, capacity: values.count)
        typed.initialize(from: values, count: values.count)
        return UnsafePointer(typed)
    }

    func value<T>(_ value: T) -> UnsafePointer<T> {
        precondition(MemoryLayout<T>.alignment <= Self.linkSize, "over-aligned C type")
        let typed = allocate(MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: 1)
        typed.initialize(to: value)
        return UnsafePointer(typed)
    }

    /// Metadata as a molt_kv array sorted by key, and its count.
    func keyValues(_ pairs: [String: String]) -> (UnsafePointer<molt_kv>?, UInt32) {
        guard !pairs.isEmpty else { return (nil, 0) }
        let sorted = pairs.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return (array(sorted.map { molt_kv(key: string($0.key), value: string($0.value)) }), UInt32(sorted.count))
    }
}

/// One operation in flight in a plugin: its arena, the continuation its completion resumes and, with a
/// deadline, its place in the call timer. The plugin holds one retained reference (the call context)
/// from the call until `done`; the arena (the request memory the plugin borrows) lives as long.
///
/// Exactly one of two things resumes the caller: the plugin's completion, or the deadline. A call whose
/// deadline passed first is *detached*: the caller gets `deadlineExceeded`, the plugin still holds the
/// call, and its late completion is reported to the deadline's owner instead.
final class PendingCall<Value: Sendable>: TimedCall, @unchecked Sendable {
    // @unchecked: `continuation`, `deadline` and `operation` are written before the plugin sees the call
    // and only read after; `state` decides, once, who resumes the continuation.
    typealias Outcome = Result<Value, PluginError>
    private static var running: UInt8 { 0 }
    private static var completed: UInt8 { 1 }
    private static var detached: UInt8 { 2 }

    let arena = CArena()
    private var continuation: UnsafeContinuation<Outcome, Never>?
    private var deadline: CallDeadline?
    private var operation: StaticString = ""
    private let state = Atomic<UInt8>(0)
    /// Set (sequentially consistent) once the call is in the timer; see `finish` and `run`.
    private let scheduled = Atomic<Bool>(false)

    /// Starts an operation: `start` builds the request in the arena and calls the plugin with the
    /// given context; the returned value is what the completion delivered, or `deadlineExceeded`.
    static func run(_ operation: StaticString, deadline: CallDeadline?,
                    _ start: (PendingCall, UnsafeMutableRawPointer) -> Void) async -> Outcome {
        let call = PendingCall()
        call.deadline = deadline
        call.operation = operation
        return await withUnsafeContinuation { continuation in
            call.continuation = continuation
            start(call, Unmanaged.passRetained(call).toOpaque())
            // A plugin that completed inline is done: no timer. Otherwise schedule, then look again: a
            // completion between the two loads `scheduled` after storing `state` and cancels, or this
            // load sees its state and cancels here (both sequentially consistent).
            guard let deadline, call.state.load(ordering: .sequentiallyConsistent) == running else { return }
            deadline.timer.schedule(call, at: deadline.instant)
            call.scheduled.store(true, ordering: .sequentiallyConsistent)
            if call.state.load(ordering: .sequentiallyConsistent) != running { deadline.timer.cancel(call) }
        }
    }

    /// Called from the plugin's `done`: resumes the caller and releases the plugin's reference (and
    /// with it the request memory, once the caller has moved on).
    static func finish(_ context: UnsafeMutableRawPointer?, _ outcome: Outcome) {
        let call = Unmanaged<PendingCall>.fromOpaque(context!).takeRetainedValue()
        let previous = call.state.exchange(completed, ordering: .sequentiallyConsistent)
        if previous == running {
            if call.scheduled.load(ordering: .sequentiallyConsistent), let deadline = call.deadline { deadline.timer.cancel(call) }
            call.continuation?.resume(returning: outcome)
        } else {
            call.deadline?.owner.detachedCallCompleted()
        }
    }

    /// The deadline passed (timer thread): the caller stops waiting unless the plugin completed first.
    /// The owner hears of the detach before the plugin can complete the detached call.
    override func expire() {
        guard let deadline else { return }
        deadline.owner.callDetached()
        guard state.compareExchange(expected: Self.running, desired: Self.detached, ordering: .sequentiallyConsistent).exchanged else {
            deadline.owner.detachedCallCompleted()  // completed meanwhile: nothing was detached
            return
        }
        continuation?.resume(returning: .failure(PluginError(
            .deadlineExceeded, "the call's deadline passed before the plugin completed \(operation); the plugin still holds it")))
    }
}

/// The plugin's failure from a result's status and message fields.
func failure(_ status: molt_status, _ message: UnsafePointer<CChar>?, operation: String) -> PluginError {
    PluginError(code: status == MOLT_OK ? MOLT_ERR_INTERNAL : status, message: copiedString(message) ?? "\(operation) failed")
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
