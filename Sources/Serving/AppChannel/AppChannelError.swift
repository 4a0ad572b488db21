/// Why a call to the app failed. Its description names the app's address, e.g.
/// `app channel 127.0.0.1:3000: no answer within 60000 ms`.
public struct AppChannelError: Error, Sendable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// No connection could be made within the connect timeout (the app is down, or not listening yet).
        case connectFailed
        /// The whole exchange (connection wait, request, response) took longer than the request timeout.
        case timedOut
        /// The connection closed before any of the answer arrived (for a reused keep-alive connection, the
        /// request is sent once more on a fresh one).
        case closedBeforeAnswer
        /// The connection closed or failed in the middle of the answer.
        case connectionFailed
        /// The answer's body is longer than `AppChannelLimits.maxResponseBodyBytes`.
        case answerTooLarge
        /// `AppChannelLimits.maxInFlightRequests` requests are already in flight or waiting.
        case overloaded
        /// The channel was closed (molt is shutting down).
        case closed
        /// The calling task was cancelled.
        case cancelled
    }

    public let reason: Reason
    /// host:port of the app.
    public let address: String
    public let detail: String

    public init(_ reason: Reason, address: String, _ detail: String) {
        self.reason = reason
        self.address = address
        self.detail = detail
    }

    public var description: String { "app channel \(address): \(detail)" }
}
