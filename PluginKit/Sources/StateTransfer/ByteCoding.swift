// Building blocks for state formats: little-endian fixed-width integers, raw bytes, and
// length-prefixed bytes and UTF-8 strings (a UInt32 length, then the bytes). No Foundation.
public import PluginKit

/// Appends values to a byte buffer, for `exportState(format:)`.
///
///     var out = ByteWriter()
///     out.append(UInt32(locks.count))
///     for (resource, owner) in locks { out.append(string: resource); out.append(string: owner) }
///     return out.bytes
public struct ByteWriter: Sendable {
    /// Everything appended so far.
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    /// Appends `value` as `MemoryLayout<T>.size` bytes, little-endian.
    public mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends `raw` as is (no length): for magic numbers and fixed-size fields.
    public mutating func append(raw: some Sequence<UInt8>) { bytes.append(contentsOf: raw) }

    /// Appends the length of `lengthPrefixed` as a UInt32, then its bytes. Traps past 4 GiB.
    public mutating func append(lengthPrefixed value: some Collection<UInt8>) {
        append(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    /// Appends the UTF-8 length of `string` as a UInt32, then its UTF-8 bytes.
    public mutating func append(string: String) { append(lengthPrefixed: string.utf8) }
}

/// Reads what a `ByteWriter` wrote, for `importState(_:format:)`. Every read is bounds-checked and
/// throws INVALID_ARGUMENT naming the field (`what`) that is truncated, so a corrupt or cut-off
/// state aborts the reload with a message instead of trapping.
///
///     var input = ByteReader(bytes)
///     let count = try input.read(UInt32.self, "lock count")
///     for _ in 0..<count { let resource = try input.readString("resource id"); ... }
///     try input.expectEnd()
public struct ByteReader: Sendable {
    private let bytes: [UInt8]
    /// Where the next read starts.
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The bytes not read yet.
    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    /// Reads a little-endian `T`.
    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws(PluginError) -> T {
        let size = MemoryLayout<T>.size
        try need(size, what)
        defer { offset += size }
        return T(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) })
    }

    /// Reads exactly `count` raw bytes (no length prefix).
    public mutating func readRaw(_ count: Int, _ what: String) throws(PluginError) -> [UInt8] {
        guard count >= 0 else { throw .invalidArgument("state format: \(what): negative length \(count)") }
        try need(count, what)
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Reads a UInt32 length, then that many bytes.
    public mutating func readLengthPrefixed(_ what: String) throws(PluginError) -> [UInt8] {
        let count = try read(UInt32.self, "\(what) (length)")
        return try readRaw(Int(count), what)
    }

    /// Reads a UInt32 length, then that many bytes of valid UTF-8.
    public mutating func readString(_ what: String) throws(PluginError) -> String {
        let start = offset
        guard let string = String(validating: try readLengthPrefixed(what), as: UTF8.self) else {
            throw .invalidArgument("state format: \(what) at offset \(start) is not valid UTF-8")
        }
        return string
    }

    /// Throws when bytes are left over (a format mismatch, usually).
    public func expectEnd() throws(PluginError) {
        guard isAtEnd else {
            throw .invalidArgument("state format: \(remaining) trailing bytes after offset \(offset) of \(bytes.count)")
        }
    }

    private func need(_ count: Int, _ what: String) throws(PluginError) {
        guard count <= remaining else {
            throw .invalidArgument(
                "truncated state: \(what) needs \(count) bytes at offset \(offset), only \(remaining) remain")
        }
    }
}
