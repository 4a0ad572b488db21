import Engine
import PluginHost

/// A failed app call, classified once so that gRPC and HTTP report it the way Dapr does.
public struct APIFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The request is malformed or the store refused its arguments (gRPC INVALID_ARGUMENT, HTTP 400).
        case invalidArgument
        /// No component of that kind and name (gRPC INVALID_ARGUMENT as Dapr, HTTP 400 ERR_*_STORE_NOT_FOUND).
        case storeNotFound
        /// No secret store of that name (gRPC INVALID_ARGUMENT, HTTP 401 ERR_SECRET_STORE_NOT_FOUND: Dapr's
        /// `pkg/api/errors` SecretStore.NotFound).
        case secretStoreNotFound
        /// No secret store at all (gRPC FAILED_PRECONDITION, HTTP 500 ERR_SECRET_STORES_NOT_CONFIGURED: Dapr's
        /// SecretStore.NotConfigured), or no configuration store at all (ERR_CONFIGURATION_STORE_NOT_CONFIGURED).
        case notConfigured
        /// The app's secret scopes deny this secret (gRPC PERMISSION_DENIED, HTTP 403 ERR_PERMISSION_DENIED:
        /// Dapr's SecretStore.PermissionDenied, `pkg/messages` ErrSecretPermissionDenied).
        case permissionDenied
        /// The etag does not match (gRPC ABORTED, HTTP 409).
        case etagMismatch
        /// The etag is malformed (gRPC INVALID_ARGUMENT, HTTP 400).
        case etagInvalid
        /// The backend cannot be reached (gRPC UNAVAILABLE, HTTP 500).
        case unavailable
        /// The backend did not answer in time (gRPC DEADLINE_EXCEEDED, HTTP 500).
        case timeout
        /// The call's deadline passed before the plugin completed it (gRPC DEADLINE_EXCEEDED, HTTP 504).
        case deadlineExceeded
        /// The store does not support this operation or option (gRPC UNIMPLEMENTED, HTTP 500).
        case unsupported
        /// Anything else the store reported (gRPC INTERNAL, HTTP 500).
        case `internal`
        /// The request is over one of molt's limits of a single item (a pub/sub message: gRPC RESOURCE_EXHAUSTED,
        /// HTTP 413).
        case tooLarge
    }

    public let kind: Kind
    public let message: String
    /// Dapr's HTTP error code for this failure (ERR_STATE_GET, ERR_STATE_STORE_NOT_FOUND, ...).
    public let daprErrorCode: String

    /// Dapr's HTTP status when it is not the kind's usual one (Dapr's pub/sub errors: `pkg/api/errors/pubsub.go`).
    public let httpStatusOverride: Int?

    public init(kind: Kind, message: String, daprErrorCode: String, httpStatus: Int? = nil) {
        self.kind = kind
        self.message = message
        self.daprErrorCode = daprErrorCode
        self.httpStatusOverride = httpStatus
    }

    public var description: String { message }

    /// A request the API layer rejects before calling a store.
    public static func badRequest(_ message: String) -> APIFailure {
        APIFailure(kind: .invalidArgument, message: message, daprErrorCode: "ERR_MALFORMED_REQUEST")
    }

    /// Dapr's error-code stem of both secret calls (GetSecret and GetBulkSecret answer ERR_SECRET_GET).
    public static let secretGetOperation = "SECRET_GET"

    /// Secret store `name` does not exist (Dapr's message: "failed finding secret store with key NAME").
    public static func secretStoreNotFound(_ name: String) -> APIFailure {
        APIFailure(kind: .secretStoreNotFound, message: "failed finding secret store with key \(name)", daprErrorCode: "ERR_SECRET_STORE_NOT_FOUND")
    }

    /// No secret store is configured at all.
    public static let secretStoresNotConfigured = APIFailure(kind: .notConfigured, message: "secret store is not configured",
                                                             daprErrorCode: "ERR_SECRET_STORES_NOT_CONFIGURED")

    /// The app's secret scopes deny secret `key` of `store` (Dapr's message).
    public static func secretPermissionDenied(store: String, key: String) -> APIFailure {
        APIFailure(kind: .permissionDenied, message: "access denied by policy to get \"\(key)\" from \"\(store)\"",
                   daprErrorCode: "ERR_PERMISSION_DENIED")
    }

    /// Dapr's error-code stem of GetConfiguration (and of the current items SubscribeConfiguration starts from).
    public static let configurationGetOperation = "CONFIGURATION_GET"

    /// No configuration store is configured at all (Dapr's `pkg/messages` ErrConfigurationStoresNotConfigured:
    /// gRPC FAILED_PRECONDITION, HTTP 500).
    public static let configurationStoresNotConfigured = APIFailure(kind: .notConfigured, message: "configuration stores not configured",
                                                                    daprErrorCode: "ERR_CONFIGURATION_STORE_NOT_CONFIGURED")

    /// A configuration store's get failed (Dapr's ErrConfigurationGet, "failed to get [a b] from Configuration store
    /// S: …": gRPC INTERNAL, HTTP 500 ERR_CONFIGURATION_GET, whatever the store's reason).
    public static func configurationGetFailed(keys: [String], store: String, _ reason: String) -> APIFailure {
        APIFailure(kind: .internal, message: "failed to get \(goList(keys)) from Configuration store \(store): \(reason)",
                   daprErrorCode: "ERR_CONFIGURATION_GET")
    }

    /// A configuration subscription could not start (Dapr's ErrConfigurationSubscribe: gRPC INVALID_ARGUMENT,
    /// ERR_CONFIGURATION_SUBSCRIBE).
    public static func configurationSubscribeFailed(keys: [String], store: String, _ reason: String) -> APIFailure {
        APIFailure(kind: .invalidArgument, message: "failed to subscribe \(goList(keys)) from Configuration store \(store): \(reason)",
                   daprErrorCode: "ERR_CONFIGURATION_SUBSCRIBE")
    }

    /// Dapr's answer to an unsubscribe naming no subscription (ErrConfigurationUnsubscribe with the reason its
    /// gRPC API gives).
    public static func configurationUnsubscribeMessage(id: String) -> String {
        "failed to unsubscribe to configuration request \(id): subscription does not exist"
    }

    // Pub/sub: Dapr's `pkg/api/errors/pubsub.go` (codes, gRPC codes and HTTP statuses as there).

    /// Dapr's error-code stem of a failed publish (ERR_PUBSUB_PUBLISH_MESSAGE).
    public static let pubsubPublishOperation = "PUBSUB_PUBLISH_MESSAGE"

    /// No pubsub of that name (PubSubNotFound: INVALID_ARGUMENT, HTTP 404).
    public static func pubsubNotFound(_ name: String) -> APIFailure {
        APIFailure(kind: .storeNotFound, message: "pubsub \(name) not found", daprErrorCode: "ERR_PUBSUB_NOT_FOUND", httpStatus: 404)
    }

    /// No pubsub at all (PubSubNotConfigured: FAILED_PRECONDITION, HTTP 400).
    public static let pubsubNotConfigured = APIFailure(kind: .notConfigured, message: "pubsub is not configured",
                                                       daprErrorCode: "ERR_PUBSUB_NOT_CONFIGURED", httpStatus: 400)

    /// The request names no pubsub (PubSubNameEmpty: INVALID_ARGUMENT, HTTP 404).
    public static let pubsubNameEmpty = APIFailure(kind: .invalidArgument, message: "pubsub name is empty",
                                                   daprErrorCode: "ERR_PUBSUB_EMPTY", httpStatus: 404)

    /// The request names no topic (PubSubTopicEmpty: INVALID_ARGUMENT, HTTP 404).
    public static func pubsubTopicEmpty(_ pubsub: String) -> APIFailure {
        APIFailure(kind: .invalidArgument, message: "topic is empty in pubsub \(pubsub)", daprErrorCode: "ERR_TOPIC_EMPTY", httpStatus: 404)
    }

    /// Request metadata Dapr cannot read, e.g. `rawPayload` not a boolean (PubSubMetadataDeserialize: INVALID_ARGUMENT, 400).
    public static func pubsubMetadata(_ problem: String) -> APIFailure {
        APIFailure(kind: .invalidArgument, message: "failed deserializing metadata. Error: \(problem)", daprErrorCode: "ERR_PUBSUB_REQUEST_METADATA")
    }

    /// A `application/cloudevents+json` body that is not a CloudEvent (PubSubCloudEventCreation: INVALID_ARGUMENT,
    /// HTTP 500).
    public static let pubsubCloudEventCreation = APIFailure(kind: .invalidArgument, message: "cannot create cloudevent",
                                                            daprErrorCode: "ERR_PUBSUB_CLOUD_EVENTS_SER", httpStatus: 500)

    /// A bulk publish body or entry Dapr refuses (PubSubUnMarshalEvents / ErrPubsubMarshal: INVALID_ARGUMENT, 400).
    public static func pubsubEvents(topic: String, pubsub: String, _ problem: String) -> APIFailure {
        APIFailure(kind: .invalidArgument, message: "error when unmarshaling the request for topic \(topic) pubsub \(pubsub): \(problem)",
                   daprErrorCode: "ERR_PUBSUB_EVENTS_SER")
    }

    /// The pubsub could not publish (PubSubPublishMessage: INTERNAL, HTTP 500).
    public static func pubsubPublishFailed(topic: String, pubsub: String, _ reason: String) -> APIFailure {
        APIFailure(kind: .internal, message: "error when publishing to topic \(topic) in pubsub \(pubsub): \(reason)",
                   daprErrorCode: "ERR_PUBSUB_PUBLISH_MESSAGE")
    }

    /// A message over `AppAPILimits.maxPubsubMessageBytes` (molt's limit: RESOURCE_EXHAUSTED, HTTP 413).
    public static func pubsubMessageTooLarge(topic: String, pubsub: String, size: Int) -> APIFailure {
        APIFailure(kind: .tooLarge, message: "error when publishing to topic \(topic) in pubsub \(pubsub): the message is \(size) bytes, "
                       + "over the limit of \(AppAPILimits.maxPubsubMessageBytes) bytes",
                   daprErrorCode: "ERR_PUBSUB_PUBLISH_MESSAGE")
    }

    /// A list of strings as Go's `%s` prints a `[]string`: `[a b]`.
    static func goList(_ values: [String]) -> String { "[" + values.joined(separator: " ") + "]" }

    /// Classifies an engine call failure. `operation` is Dapr's error-code stem (STATE_GET, STATE_SAVE,
    /// STATE_DELETE, STATE_BULK_GET, STATE_TRANSACTION, TRY_LOCK, UNLOCK, SECRET_GET, CONFIGURATION_GET).
    public init(_ error: CallError, operation: String) {
        switch error {
        case .unknownComponent(let key):
            switch key.kind {
            case .state:
                self.init(kind: .storeNotFound, message: "state store \(key.name) is not found", daprErrorCode: "ERR_STATE_STORE_NOT_FOUND")
            case .lock:
                self.init(kind: .storeNotFound, message: "lock store \(key.name) is not found", daprErrorCode: "ERR_LOCK_STORE_NOT_FOUND")
            case .binding:
                // Only when the binding was removed between its lookup and the call.
                self.init(kind: .storeNotFound, message: "binding \(key.name) is not found", daprErrorCode: "ERR_INVOKE_OUTPUT_BINDING")
            case .secretstore:
                self = .secretStoreNotFound(key.name)
            case .pubsub:
                self = .pubsubNotFound(key.name)
            case .configuration:
                // Dapr's ErrConfigurationStoreNotFound: gRPC INVALID_ARGUMENT, HTTP 400 (`pkg/api/http` http.go).
                self.init(kind: .storeNotFound, message: "configuration store \(key.name) not found", daprErrorCode: "ERR_CONFIGURATION_STORE_NOT_FOUND")
            }
        case .invalidRequest(let message):
            self = .badRequest(message)
        case .deadlineExceeded(let key, let pluginError):
            self.init(kind: .deadlineExceeded, message: "\(key.kind.rawValue) store \(key.name): \(pluginError.message)",
                      daprErrorCode: "ERR_\(operation)")
        case .plugin(let pluginError):
            let code = "ERR_\(operation)"
            switch pluginError.status {
            case .etagMismatch:
                self.init(kind: .etagMismatch, message: "possible etag mismatch. error from state store: \(pluginError)", daprErrorCode: code)
            case .etagInvalid:
                self.init(kind: .etagInvalid, message: "invalid etag value: \(pluginError)", daprErrorCode: code)
            case _ where operation == Self.configurationGetOperation:
                // Dapr answers every failure of a configuration store's get with ERR_CONFIGURATION_GET, gRPC
                // INTERNAL, HTTP 500 (`pkg/api/errors` Configuration.GetFailed); ConfigurationAPI adds the keys.
                self.init(kind: .internal, message: "\(pluginError)", daprErrorCode: code)
            case .invalidArgument where operation == Self.secretGetOperation, .notFound where operation == Self.secretGetOperation:
                // Dapr answers every failure of a secret store's get or bulk get (a missing secret, an answer
                // over molt's limits here) with ERR_SECRET_GET, HTTP 500, gRPC INTERNAL (`pkg/api/errors`
                // SecretStore.Get/BulkGet; Dapr's integration tests expect 500 ERR_SECRET_GET for a missing key).
                self.init(kind: .internal, message: "\(pluginError)", daprErrorCode: code)
            case .invalidArgument:
                self.init(kind: .invalidArgument, message: "\(pluginError)", daprErrorCode: code)
            case .unavailable:
                self.init(kind: .unavailable, message: "\(pluginError)", daprErrorCode: code)
            case .timeout:
                self.init(kind: .timeout, message: "\(pluginError)", daprErrorCode: code)
            case .deadlineExceeded:
                self.init(kind: .deadlineExceeded, message: "\(pluginError)", daprErrorCode: code)
            case .unsupported:
                self.init(kind: .unsupported, message: "\(pluginError)", daprErrorCode: code)
            case .internal, .notFound:
                self.init(kind: .internal, message: "\(pluginError)", daprErrorCode: code)
            }
        }
    }

    /// Dapr's HTTP status for this failure.
    public var httpStatus: Int {
        if let httpStatusOverride { return httpStatusOverride }
        switch kind {
        case .invalidArgument, .storeNotFound, .etagInvalid: return 400
        case .secretStoreNotFound: return 401
        case .permissionDenied: return 403
        case .notConfigured: return 500
        case .etagMismatch: return 409
        case .deadlineExceeded: return 504
        case .unavailable, .timeout, .unsupported, .internal: return 500
        case .tooLarge: return 413
        }
    }

    /// The metrics outcome label.
    public var outcome: String {
        switch kind {
        case .invalidArgument: return "invalid_argument"
        case .storeNotFound, .secretStoreNotFound: return "store_not_found"
        case .notConfigured: return "not_configured"
        case .permissionDenied: return "permission_denied"
        case .etagMismatch: return "etag_mismatch"
        case .etagInvalid: return "etag_invalid"
        case .unavailable: return "unavailable"
        case .timeout: return "timeout"
        case .deadlineExceeded: return "deadline_exceeded"
        case .unsupported: return "unsupported"
        case .internal: return "internal"
        case .tooLarge: return "too_large"
        }
    }
}
