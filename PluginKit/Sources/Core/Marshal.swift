// Marshalling helpers shared by the capability modules (package access: not part of the author API).
package import PluginABI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where fields of the growable ABI structs end, so a reader reads only fields that lie entirely
/// within the `struct_size` the other side wrote (the ABI's versioning rule).
package enum ABILayout {
    /// The offset just past `field` in `S`, as this side compiled it.
    package static func end<S, F>(of field: KeyPath<S, F>) -> Int {
        MemoryLayout<S>.offset(of: field)! + MemoryLayout<F>.size
    }

    private static let configComponentNameEnd = end(of: \molt_config.component_name)
    private static let hostServicesLogEnd = end(of: \molt_host_services.log)
    /// MOLT_HOST_SERVICES_SIZE_1_1: the I/O services end with timer_cancel.
    private static let hostServicesIOEnd = end(of: \molt_host_services.timer_cancel)

    package static func configHasComponentName(_ structSize: UInt32) -> Bool {
        Int(structSize) >= configComponentNameEnd
    }
    package static func hostServicesHasLog(_ structSize: UInt32) -> Bool { Int(structSize) >= hostServicesLogEnd }
    /// ABI 1.1's I/O services (loop_count ... timer_cancel) are all present.
    package static func hostServicesHasIO(_ structSize: UInt32) -> Bool { Int(structSize) >= hostServicesIOEnd }
}

/// A C string the host lent us, as a Swift string (nil for NULL).
package func swiftString(_ pointer: UnsafePointer<CChar>?) -> String? {
    pointer.map { String(cString: $0) }
}

/// Copies host-lent key/value pairs.
package func swiftDictionary(_ pairs: UnsafePointer<molt_kv>?, count: UInt32) -> [String: String] {
    guard let pairs, count > 0 else { return [:] }
    var result: [String: String] = [:]
    result.reserveCapacity(Int(count))
    for i in 0..<Int(count) {
        guard let key = pairs[i].key else { continue }
        result[String(cString: key)] = swiftString(pairs[i].value) ?? ""
    }
    return result
}

/// Copies host-lent bytes (NULL with length 0 is an empty value).
package func swiftBytes(_ bytes: molt_bytes) -> [UInt8] {
    guard let data = bytes.data, bytes.length > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: bytes.length))
}

/// Writes `text` into a host-owned molt_message, truncating to its capacity at a UTF-8 character
/// boundary and always NUL-terminating. Safe with NULL.
package func writeMessage(_ text: String, to message: UnsafeMutablePointer<molt_message>?) {
    guard let message, let buffer = message.pointee.text, message.pointee.capacity > 0 else { return }
    let room = Int(message.pointee.capacity) - 1
    var text = text
    text.withUTF8 { utf8 in
        var count = min(utf8.count, room)
        if count < utf8.count {
            // utf8[count] is the first byte cut off; if it continues a character, drop that character.
            while count > 0 && utf8[count] & 0xC0 == 0x80 { count -= 1 }
        }
        buffer.withMemoryRebound(to: UInt8.self, capacity: count + 1) { out in
            if count > 0 { out.update(from: utf8.baseAddress!, count: count) }
            out[count] = 0
        }
    }
}

/// Plugin-owned memory for one result: everything a result struct points to, kept alive until the
/// host's `done` returns (use it inside `withExtendedLifetime`), then freed at once.
package final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    package init() {}

    deinit {
        for block in blocks { free(block) }
    }

    private func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let block = malloc(max(bytes, 1))!
        blocks.append(block)
        return block
    }

    /// A NUL-terminated copy of `string`.
    package func string(_ string: String) -> UnsafePointer<CChar> {
        var string = string
        return string.withUTF8 { utf8 in
            let block = allocate(utf8.count + 1).bindMemory(to: CChar.self, capacity: utf8.count + 1)
            block.withMemoryRebound(to: UInt8.self, capacity: utf8.count + 1) { out in
                if utf8.count > 0 { out.update(from: utf8.baseAddress!, count: utf8.count) }
                out[utf8.count] = 0
            }
            return UnsafePointer(block)
        }
    }

    package func optionalString(_ string: String?) -> UnsafePointer<CChar>? { string.map { self.string($0) } }

    /// A copy of `bytes` as a molt_bytes.
    package func bytes(_ bytes: [UInt8]) -> molt_bytes {
        guard !bytes.isEmpty else { return molt_bytes(data: nil, length: 0) }
        let block = allocate(bytes.count).bindMemory(to: UInt8.self, capacity: bytes.count)
        bytes.withUnsafeBufferPointer { block.update(from: $0.baseAddress!, count: bytes.count) }
        return molt_bytes(data: UnsafePointer(block), length: bytes.count)
    }

    /// An uninitialized array of `count` values of `T` (a trivial C type).
    package func array<T>(of _: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        allocate(MemoryLayout<T>.stride * count).bindMemory(to: T.self, capacity: count)
    }

    /// Copies of `pairs` as a molt_kv array (NULL when empty), with its count.
    package func pairs(_ pairs: [String: String]) -> (UnsafePointer<molt_kv>?, UInt32) {
        guard !pairs.isEmpty else { return (nil, 0) }
        let array = self.array(of: molt_kv.self, count: pairs.count)
        for (i, (key, value)) in pairs.sorted(by: { $0.key < $1.key }).enumerated() {
            (array + i).initialize(to: molt_kv(key: string(key), value: string(value)))
        }
        return (UnsafePointer(array), UInt32(pairs.count))
    }
}
