import Engine
import FoundationEssentials
import Logging
import MoltProtos
import PluginHost
import ServingCore
import SwiftProtobuf
import Synchronization

/// Dapr's app API over gRPC (`dapr.proto.runtime.v1.Dapr`): state, lock, bindings, secrets, configuration and metadata,
/// one method per RPC, each taking the decoded request and the client's deadline (`grpc-timeout`; nil: the engine's
/// call timeout). `DaprGRPCRoutes` maps paths to these; methods molt does not have answer UNIMPLEMENTED.
/// Failures are `APIFailure`s; `GRPCStatus(failure)` gives Dapr's codes (unknown store and bad
/// requests INVALID_ARGUMENT, etag mismatch ABORTED).
///
/// Thread: the caller's task. A plugin that completes inline completes on it; nothing here hops.
public struct DaprService: Sendable {
    private let engine: Engine
    private let telemetry: Telemetry
    private let appID: String
    private let secrets: SecretsAPI
    private let configuration: ConfigurationAPI
    private let pubsub: PubsubAPI

    /// `secretScopes`: which secrets the app may read (bootstrap setting `secrets.scopes`).
    public init(engine: Engine, telemetry: Telemetry, appID: String, secretScopes: SecretScopes = .allowAll) {
        self.engine = engine
        self.telemetry = telemetry
        self.appID = appID
        self.secrets = SecretsAPI(engine: engine, telemetry: telemetry, scopes: secretScopes)
        self.configuration = ConfigurationAPI(engine: engine, telemetry: telemetry)
        self.pubsub = PubsubAPI(engine: engine, telemetry: telemetry, appID: appID)
    }

    // MARK: - State

    public func getState(_ request: Dapr_Proto_Runtime_V1_GetStateRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_GetStateResponse {
        let key = try rejectIfBad(.state, request.storeName, "get") { () throws(APIFailure) in
            try StateRequests.key(request.key)
        }
        let response = try await serve(.state, request.storeName, "get", daprOperation: "STATE_GET") { () async throws(CallError) in
            try await engine.getState(store: request.storeName, key: key, consistency: StateConsistency(request.consistency),
                                      metadata: request.metadata, deadline: deadline)
        }
        var reply = Dapr_Proto_Runtime_V1_GetStateResponse()
        guard response.found else { return reply }  // a missing key is an empty response, as in Dapr
        reply.data = Data(response.value)
        reply.etag = response.etag ?? ""
        reply.metadata = response.metadata
        return reply
    }

    public func getBulkState(_ request: Dapr_Proto_Runtime_V1_GetBulkStateRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_GetBulkStateResponse {
        let keys = try rejectIfBad(.state, request.storeName, "bulk_get") { () throws(APIFailure) in
            try request.keys.map { key throws(APIFailure) in try StateRequests.key(key) }
        }
        let items = try await serve(.state, request.storeName, "bulk_get", daprOperation: "STATE_BULK_GET") { () async throws(CallError) in
            try await engine.bulkGetState(store: request.storeName, keys: keys,
                                          parallelism: UInt32(clamping: max(request.parallelism, 0)), metadata: request.metadata,
                                          deadline: deadline)
        }
        var reply = Dapr_Proto_Runtime_V1_GetBulkStateResponse()
        reply.items = items.map { item in
            var bulkItem = Dapr_Proto_Runtime_V1_BulkStateItem()
            bulkItem.key = item.key
            if item.found {
                bulkItem.data = Data(item.value)
                bulkItem.etag = item.etag ?? ""
            }
            bulkItem.error = item.error ?? ""
            return bulkItem
        }
        return reply
    }

    public func saveState(_ request: Dapr_Proto_Runtime_V1_SaveStateRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> SwiftProtobuf.Google_Protobuf_Empty {
        let requests = try rejectIfBad(.state, request.storeName, "save") { () throws(APIFailure) in
            try request.states.map { item throws(APIFailure) in try Self.setRequest(item) }
        }
        try await serveEach(requests, request.storeName, "save", daprOperation: "STATE_SAVE") { setRequest throws(CallError) in
            try await engine.setState(store: request.storeName, setRequest, deadline: deadline)
        }
        return SwiftProtobuf.Google_Protobuf_Empty()
    }

    public func deleteState(_ request: Dapr_Proto_Runtime_V1_DeleteStateRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> SwiftProtobuf.Google_Protobuf_Empty {
        let deleteRequest = try rejectIfBad(.state, request.storeName, "delete") { () throws(APIFailure) in
            try StateRequests.delete(key: request.key,
                                     etag: request.hasEtag ? request.etag.value : nil, concurrency: StateConcurrency(request.options.concurrency),
                                     consistency: StateConsistency(request.options.consistency), metadata: request.metadata)
        }
        _ = try await serve(.state, request.storeName, "delete", daprOperation: "STATE_DELETE") { () async throws(CallError) in
            try await engine.deleteState(store: request.storeName, deleteRequest, deadline: deadline)
        }
        return SwiftProtobuf.Google_Protobuf_Empty()
    }

    public func deleteBulkState(_ request: Dapr_Proto_Runtime_V1_DeleteBulkStateRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> SwiftProtobuf.Google_Protobuf_Empty {
        let requests = try rejectIfBad(.state, request.storeName, "delete") { () throws(APIFailure) in
            try request.states.map { item throws(APIFailure) in try Self.deleteRequest(item) }
        }
        try await serveEach(requests, request.storeName, "delete", daprOperation: "STATE_DELETE") { deleteRequest throws(CallError) in
            try await engine.deleteState(store: request.storeName, deleteRequest, deadline: deadline)
        }
        return SwiftProtobuf.Google_Protobuf_Empty()
    }

    public func executeStateTransaction(_ request: Dapr_Proto_Runtime_V1_ExecuteStateTransactionRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> SwiftProtobuf.Google_Protobuf_Empty {
        let operations = try rejectIfBad(.state, request.storeName, "transaction") { () throws(APIFailure) in
            try request.operations.map { operation throws(APIFailure) -> StateOperation in
                switch operation.operationType {
                case "upsert": return .set(try Self.setRequest(operation.request))
                case "delete": return .delete(try Self.deleteRequest(operation.request))
                default:
                    throw .badRequest("operation type '\(operation.operationType)' is not supported: use 'upsert' or 'delete'")
                }
            }
        }
        _ = try await serve(.state, request.storeName, "transaction", daprOperation: "STATE_TRANSACTION") { () async throws(CallError) in
            try await engine.transactState(store: request.storeName, operations, metadata: request.metadata, deadline: deadline)
        }
        return SwiftProtobuf.Google_Protobuf_Empty()
    }

    // MARK: - Lock

    public func tryLockAlpha1(_ request: Dapr_Proto_Runtime_V1_TryLockRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_TryLockResponse {
        try rejectIfBad(.lock, request.storeName, "try_lock") { () throws(APIFailure) in
            try LockRequests.requireArguments(store: request.storeName, resource: request.resourceID, owner: request.lockOwner)
            if request.expiryInSeconds <= 0 {
                throw .badRequest("ExpiryInSeconds is not positive in lock store \(request.storeName)")
            }
        }
        var reply = Dapr_Proto_Runtime_V1_TryLockResponse()
        reply.success = try await serve(.lock, request.storeName, "try_lock", daprOperation: "TRY_LOCK") { () async throws(CallError) in
            try await engine.tryLock(store: request.storeName, resource: request.resourceID, owner: request.lockOwner,
                                     expiryInSeconds: request.expiryInSeconds, deadline: deadline)
        }
        return reply
    }

    public func unlockAlpha1(_ request: Dapr_Proto_Runtime_V1_UnlockRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_UnlockResponse {
        try rejectIfBad(.lock, request.storeName, "unlock") { () throws(APIFailure) in
            try LockRequests.requireArguments(store: request.storeName, resource: request.resourceID, owner: request.lockOwner)
        }
        let status = try await serve(.lock, request.storeName, "unlock", daprOperation: "UNLOCK") { () async throws(CallError) in
            try await engine.unlock(store: request.storeName, resource: request.resourceID, owner: request.lockOwner,
                                    deadline: deadline)
        }
        var reply = Dapr_Proto_Runtime_V1_UnlockResponse()
        reply.status = Dapr_Proto_Runtime_V1_UnlockResponse.Status(rawValue: Int(status.rawValue)) ?? .internalError
        return reply
    }

    // MARK: - Metadata

    public func getMetadata(_ request: Dapr_Proto_Runtime_V1_GetMetadataRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_GetMetadataResponse {
        var reply = Dapr_Proto_Runtime_V1_GetMetadataResponse()
        reply.id = appID
        reply.runtimeVersion = MoltVersion.current
        for registered in engine.registeredComponents {
            let (plugin, version) = PluginID.split(registered.plugin)
            var component = Dapr_Proto_Runtime_V1_RegisteredComponents()
            component.name = registered.key.name
            component.type = "\(registered.key.kind.daprBuildingBlock).\(plugin)"
            component.version = version
            // The operations apps may invoke on it (InvokeBinding), as signatures.
            component.capabilities = registered.capabilities
            reply.registeredComponents.append(component)
            // molt's own view of each component, for operators reading Dapr's metadata API.
            let prefix = "molt.\(registered.key.kind.rawValue).\(registered.key.name)"
            reply.extendedMetadata["\(prefix).plugin"] = registered.plugin
            reply.extendedMetadata["\(prefix).generation"] = String(registered.generation)
        }
        reply.extendedMetadata["molt.version"] = MoltVersion.current
        return reply
    }

    // MARK: - Output bindings (declared operations)

    public func invokeBinding(_ request: Dapr_Proto_Runtime_V1_InvokeBindingRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_InvokeBindingResponse {
        let (key, declaration) = try BindingCalls.resolve(engine, name: request.name, operation: request.operation)
        let arguments = try rejectIfBad(key.kind, key.name, declaration.name) { () throws(APIFailure) in
            try BindingCalls.arguments(Array(request.data), for: declaration)
        }
        let results = try await serve(key.kind, key.name, declaration.name, daprOperation: "INVOKE_OUTPUT_BINDING") { () async throws(CallError) in
            try await engine.invoke(key, operation: declaration.name, arguments: arguments, deadline: deadline)
        }
        var reply = Dapr_Proto_Runtime_V1_InvokeBindingResponse()
        reply.data = Data(BindingCalls.data(results, for: declaration))
        return reply
    }

    // MARK: - Secrets

    /// The secret's values; a denied key is PERMISSION_DENIED, a missing one INTERNAL (ERR_SECRET_GET), as Dapr.
    public func getSecret(_ request: Dapr_Proto_Runtime_V1_GetSecretRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_GetSecretResponse {
        var reply = Dapr_Proto_Runtime_V1_GetSecretResponse()
        reply.data = try await secrets.get(store: request.storeName, key: request.key, metadata: request.metadata, deadline: deadline)
        return reply
    }

    /// Every secret the app may read (denied ones left out).
    public func getBulkSecret(_ request: Dapr_Proto_Runtime_V1_GetBulkSecretRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_GetBulkSecretResponse {
        let all = try await secrets.bulk(store: request.storeName, metadata: request.metadata, deadline: deadline)
        var reply = Dapr_Proto_Runtime_V1_GetBulkSecretResponse()
        reply.data = all.mapValues { values in
            var secret = Dapr_Proto_Runtime_V1_SecretResponse()
            secret.secrets = values
            return secret
        }
        return reply
    }

    // MARK: - Configuration

    /// The items asked for that exist (every item when no key is given), by key. GetConfigurationAlpha1 too.
    public func getConfiguration(_ request: Dapr_Proto_Runtime_V1_GetConfigurationRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_GetConfigurationResponse {
        let items = try await configuration.get(store: request.storeName, keys: request.keys, metadata: request.metadata, deadline: deadline)
        var reply = Dapr_Proto_Runtime_V1_GetConfigurationResponse()
        reply.items = Self.protoItems(items.values)
        return reply
    }

    /// As Dapr (`pkg/api/grpc/grpc.go` SubscribeConfiguration): the first message carries only the subscription
    /// id (not the current items: an app reads those with GetConfiguration), then one message per change with the
    /// id and the items that changed (a deleted item: value "" and version ""). The call ends with OK when the
    /// app unsubscribes; when the client cancels or goes away the subscription is removed. A store failure
    /// before the first message is the call's status. SubscribeConfigurationAlpha1 too.
    public func subscribeConfiguration(_ request: Dapr_Proto_Runtime_V1_SubscribeConfigurationRequest, _ deadline: ContinuousClock.Instant?,
                                       _ send: @Sendable (Dapr_Proto_Runtime_V1_SubscribeConfigurationResponse) async -> Bool) async throws(APIFailure) {
        let subscription = try await configuration.subscribe(store: request.storeName, keys: request.keys, metadata: request.metadata)
        // However the call ends (unsubscribed, client gone, cancelled), the subscription goes with it.
        defer { _ = configuration.unsubscribe(store: request.storeName, id: subscription.id) }
        var first = Dapr_Proto_Runtime_V1_SubscribeConfigurationResponse()
        first.id = subscription.id
        guard await send(first) else { return }
        // Ends when the app unsubscribes (the engine finishes the stream) or this task is cancelled.
        for await changed in subscription.updates {
            var update = Dapr_Proto_Runtime_V1_SubscribeConfigurationResponse()
            update.id = subscription.id
            update.items = Self.protoItems(changed)
            guard await send(update) else { return }
        }
    }

    /// Ends subscription `id` of the store: `ok`, or (as Dapr, for an id no subscription has) not ok and why.
    /// UnsubscribeConfigurationAlpha1 too.
    public func unsubscribeConfiguration(_ request: Dapr_Proto_Runtime_V1_UnsubscribeConfigurationRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_UnsubscribeConfigurationResponse {
        var reply = Dapr_Proto_Runtime_V1_UnsubscribeConfigurationResponse()
        reply.ok = configuration.unsubscribe(store: request.storeName, id: request.id)
        if !reply.ok { reply.message = APIFailure.configurationUnsubscribeMessage(id: request.id) }
        return reply
    }

    static func protoItems(_ items: some Sequence<ConfigurationItem>) -> [String: Dapr_Proto_Common_V1_ConfigurationItem] {
        var byKey: [String: Dapr_Proto_Common_V1_ConfigurationItem] = [:]
        for item in items {
            var proto = Dapr_Proto_Common_V1_ConfigurationItem()
            proto.value = item.value
            proto.version = item.version
            proto.metadata = item.metadata
            byKey[item.key] = proto
        }
        return byKey
    }

    // MARK: - Pub/sub

    /// Publishes the app's data to the topic, in a CloudEvent unless `rawPayload=true` (`CloudEvents`).
    public func publishEvent(_ request: Dapr_Proto_Runtime_V1_PublishEventRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> SwiftProtobuf.Google_Protobuf_Empty {
        try await pubsub.publish(pubsub: request.pubsubName, topic: request.topic,
                                 PubsubAPI.Entry(data: Array(request.data), contentType: request.dataContentType, metadata: request.metadata),
                                 deadline: deadline)
        return SwiftProtobuf.Google_Protobuf_Empty()
    }

    /// Publishes each entry; as Dapr (`pkg/api/grpc/grpc.go` BulkPublishEventAlpha1), any entry that fails fails
    /// the call (INTERNAL ERR_PUBSUB_PUBLISH_MESSAGE naming each failed entry), the others staying published.
    /// BulkPublishEventAlpha1 too.
    public func bulkPublishEvent(_ request: Dapr_Proto_Runtime_V1_BulkPublishRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_BulkPublishResponse {
        let entries = request.entries.map { entry in
            (id: entry.entryID, entry: PubsubAPI.Entry(data: Array(entry.event), contentType: entry.contentType, metadata: entry.metadata))
        }
        let failed = try await pubsub.bulkPublish(pubsub: request.pubsubName, topic: request.topic, entries: entries,
                                                  metadata: request.metadata, deadline: deadline)
        guard failed.isEmpty else {
            throw APIFailure.pubsubPublishFailed(topic: request.topic, pubsub: request.pubsubName,
                                                 failed.map { "entry \($0.entryID): \($0.error)" }.joined(separator: "; "))
        }
        return Dapr_Proto_Runtime_V1_BulkPublishResponse()
    }

    /// Dapr's streaming subscription (`pkg/runtime/pubsub/streamer`): the client's first message is
    /// `initial_request` (else INVALID_ARGUMENT "initial request is required"); the server answers
    /// `initial_response`, then one `event_message` per delivery (a TopicEventRequest read from the CloudEvent),
    /// and the client answers each with `event_processed` (its id and SUCCESS, RETRY or DROP), which answers the
    /// delivery (ack, retry, drop). A second `initial_request` ends the call (INVALID_ARGUMENT, as Dapr); an
    /// `event_processed` naming no event waiting is ignored (Dapr logs it). When the client half-closes,
    /// cancels or goes away, the subscription ends and every delivery it has not answered is answered RETRY:
    /// the pubsub delivers it again (to another subscriber, or this one later). Retries are bounded
    /// (`RedeliveryBudget`, metadata `maxRetries`, default 10): past them a message goes to `dead_letter_topic` on
    /// the same pubsub (and is acknowledged), or without one is dropped with a warning; a DROP goes to
    /// `dead_letter_topic` too when there is one, as Dapr's streamer does.
    func subscribeTopicEventsAlpha1(_ requests: GRPCRequestMessages<Dapr_Proto_Runtime_V1_SubscribeTopicEventsRequestAlpha1>,
                                           _ deadline: ContinuousClock.Instant?,
                                           _ send: @escaping @Sendable (Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseAlpha1) async -> Bool) async throws(APIFailure) {
        var incoming = requests.makeIterator()
        guard let first = try await incoming.next() else { return }  // the client closed before subscribing
        guard case .initialRequest(let initial)? = first.subscribeTopicEventsRequestType else {
            throw APIFailure.badRequest("initial request is required")
        }
        let rawPayload = try PubsubAPI.rawPayload(initial.metadata)
        let subscription = try await pubsub.subscribe(pubsub: initial.pubsubName, topic: initial.topic, metadata: initial.metadata)
        let waiting = WaitingDeliveries()
        defer { waiting.retryAll() }
        var ready = Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseAlpha1()
        ready.initialResponse = Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseInitialAlpha1()
        guard await send(ready) else { return }
        let pubsubName = initial.pubsubName
        let budget = RedeliveryBudget(metadata: initial.metadata, deadLetterTopic: initial.deadLetterTopic)
        let engine = self.engine

        // Two loops, either ending the call: deliveries to the client, and the client's answers.
        let outcome = await withTaskGroup(of: APIFailure?.self) { group in
            group.addTask {
                for await delivery in subscription.deliveries {
                    let event = CloudEvents.event(from: delivery.message.data, topic: delivery.message.topic, pubsub: pubsubName,
                                                  rawPayload: rawPayload)
                    waiting.add(delivery, id: event.id)
                    var message = Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseAlpha1()
                    message.eventMessage = Self.topicEventRequest(event, topic: delivery.message.topic, pubsub: pubsubName)
                    guard await send(message) else { return nil }
                }
                return nil  // the subscription ended (unsubscribed, the pubsub removed)
            }
            group.addTask {
                // The rest of the client's messages (the first iterator is no longer used: one consumer at a time).
                var incoming = requests.makeIterator()
                var retries = RetryCounts()
                do throws(APIFailure) {
                    while let request = try await incoming.next() {
                        switch request.subscribeTopicEventsRequestType {
                        case .eventProcessed(let processed):
                            guard let delivery = waiting.take(id: processed.id) else { continue }
                            await Self.settle(delivery, id: processed.id, Self.outcome(processed.status.status), retries: &retries,
                                              budget: budget, pubsub: pubsubName, engine: engine)
                        case .initialRequest:
                            return APIFailure.badRequest("duplicate initial request received")
                        case nil:
                            continue
                        }
                    }
                    return nil  // the client half-closed: it ends the subscription
                } catch {
                    return error
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        _ = await pubsub.unsubscribe(pubsub: pubsubName, id: subscription.id)
        if let outcome { throw outcome }
    }

    private static let subscriptionLogger = Logger(label: "molt")

    /// Answers a streaming subscriber's delivery, within its redelivery budget: a RETRY past `maxRetries`, or a
    /// DROP, goes to the dead-letter topic when there is one (acknowledged once published; if publishing fails,
    /// RETRY); a RETRY past the budget without one is dropped with a warning.
    static func settle(_ delivery: PubsubDelivery, id: String, _ outcome: PubsubOutcome, retries: inout RetryCounts,
                       budget: RedeliveryBudget, pubsub: String, engine: Engine) async {
        let fields: Logger.Metadata = ["pubsub": "\(pubsub)", "topic": "\(delivery.message.topic)", "id": "\(id)"]
        switch outcome {
        case .ack:
            retries.forget(id)
            delivery.answer(.ack)
            return
        case .retry:
            guard retries.count(id) > budget.maxRetries else {
                delivery.answer(.retry)
                return
            }
            retries.forget(id)
            guard !budget.deadLetterTopic.isEmpty else {
                subscriptionLogger.warning("pub/sub event dropped: no retries left and no deadLetterTopic", metadata: fields.merging([
                    "max_retries": "\(budget.maxRetries)"]) { $1 })
                delivery.answer(.drop)
                return
            }
        case .drop:
            retries.forget(id)
            guard !budget.deadLetterTopic.isEmpty else {
                delivery.answer(.drop)
                return
            }
        }
        do throws(CallError) {
            try await budget.deadLetter(delivery.message, pubsub: pubsub, engine: engine)
            subscriptionLogger.warning("pub/sub event sent to the dead-letter topic", metadata: fields.merging([
                "dead_letter_topic": "\(budget.deadLetterTopic)", "answer": "\(outcome)"]) { $1 })
            delivery.answer(.ack)
        } catch {
            subscriptionLogger.error("error sending message to dead letter", metadata: fields.merging([
                "dead_letter_topic": "\(budget.deadLetterTopic)", "error": "\(error)"]) { $1 })
            delivery.answer(.retry)
        }
    }

    static func outcome(_ status: Dapr_Proto_Runtime_V1_TopicEventResponse.TopicEventResponseStatus) -> PubsubOutcome {
        switch status {
        case .success: return .ack
        case .drop: return .drop
        default: return .retry  // RETRY, and values this version does not know
        }
    }

    /// Dapr's TopicEventRequest for `event` (GRPCEnvelopeFromSubscriptionMessage); `path` is empty for a
    /// streaming subscription.
    static func topicEventRequest(_ event: CloudEvents.Event, topic: String, pubsub: String) -> Dapr_Proto_Runtime_V1_TopicEventRequest {
        var request = Dapr_Proto_Runtime_V1_TopicEventRequest()
        request.id = event.id
        request.source = event.source
        request.type = event.type
        request.specVersion = event.specVersion
        request.dataContentType = event.dataContentType
        request.data = Data(event.data)
        request.topic = topic
        request.pubsubName = pubsub
        var extensions = SwiftProtobuf.Google_Protobuf_Struct()
        extensions.fields = event.extensions.mapValues(Self.protoValue)
        request.extensions = extensions
        return request
    }

    static func protoValue(_ value: JSONValue) -> SwiftProtobuf.Google_Protobuf_Value {
        var proto = SwiftProtobuf.Google_Protobuf_Value()
        switch value {
        case .null: proto.nullValue = .nullValue
        case .bool(let bool): proto.boolValue = bool
        case .integer(let integer): proto.numberValue = Double(integer)
        case .number(let number): proto.numberValue = number
        case .string(let string): proto.stringValue = string
        case .array(let array):
            var list = SwiftProtobuf.Google_Protobuf_ListValue()
            list.values = array.map(protoValue)
            proto.listValue = list
        case .object(let object):
            var structure = SwiftProtobuf.Google_Protobuf_Struct()
            structure.fields = object.mapValues(protoValue)
            proto.structValue = structure
        }
        return proto
    }

    // MARK: - Helpers

    /// Runs a store call through telemetry; failures become Dapr's gRPC status.
    private func serve<Value>(_ kind: ComponentKind, _ store: String, _ operation: String, daprOperation: String,
                              _ body: () async throws(CallError) -> Served<Value>) async throws(APIFailure) -> Value {
        try await telemetry.call(kind, store, operation, daprOperation: daprOperation, body).value
    }

    /// Bulk save and delete: one store call per item, in order; the first failure is the answer (the
    /// items before it stay written, as with Dapr's bulk fallback).
    private func serveEach<Request>(_ requests: [Request], _ store: String, _ operation: String, daprOperation: String,
                                    _ call: (Request) async throws(CallError) -> Served<Void>) async throws(APIFailure) {
        for request in requests {
            try await serve(.state, store, operation, daprOperation: daprOperation) { () async throws(CallError) in try await call(request) }
        }
    }

    /// Validates a request before any store call; a refusal is counted and answered as Dapr does.
    @discardableResult
    private func rejectIfBad<Value>(_ kind: ComponentKind, _ store: String, _ operation: String,
                                    _ body: () throws(APIFailure) -> Value) throws(APIFailure) -> Value {
        do {
            return try body()
        } catch {
            telemetry.rejected(kind, store, operation, error)
            throw error
        }
    }

    static func setRequest(_ item: Dapr_Proto_Common_V1_StateItem) throws(APIFailure) -> StateSetRequest {
        try StateRequests.set(key: item.key, value: Array(item.value), etag: item.hasEtag ? item.etag.value : nil,
                              concurrency: StateConcurrency(item.options.concurrency),
                              consistency: StateConsistency(item.options.consistency), metadata: item.metadata)
    }

    static func deleteRequest(_ item: Dapr_Proto_Common_V1_StateItem) throws(APIFailure) -> StateDeleteRequest {
        try StateRequests.delete(key: item.key, etag: item.hasEtag ? item.etag.value : nil,
                                 concurrency: StateConcurrency(item.options.concurrency),
                                 consistency: StateConsistency(item.options.consistency), metadata: item.metadata)
    }
}

extension StateConsistency {
    init(_ consistency: Dapr_Proto_Common_V1_StateOptions.StateConsistency) {
        switch consistency {
        case .consistencyEventual: self = .eventual
        case .consistencyStrong: self = .strong
        default: self = .unspecified
        }
    }
}

extension StateConcurrency {
    init(_ concurrency: Dapr_Proto_Common_V1_StateOptions.StateConcurrency) {
        switch concurrency {
        case .concurrencyFirstWrite: self = .firstWrite
        case .concurrencyLastWrite: self = .lastWrite
        default: self = .unspecified
        }
    }
}

/// The deliveries of one streaming subscription sent to the client and not yet answered, by CloudEvent id
/// (oldest first when an id repeats). Any thread.
final class WaitingDeliveries: Sendable {
    private let byID = Mutex<[String: [PubsubDelivery]]>([:])

    func add(_ delivery: PubsubDelivery, id: String) {
        byID.withLock { $0[id, default: []].append(delivery) }
    }

    /// Answers the oldest delivery waiting under `id`; nothing when none is (Dapr logs and ignores it).
    func answer(id: String, _ outcome: PubsubOutcome) {
        take(id: id)?.answer(outcome)
    }

    /// The oldest delivery waiting under `id`, no longer waiting; nil when none is.
    func take(id: String) -> PubsubDelivery? {
        byID.withLock { waiting in
            guard var deliveries = waiting[id], !deliveries.isEmpty else { return nil }
            let first = deliveries.removeFirst()
            waiting[id] = deliveries.isEmpty ? nil : deliveries
            return first
        }
    }

    /// The subscription ended: whatever the client did not answer goes back to the pubsub.
    func retryAll() {
        let all = byID.withLock { waiting in
            defer { waiting.removeAll() }
            return waiting.values.flatMap { $0 }
        }
        for delivery in all { delivery.answer(.retry) }
    }
}
