/// The app's answer to one request: status, headers in the order received, and the whole body.
public struct AppChannelResponse: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]
    /// The connection may carry the next request (HTTP/1.1 keep-alive, no `Connection: close`).
    let keepAlive: Bool

    /// The first header of that name (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}
