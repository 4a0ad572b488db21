import Engine
import PluginHost

/// Dapr's pub/sub API, shared by gRPC (`PublishEvent`, `BulkPublishEvent` and its Alpha1 name,
/// `SubscribeTopicEventsAlpha1`) and HTTP (`POST /v1.0/publish/{pubsub}/{topic}`,
/// `POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}`), checking in Dapr's order (dapr/dapr
/// `pkg/api/grpc/grpc.go` validateAndGetPubsubAndTopic): a pubsub at all (ERR_PUBSUB_NOT_CONFIGURED), a pubsub
/// name (ERR_PUBSUB_EMPTY), that pubsub (ERR_PUBSUB_NOT_FOUND), a topic (ERR_TOPIC_EMPTY), readable metadata
/// (ERR_PUBSUB_REQUEST_METADATA); then the message (`CloudEvents`) and the publish (any failure:
/// ERR_PUBSUB_PUBLISH_MESSAGE). Which pubsubs exist is looked up on failure paths only (it lists the
/// components): a publish that succeeds costs one engine call.
///
/// Thread: the caller's task; the pubsub calls are the engine's.
public struct PubsubAPI: Sendable {
    private let engine: Engine
    private let telemetry: Telemetry
    private let appID: String

    public init(engine: Engine, telemetry: Telemetry, appID: String) {
        self.engine = engine
        self.telemetry = telemetry
        self.appID = appID
    }

    /// One message to publish: the app's data as it sent it.
    public struct Entry: Sendable {
        public var data: [UInt8]
        public var contentType: String
        public var metadata: [String: String]

        public init(data: [UInt8], contentType: String, metadata: [String: String]) {
            self.data = data
            self.contentType = contentType
            self.metadata = metadata
        }
    }

    /// Publishes `entry` to `topic` of `pubsub`: wrapped in a CloudEvent unless `rawPayload` (`CloudEvents`).
    /// `traceParent`/`traceState`: the caller's W3C trace context.
    public func publish(pubsub: String, topic: String, _ entry: Entry, traceParent: String? = nil, traceState: String? = nil,
                        deadline: ContinuousClock.Instant? = nil) async throws(APIFailure) {
        try requireNames(pubsub: pubsub, topic: topic)
        let message = try rejectingBad(pubsub) { () throws(APIFailure) in
            try Self.message(entry, topic: topic, pubsub: pubsub, appID: appID, traceParent: traceParent, traceState: traceState)
        }
        do throws(APIFailure) {
            _ = try await telemetry.call(.pubsub, pubsub, "publish", daprOperation: APIFailure.pubsubPublishOperation) { () async throws(CallError) in
                try await engine.publish(pubsub: pubsub, topic: topic, data: message.data, contentType: message.contentType,
                                         metadata: entry.metadata, deadline: deadline)
            }
        } catch {
            throw refined(error, pubsub: pubsub, topic: topic)
        }
    }

    /// One failed entry of a bulk publish.
    public struct FailedEntry: Sendable, Equatable {
        public var entryID: String
        public var error: String
    }

    /// Publishes each entry (`entries`: id and message, ids unique and non-empty; each entry's metadata over the
    /// request's), in order. Returns the entries that failed, with why (empty: all were published). A request
    /// Dapr refuses as a whole (names, metadata, ids, an entry that is not a CloudEvent or over the limit)
    /// throws before anything is published.
    public func bulkPublish(pubsub: String, topic: String, entries: [(id: String, entry: Entry)], metadata: [String: String],
                            traceParent: String? = nil, traceState: String? = nil,
                            deadline: ContinuousClock.Instant? = nil) async throws(APIFailure) -> [FailedEntry] {
        try requireNames(pubsub: pubsub, topic: topic)
        let messages = try rejectingBad(pubsub) { () throws(APIFailure) -> [(id: String, message: CloudEvents.Published, metadata: [String: String])] in
            var seen = Set<String>()
            return try entries.map { id, entry throws(APIFailure) in
                // Dapr's ErrPubsubMarshal: "entryId is duplicated or not present for entry".
                guard !id.isEmpty, seen.insert(id).inserted else {
                    throw APIFailure.pubsubEvents(topic: topic, pubsub: pubsub, "entryId is duplicated or not present for entry")
                }
                var merged = entry
                merged.metadata = metadata.merging(entry.metadata) { _, entryValue in entryValue }
                return (id, try Self.message(merged, topic: topic, pubsub: pubsub, appID: appID,
                                             traceParent: traceParent, traceState: traceState), merged.metadata)
            }
        }
        var failed: [FailedEntry] = []
        for (id, message, entryMetadata) in messages {
            do throws(APIFailure) {
                _ = try await telemetry.call(.pubsub, pubsub, "publish", daprOperation: APIFailure.pubsubPublishOperation) { () async throws(CallError) in
                    try await engine.publish(pubsub: pubsub, topic: topic, data: message.data, contentType: message.contentType,
                                             metadata: entryMetadata, deadline: deadline)
                }
            } catch {
                let failure = refined(error, pubsub: pubsub, topic: topic)
                // A pubsub removed meanwhile fails the request, as Dapr's NotFoundError does.
                if failure.daprErrorCode == "ERR_PUBSUB_NOT_FOUND" || failure.daprErrorCode == "ERR_PUBSUB_NOT_CONFIGURED" { throw failure }
                failed.append(FailedEntry(entryID: id, error: failure.message))
            }
        }
        return failed
    }

    /// A subscription to `topic` of `pubsub` for a streaming subscriber; it ends when the caller stops iterating
    /// its deliveries (or calls `unsubscribe`).
    public func subscribe(pubsub: String, topic: String, metadata: [String: String]) async throws(APIFailure) -> PubsubSubscription {
        try requireNames(pubsub: pubsub, topic: topic)
        _ = try rejectingBad(pubsub) { () throws(APIFailure) in try Self.rawPayload(metadata) }
        do throws(APIFailure) {
            return try await telemetry.call(.pubsub, pubsub, "subscribe", daprOperation: "PUBSUB_SUBSCRIBE") { () async throws(CallError) in
                try await engine.subscribe(pubsub: pubsub, topic: topic, metadata: metadata)
            }
        } catch {
            if error.kind == .storeNotFound { throw missingPubsubFailure(pubsub) ?? error }
            throw error
        }
    }

    /// Ends subscription `id` of `pubsub`; false when there is none.
    public func unsubscribe(pubsub: String, id: String) async -> Bool {
        await engine.unsubscribe(pubsub: pubsub, id: id)
    }

    /// Dapr's `rawPayload` metadata of a request or subscription (a value that is not a boolean is refused).
    public static func rawPayload(_ metadata: [String: String]) throws(APIFailure) -> Bool {
        do {
            return try CloudEvents.isRawPayload(metadata)
        } catch {
            throw .pubsubMetadata("rawPayload: strconv.ParseBool: parsing \"\(metadata["rawPayload"] ?? "")\": invalid syntax")
        }
    }

    /// The message to put on the broker for `entry`, as Dapr builds it.
    static func message(_ entry: Entry, topic: String, pubsub: String, appID: String,
                        traceParent: String?, traceState: String?) throws(APIFailure) -> CloudEvents.Published {
        if entry.data.count > AppAPILimits.maxPubsubMessageBytes {
            throw .pubsubMessageTooLarge(topic: topic, pubsub: pubsub, size: entry.data.count)
        }
        _ = try rawPayload(entry.metadata)
        do {
            return try CloudEvents.publish(data: entry.data, contentType: entry.contentType, topic: topic, pubsub: pubsub, appID: appID,
                                           metadata: entry.metadata, traceParent: traceParent, traceState: traceState)
        } catch {
            throw .pubsubCloudEventCreation
        }
    }

    /// nil when `pubsub` is served; else Dapr's answer for it (not configured at all, or not found).
    public func missingPubsubFailure(_ pubsub: String) -> APIFailure? {
        let pubsubs = engine.registeredComponents.filter { $0.key.kind == .pubsub }
        if pubsubs.isEmpty { return .pubsubNotConfigured }
        return pubsubs.contains { $0.key.name == pubsub } ? nil : .pubsubNotFound(pubsub)
    }

    /// Empty names are refused in Dapr's order: no pubsub at all first, then the name, then the topic (after
    /// the pubsub's existence, which only a failure path looks up).
    private func requireNames(pubsub: String, topic: String) throws(APIFailure) {
        guard pubsub.isEmpty || topic.isEmpty else { return }
        let failure: APIFailure
        if pubsub.isEmpty {
            failure = missingPubsubFailure(pubsub) == .some(.pubsubNotConfigured) ? .pubsubNotConfigured : .pubsubNameEmpty
        } else {
            failure = missingPubsubFailure(pubsub) ?? .pubsubTopicEmpty(pubsub)
        }
        telemetry.rejected(.pubsub, pubsub, "publish", failure)
        throw failure
    }

    private func rejectingBad<Value>(_ pubsub: String, _ body: () throws(APIFailure) -> Value) throws(APIFailure) -> Value {
        do {
            return try body()
        } catch {
            telemetry.rejected(.pubsub, pubsub, "publish", error)
            throw error
        }
    }

    /// An unknown pubsub is "not configured" when there is none at all; any failure of the pubsub is Dapr's
    /// ERR_PUBSUB_PUBLISH_MESSAGE. Bad requests and molt's own deadline stay as they are.
    private func refined(_ failure: APIFailure, pubsub: String, topic: String) -> APIFailure {
        switch failure.kind {
        case .storeNotFound: return missingPubsubFailure(pubsub) ?? failure
        case .deadlineExceeded, .invalidArgument: return failure
        default: return .pubsubPublishFailed(topic: topic, pubsub: pubsub, failure.message)
        }
    }
}

extension APIFailure: Equatable {
    public static func == (lhs: APIFailure, rhs: APIFailure) -> Bool {
        lhs.kind == rhs.kind && lhs.daprErrorCode == rhs.daprErrorCode && lhs.message == rhs.message
    }
}
