/// A `molt_status` other than MOLT_OK.
public struct ErrorCode: RawRepresentable, Hashable, Sendable {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Bad configuration or request; the caller must change it.
    public static let invalidArgument = ErrorCode(rawValue: 1)
    /// The etag given does not match the stored one (Dapr: Aborted).
    public static let etagMismatch = ErrorCode(rawValue: 2)
    /// The etag given is malformed (Dapr: InvalidArgument).
    public static let etagInvalid = ErrorCode(rawValue: 3)
    /// The backend cannot be reached now; retrying may succeed.
    public static let unavailable = ErrorCode(rawValue: 4)
    /// The backend did not answer in time.
    public static let timeout = ErrorCode(rawValue: 5)
    /// The operation or option is not supported by this plugin.
    public static let unsupported = ErrorCode(rawValue: 6)
    /// Anything else.
    public static let internalError = ErrorCode(rawValue: 7)
}

/// A failure reported to the host: a status code and the message operators will see verbatim
/// (say what is wrong and with which key).
public struct PluginError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "status \(code.rawValue): \(message)" }

    public static func invalidArgument(_ message: String) -> PluginError { PluginError(.invalidArgument, message) }
    public static func unavailable(_ message: String) -> PluginError { PluginError(.unavailable, message) }
    public static func timeout(_ message: String) -> PluginError { PluginError(.timeout, message) }
    public static func unsupported(_ message: String) -> PluginError { PluginError(.unsupported, message) }
    public static func internalError(_ message: String) -> PluginError { PluginError(.internalError, message) }
}

extension PluginError {
    /// The status to hand to C: never MOLT_OK, and a message that is never empty.
    package var cStatus: Int32 { code.rawValue == 0 ? ErrorCode.internalError.rawValue : code.rawValue }
    package var cMessage: String { message.isEmpty ? "plugin error \(code.rawValue) without a message" : message }
}
