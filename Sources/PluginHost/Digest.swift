import Crypto

/// The sha256 of `bytes` as 64 lowercase hex digits (plugin pins, snapshot checksums, file change detection).
public func sha256Hex(_ bytes: some Sequence<UInt8>) -> String {
    SHA256.hash(data: Array(bytes)).map { byte in byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }.joined()
}
