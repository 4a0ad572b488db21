import Engine
import FoundationEssentials
import Logging
import MoltProtos
import PluginHost
import ServingCore
import SwiftProtobuf
import Synchronization

/// Dapr's app API over gRPC (`dapr.proto.runtime.v1.Dapr`): state, lock, bindings, secrets, configuration, metadata and
/// pub/sub (`DaprService+Pubsub.swift`),
/// one method per RPC, each taking the decoded request and the client's deadline (`grpc-timeout`; nil: the engine's
/// call timeout). `DaprGRPCRoutes` maps paths to these; methods molt does not have answer UNIMPLEMENTED.
/// Failures are `APIFailure`s; `GRPCStatus(failure)` gives Dapr's codes (unknown store and bad
/// requests INVALID_ARGUMENT, etag mismatch ABORTED).
///
/// Thread: the caller's task. A plugin that completes inline completes on it; nothing here hops.
public struct DaprService: Sendable {
    let engine: Engine
    let telemetry: Telemetry
    let appID: String
    private let secrets: SecretsAPI
    private let configuration: ConfigurationAPI
    let pubsub: PubsubAPI

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

    // MARK: - Helpers

    /// Runs a store call through telemetry; failures become Dapr's gRPC status.
    func serve<Value>(_ kind: ComponentKind, _ store: String, _ operation: String, daprOperation: String,
                              _ body: () async throws(CallError) -> Served<Value>) async throws(APIFailure) -> Value {
        try await telemetry.call(kind, store, operation, daprOperation: daprOperation, body).value
    }

    /// Bulk save and delete: one store call per item, in order; the first failure is the answer (the
    /// items before it stay written, as with Dapr's bulk fallback).
    func serveEach<Request>(_ requests: [Request], _ store: String, _ operation: String, daprOperation: String,
                                    _ call: (Request) async throws(CallError) -> Served<Void>) async throws(APIFailure) {
        for request in requests {
            try await serve(.state, store, operation, daprOperation: daprOperation) { () async throws(CallError) in try await call(request) }
        }
    }

    /// Validates a request before any store call; a refusal is counted and answered as Dapr does.
    @discardableResult
    func rejectIfBad<Value>(_ kind: ComponentKind, _ store: String, _ operation: String,
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
