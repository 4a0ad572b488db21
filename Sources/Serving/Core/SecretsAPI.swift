import Engine
import PluginHost

/// Dapr's secrets API, shared by gRPC (`GetSecret`, `GetBulkSecret`) and HTTP (`GET /v1.0/secrets/{store}/{key}`,
/// `GET /v1.0/secrets/{store}/bulk`), in Dapr's order (dapr/dapr `pkg/api/universal/secrets.go`):
/// the store must exist (none at all: ERR_SECRET_STORES_NOT_CONFIGURED; not this one:
/// ERR_SECRET_STORE_NOT_FOUND), then a get must be allowed by the app's `SecretScopes` (else
/// ERR_PERMISSION_DENIED), then the store answers (any failure: ERR_SECRET_GET). A bulk answer leaves out
/// the secrets the scopes deny.
///
/// Thread: the caller's task; the scope check is a pure lookup, the store call is the engine's.
public struct SecretsAPI: Sendable {
    private let engine: Engine
    private let telemetry: Telemetry
    public let scopes: SecretScopes

    public init(engine: Engine, telemetry: Telemetry, scopes: SecretScopes) {
        self.engine = engine
        self.telemetry = telemetry
        self.scopes = scopes
    }

    /// The values of secret `key` of `store`.
    public func get(store: String, key: String, metadata: [String: String],
                    deadline: ContinuousClock.Instant? = nil) async throws(APIFailure) -> SecretValues {
        if !scopes.allowed(store: store, key: key) {
            // Dapr checks the store before the policy: an unknown store is not found, even for a denied key.
            let failure = missingStoreFailure(store) ?? .secretPermissionDenied(store: store, key: key)
            telemetry.rejected(.secretstore, store, "get", failure)
            throw failure
        }
        do throws(APIFailure) {
            return try await telemetry.call(.secretstore, store, "get", daprOperation: APIFailure.secretGetOperation) { () async throws(CallError) in
                try await engine.getSecret(store: store, key: key, metadata: metadata, deadline: deadline)
            }.value
        } catch {
            throw refined(error, store: store)
        }
    }

    /// Every secret of `store` the app may read, by name.
    public func bulk(store: String, metadata: [String: String],
                     deadline: ContinuousClock.Instant? = nil) async throws(APIFailure) -> [String: SecretValues] {
        let secrets: [String: SecretValues]
        do throws(APIFailure) {
            secrets = try await telemetry.call(.secretstore, store, "bulk_get", daprOperation: APIFailure.secretGetOperation) { () async throws(CallError) in
                try await engine.bulkGetSecrets(store: store, metadata: metadata, deadline: deadline)
            }.value
        } catch {
            throw refined(error, store: store)
        }
        guard let scope = scopes.scopes[store] else { return secrets }
        return secrets.filter { scope.allows($0.key) }
    }

    /// An unknown store is "not configured" when the app has no secret store at all, as in Dapr.
    private func refined(_ failure: APIFailure, store: String) -> APIFailure {
        guard failure.kind == .secretStoreNotFound else { return failure }
        return missingStoreFailure(store) ?? failure
    }

    /// nil when `store` is a secret store being served; else Dapr's answer for a missing one. Only on
    /// failure paths: it lists the components.
    private func missingStoreFailure(_ store: String) -> APIFailure? {
        let stores = engine.registeredComponents.filter { $0.key.kind == .secretstore }
        if stores.isEmpty { return .secretStoresNotConfigured }
        return stores.contains { $0.key.name == store } ? nil : .secretStoreNotFound(store)
    }
}
