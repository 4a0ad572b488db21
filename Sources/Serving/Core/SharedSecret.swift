/// A configured token (Dapr's app API token, molt's control token). Comparison takes the same time
/// whatever the position of the first differing byte, so the token cannot be guessed byte by byte.
public struct SharedSecret: Sendable {
    private let bytes: [UInt8]

    /// nil when no token is configured (an empty string counts as none, as in Dapr).
    public init?(_ token: String?) {
        guard let token, !token.isEmpty else { return nil }
        bytes = Array(token.utf8)
    }

    public func matches(_ presented: String?) -> Bool {
        guard let presented else { return false }
        let other = Array(presented.utf8)
        var difference = UInt8(truncatingIfNeeded: bytes.count ^ other.count)
        for index in 0..<bytes.count {
            difference |= bytes[index] ^ (index < other.count ? other[index] : 0)
        }
        return difference == 0
    }
}

/// Metadata / header names for tokens.
public enum TokenHeader {
    /// Dapr's app API token header (gRPC metadata and HTTP header).
    public static let app = "dapr-api-token"
    /// molt's control token (gRPC metadata).
    public static let control = "molt-control-token"
}
