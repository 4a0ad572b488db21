import Engine
import PluginHost

/// Dapr's configuration API, shared by gRPC (`GetConfiguration`, `SubscribeConfiguration`,
/// `UnsubscribeConfiguration` and their Alpha1 twins) and HTTP (`GET /v1.0/configuration/{store}`,
/// `…/{store}/{id}/unsubscribe`), in Dapr's order (dapr/dapr `pkg/api/grpc/grpc.go`, `pkg/api/http/http.go`):
/// the store must exist (none at all: ERR_CONFIGURATION_STORE_NOT_CONFIGURED; not this one:
/// ERR_CONFIGURATION_STORE_NOT_FOUND), then the store answers (any failure: ERR_CONFIGURATION_GET, or
/// ERR_CONFIGURATION_SUBSCRIBE when a subscription starts).
///
/// Thread: the caller's task; the store calls are the engine's.
public struct ConfigurationAPI: Sendable {
    private let engine: Engine
    private let telemetry: Telemetry

    public init(engine: Engine, telemetry: Telemetry) {
        self.engine = engine
        self.telemetry = telemetry
    }

    /// The items of `keys` that exist (every item when `keys` is empty), by key.
    public func get(store: String, keys: [String], metadata: [String: String],
                    deadline: ContinuousClock.Instant? = nil) async throws(APIFailure) -> [String: ConfigurationItem] {
        do throws(APIFailure) {
            return try await telemetry.call(.configuration, store, "get", daprOperation: APIFailure.configurationGetOperation) { () async throws(CallError) in
                try await engine.getConfiguration(store: store, keys: keys, metadata: metadata, deadline: deadline)
            }.value
        } catch {
            throw refined(error, store: store) { reason in .configurationGetFailed(keys: keys, store: store, reason) }
        }
    }

    /// A subscription to `keys` of `store` (every item when empty): its id, then one element per change.
    /// The caller ends it with `unsubscribe` (or by no longer iterating its updates).
    public func subscribe(store: String, keys: [String], metadata: [String: String]) async throws(APIFailure) -> ConfigurationSubscription {
        do throws(APIFailure) {
            return try await telemetry.call(.configuration, store, "subscribe", daprOperation: APIFailure.configurationGetOperation) { () async throws(CallError) in
                try await engine.subscribeConfiguration(store: store, keys: keys, metadata: metadata)
            }
        } catch {
            throw refined(error, store: store) { reason in .configurationSubscribeFailed(keys: keys, store: store, reason) }
        }
    }

    /// Ends subscription `id` of `store` (its stream ends); false when there is none.
    public func unsubscribe(store: String, id: String) -> Bool {
        engine.unsubscribeConfiguration(store: store, id: id)
    }

    /// nil when `store` is a configuration store being served; else Dapr's answer for a missing one. Only on
    /// failure paths and before HTTP subscribe's refusal: it lists the components.
    public func missingStoreFailure(_ store: String) -> APIFailure? {
        let stores = engine.registeredComponents.filter { $0.key.kind == .configuration }
        if stores.isEmpty { return .configurationStoresNotConfigured }
        return stores.contains { $0.key.name == store } ? nil : APIFailure(CallError.unknownComponent(ComponentKey(kind: .configuration, name: store)),
                                                                           operation: APIFailure.configurationGetOperation)
    }

    /// An unknown store is "not configured" when the app has no configuration store at all, as in Dapr; a
    /// store's failure gets Dapr's message (`storeFailed`). Bad requests and molt's own deadline stay as they are.
    private func refined(_ failure: APIFailure, store: String, storeFailed: (String) -> APIFailure) -> APIFailure {
        switch failure.kind {
        case .storeNotFound: return missingStoreFailure(store) ?? failure
        case .internal: return storeFailed(failure.message)
        default: return failure
        }
    }
}
