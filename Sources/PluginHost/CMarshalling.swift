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

/// Runs `body` with a molt_config holding `config` (sorted by key); valid only during `body`, as the
/// ABI says.
func withCConfig<R>(_ config: [String: String], componentName: String, _ body: (UnsafePointer<molt_config>) throws -> R) rethrows -> R {
    let arena = CArena()
    let (entries, count) = arena.keyValues(config)
    var raw = molt_config(struct_size: UInt32(MemoryLayout<molt_config>.size), entry_count: count, entries: entries,
                          component_name: arena.string(componentName))
    return try withExtendedLifetime(arena) { try body(&raw) }
}

/// A string the plugin handed us, copied (NULL → nil; invalid UTF-8 repaired).
func copiedString(_ pointer: UnsafePointer<CChar>?) -> String? {
    pointer.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: strlen($0)), as: UTF8.self) }
}
