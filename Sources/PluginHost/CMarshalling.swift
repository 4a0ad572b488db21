import Glibc
import PluginABI

/// Capacity of the message buffers the host hands to plugins (the ABI asks for >= 256).
let messageCapacity = 1024

/// Runs `body` with an empty host-owned message buffer and returns its result with the text the
/// plugin wrote (invalid UTF-8 is repaired, never trusted).
func withMessageBuffer<R>(_ body: (UnsafeMutablePointer<molt_message>) throws -> R) rethrows -> (R, String) {
    try withUnsafeTemporaryAllocation(of: CChar.self, capacity: messageCapacity) { text in
        text[0] = 0
        text[messageCapacity - 1] = 0
        var message = molt_message(text: text.baseAddress, capacity: UInt32(messageCapacity))
        let result = try body(&message)
        text[messageCapacity - 1] = 0  // a plugin that ignored capacity still cannot make us over-read
        return (result, String(decoding: UnsafeRawBufferPointer(start: text.baseAddress, count: strlen(text.baseAddress!)), as: UTF8.self))
    }
}

/// Heap copies of key/value pairs in the ABI's shape, sorted by key; freed on deinit.
/// Used for configs (borrowed for one call) and request metadata (kept until completion).
final class CKeyValues {
    let count: UInt32
    let entries: UnsafeMutablePointer<molt_kv>

    init(_ pairs: [String: String]) {
        let sorted = pairs.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        count = UInt32(sorted.count)
        entries = .allocate(capacity: max(sorted.count, 1))
        for (index, pair) in sorted.enumerated() {
            entries[index] = molt_kv(key: UnsafePointer(strdup(pair.key)), value: UnsafePointer(strdup(pair.value)))
        }
    }

    deinit {
        for index in 0..<Int(count) {
            free(UnsafeMutablePointer(mutating: entries[index].key))
            free(UnsafeMutablePointer(mutating: entries[index].value))
        }
        entries.deallocate()
    }
}

/// Runs `body` with a molt_config holding `config`; valid only during `body`, as the ABI says.
func withCConfig<R>(_ config: [String: String], componentName: String, _ body: (UnsafePointer<molt_config>) throws -> R) rethrows -> R {
    let pairs = CKeyValues(config)
    return try withExtendedLifetime(pairs) {
        try componentName.withCString { name in
            var raw = molt_config(struct_size: UInt32(MemoryLayout<molt_config>.size), entry_count: pairs.count,
                                  entries: pairs.entries, component_name: name)
            return try body(&raw)
        }
    }
}

/// A string the plugin handed us, copied (NULL → nil; invalid UTF-8 repaired).
func copiedString(_ pointer: UnsafePointer<CChar>?) -> String? {
    pointer.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: strlen($0)), as: UTF8.self) }
}
