#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import PluginHost
import ServingCore

// The JSON bodies of Dapr's HTTP API, one struct per body. Fields Go would zero-fill when absent are
// optional here; the conversions below apply Dapr's defaults and validation.

/// `options` of a state item.
struct StateOptionsBody: Decodable {
    var concurrency: String?
    var consistency: String?
}

/// One item of `POST /v1.0/state/{store}`, and the `request` of a transaction operation.
struct StateItemBody: Decodable {
    var key: String
    var value: JSONValue?
    var etag: String?
    var metadata: [String: String]?
    var options: StateOptionsBody?

    func setRequest() throws(APIFailure) -> StateSetRequest {
        try StateRequests.set(key: key, value: (value ?? .null).storedBytes, etag: etag,
                              concurrency: try StateConcurrency(daprName: options?.concurrency),
                              consistency: try StateConsistency(daprName: options?.consistency), metadata: metadata ?? [:])
    }

    func deleteRequest() throws(APIFailure) -> StateDeleteRequest {
        try StateRequests.delete(key: key, etag: etag, concurrency: try StateConcurrency(daprName: options?.concurrency),
                                 consistency: try StateConsistency(daprName: options?.consistency), metadata: metadata ?? [:])
    }
}

/// `POST /v1.0/state/{store}/bulk`.
struct BulkGetBody: Decodable {
    var keys: [String]
    var parallelism: Int?
}

/// `POST /v1.0/state/{store}/transaction`.
struct TransactionBody: Decodable {
    struct Operation: Decodable {
        var operation: String
        var request: StateItemBody
    }

    var operations: [Operation]
    var metadata: [String: String]?

    func stateOperations() throws(APIFailure) -> [StateOperation] {
        var result: [StateOperation] = []
        result.reserveCapacity(operations.count)
        for operation in operations {
            switch operation.operation {
            case "upsert": result.append(.set(try operation.request.setRequest()))
            case "delete": result.append(.delete(try operation.request.deleteRequest()))
            default:
                throw APIFailure(kind: .invalidArgument, message: "operation type \(operation.operation) not supported",
                                 daprErrorCode: "ERR_NOT_SUPPORTED_STATE_OPERATION")
            }
        }
        return result
    }
}

/// `POST /v1.0-alpha1/lock/{store}`.
struct TryLockBody: Decodable {
    var resourceId: String?
    var lockOwner: String?
    /// Wider than the Int32 the store takes, so that an out-of-range value gets Dapr's message.
    var expiryInSeconds: Int64?

    /// Dapr's checks and messages, made before the store is called.
    func validated(store: String) throws(APIFailure) -> (resource: String, owner: String, expiryInSeconds: Int32) {
        let (resource, owner) = (resourceId ?? "", lockOwner ?? "")
        try LockRequests.requireArguments(store: store, resource: resource, owner: owner)
        guard let expiryInSeconds, expiryInSeconds > 0 else {
            throw APIFailure.badRequest("ExpiryInSeconds is not positive in lock store \(store)")
        }
        guard let expiry = Int32(exactly: expiryInSeconds) else {
            throw APIFailure.badRequest("ExpiryInSeconds \(expiryInSeconds) is too large in lock store \(store)")
        }
        return (resource, owner, expiry)
    }
}

/// `POST /v1.0-alpha1/unlock/{store}`.
struct UnlockBody: Decodable {
    var resourceId: String?
    var lockOwner: String?

    func validated(store: String) throws(APIFailure) -> (resource: String, owner: String) {
        let (resource, owner) = (resourceId ?? "", lockOwner ?? "")
        try LockRequests.requireArguments(store: store, resource: resource, owner: owner)
        return (resource, owner)
    }
}

/// `status` is UnlockStatus's raw value: 0 success, 1 lock does not exist, 2 lock belongs to others, 3 internal error.
struct UnlockResponseBody: Encodable {
    var status: Int32
}

/// `GET /v1.0/metadata` (the components part of Dapr's answer).
struct MetadataResponseBody: Encodable {
    struct Component: Encodable {
        /// The component's name.
        var name: String
        /// `<kind>.<plugin name>`, e.g. `state.redis-state`.
        var type: String
        /// The plugin's version.
        var version: String
        /// The operations apps may invoke (`POST /v1.0/bindings/{name}`), as signatures; absent when none.
        var capabilities: [String]?
    }

    var id: String?
    var components: [Component]
}

/// `POST /v1.0/bindings/{name}`, read for its operation only.
struct InvokeBindingOperation: Decodable {
    var operation: String?
}

/// `POST /v1.0/bindings/{name}`, read for its arguments once the operation is known.
struct InvokeBindingData: Decodable {
    var data: TypedArguments
}

/// `POST /v1.0/bindings/{name}`, whole (for an operation that takes the raw payload, or nothing).
struct InvokeBindingBody: Decodable {
    var operation: String?
    var data: JSONValue?
    var metadata: [String: String]?

    /// The binding's payload: a JSON string's text, any other JSON value as JSON, nothing when absent.
    var dataBytes: [UInt8] {
        switch data {
        case .none, .null?: []
        case .string(let text)?: Array(text.utf8)
        case let value?: value.storedBytes
        }
    }
}

/// Dapr's error body.
struct ErrorResponseBody: Encodable {
    var errorCode: String
    var message: String
}

extension StateConcurrency {
    /// Dapr's option names; absent or empty is unspecified (the store's default).
    init(daprName: String?) throws(APIFailure) {
        switch daprName ?? "" {
        case "": self = .unspecified
        case "first-write": self = .firstWrite
        case "last-write": self = .lastWrite
        case let other: throw APIFailure.badRequest("unknown concurrency '\(other)' (first-write or last-write)")
        }
    }
}

extension StateConsistency {
    /// Dapr's option names; absent or empty is unspecified (the store's default).
    init(daprName: String?) throws(APIFailure) {
        switch daprName ?? "" {
        case "": self = .unspecified
        case "eventual": self = .eventual
        case "strong": self = .strong
        case let other: throw APIFailure.badRequest("unknown consistency '\(other)' (eventual or strong)")
        }
    }
}

/// One item of `GET /v1.0/configuration/{store}`, as Dapr encodes its items: empty fields left out.
struct ConfigurationItemBody: Encodable {
    let value: String?
    let version: String?
    let metadata: [String: String]?

    init(_ item: ConfigurationItem) {
        value = item.value.isEmpty ? nil : item.value
        version = item.version.isEmpty ? nil : item.version
        metadata = item.metadata.isEmpty ? nil : item.metadata
    }
}

/// The answer of `GET /v1.0/configuration/{store}/{id}/unsubscribe` (Dapr's: both fields left out when empty).
/// The answer to `GET /v1.0/configuration/{store}/subscribe`.
struct SubscribeConfigurationBody: Encodable {
    let id: String
}

struct UnsubscribeConfigurationBody: Encodable {
    let ok: Bool?
    let message: String?
}

/// One entry of `POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}`.
struct BulkPublishEntryBody: Decodable {
    var entryId: String?
    var event: JSONValue?
    var contentType: String?
    var metadata: [String: String]?

    /// The entry's message as Dapr's ConvertEventToBytes reads it.
    func eventBytes(topic: String, pubsub: String) throws(APIFailure) -> [UInt8] {
        let contentType = contentType ?? ""
        let event = event ?? .null
        if CloudEvents.isContentType(contentType, "application/json") || CloudEvents.isContentType(contentType, CloudEvents.contentType) {
            return event.storedBytes
        }
        guard case .string(let text) = event else {
            throw APIFailure.pubsubEvents(topic: topic, pubsub: pubsub,
                                          "entry \(entryId ?? ""): an event of content type '\(contentType)' must be a JSON string")
        }
        if CloudEvents.isContentType(contentType, "application/octet-stream") {
            guard let bytes = Data(base64Encoded: text) else {
                throw APIFailure.pubsubEvents(topic: topic, pubsub: pubsub, "entry \(entryId ?? ""): the event is not valid base64")
            }
            return Array(bytes)
        }
        return Array(text.utf8)
    }
}

/// Dapr's answer to a bulk publish some entries of which failed.
struct BulkPublishFailureBody: Encodable {
    struct Entry: Encodable {
        var entryId: String
        var error: String
    }
    var failedEntries: [Entry]
    var errorCode: String
}
