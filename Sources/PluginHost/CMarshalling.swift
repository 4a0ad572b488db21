import Glibc
import PluginABI

/// The limits of the host's side of the plugin ABI.
public enum PluginHostLimits {
    /// Capacity of the message buffers the host hands to plugins (errors of init, readiness,
    /// apply_config, export and import; messages of lock and state calls are plugin-owned and not
    /// cut). The ABI leaves it to the host (`molt_message.capacity`, at least 256), so raising it
    /// changes no contract. 68 KiB: a message quoting a whole metadata value at the engine's limit
    /// (`ComponentLimits.maxMetadataValueBytes`, 64 KiB) with 4 KiB of explanation around it is not
    /// cut, so it still names the key. Longer messages are cut at capacity - 1 bytes.
    public static let messageCapacity = 68 << 10
}

/// Runs `body` with an empty host-owned message buffer and returns its result with the text the
/// plugin wrote (invalid UTF-8 is repaired, never trusted).
func withMessageBuffer<R>(_ body: (UnsafeMutablePointer<molt_message>) throws -> R) rethrows -> (R, String) {
    let messageCapacity = PluginHostLimits.messageCapacity
    return try withUnsafeTemporaryAllocation(of: CChar.self, capacity: messageCapacity) { text in
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
