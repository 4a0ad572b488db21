import PluginABI

/// Why a plugin call failed, as Swift code above the ABI sees it. The ABI's `molt_status` codes map
/// one to one; `deadlineExceeded` is the host's own: the caller stopped waiting before the plugin
/// completed the call.
public enum PluginStatus: String, Sendable, Equatable {
    case invalidArgument = "INVALID_ARGUMENT"
    case etagMismatch = "ETAG_MISMATCH"
    case etagInvalid = "ETAG_INVALID"
    case unavailable = "UNAVAILABLE"
    case timeout = "TIMEOUT"
    case unsupported = "UNSUPPORTED"
    /// ABI 1.3: the named item (a secret) does not exist.
    case notFound = "NOT_FOUND"
    case `internal` = "INTERNAL"
    case deadlineExceeded = "DEADLINE_EXCEEDED"

    /// The status of an ABI code; OK and unknown codes are `internal` (a failure must carry a reason).
    init(_ code: molt_status) {
        switch code {
        case MOLT_ERR_INVALID_ARGUMENT: self = .invalidArgument
        case MOLT_ERR_ETAG_MISMATCH: self = .etagMismatch
        case MOLT_ERR_ETAG_INVALID: self = .etagInvalid
        case MOLT_ERR_UNAVAILABLE: self = .unavailable
        case MOLT_ERR_TIMEOUT: self = .timeout
        case MOLT_ERR_UNSUPPORTED: self = .unsupported
        case MOLT_ERR_NOT_FOUND: self = .notFound
        default: self = .internal
        }
    }
}

/// A failure reported by a plugin: its status and its own message, verbatim.
public struct PluginError: Error, Equatable, CustomStringConvertible, Sendable {
    public let status: PluginStatus
    public let message: String

    public init(_ status: PluginStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    init(code: molt_status, message: String) {
        self.init(PluginStatus(code), message)
    }

    public var description: String { message.isEmpty ? "plugin error \(status.rawValue)" : message }
}
