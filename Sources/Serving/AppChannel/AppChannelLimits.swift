import NIOCore

/// The bounds of an `AppChannel`: how many connections it keeps, how long it waits, how much it holds.
public struct AppChannelLimits: Sendable {
    /// Connections open to the app at once (each carries one request at a time, then is kept alive for the next).
    public var maxConnections = 4
    /// Requests in flight or waiting for a connection; one more fails at once (`.overloaded`) rather than queue
    /// without bound behind a slow app.
    public var maxInFlightRequests = 256
    /// How long a connection attempt may take.
    public var connectTimeout: TimeAmount = .seconds(5)
    /// How long one request may take from being sent to the end of its answer (waiting for a free connection
    /// and connecting are not included: they have their own bounds).
    public var requestTimeout: TimeAmount = .seconds(60)
    /// The longest answer body read; a longer answer fails (`.answerTooLarge`) and its connection is closed.
    public var maxResponseBodyBytes = 4 << 20

    public init() {}
}
