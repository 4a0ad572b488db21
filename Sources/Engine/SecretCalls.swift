import PluginHost

/// The secrets API apps call (Dapr's GetSecret and GetBulkSecret), leased like every other call.
extension Engine {
    /// The values of secret `key` in store `store` (one, named as the key, for a plain key/value store).
    public func getSecret(store: String, key: String, metadata: [String: String] = [:],
                          deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<SecretValues> {
        guard !key.isEmpty else { throw .invalidRequest("the secret's key is empty") }
        return try await withLease(ComponentKey(kind: .secretstore, name: store), deadline: deadline) { generation, deadline throws(CallError) in
            do throws(PluginError) {
                return try await generation.instance.secret(key: key, metadata: metadata, deadline: deadline)
            } catch {
                throw .plugin(error)
            }
        }
    }

    /// Every secret of store `store`, by name.
    public func bulkGetSecrets(store: String, metadata: [String: String] = [:],
                               deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<[String: SecretValues]> {
        try await withLease(ComponentKey(kind: .secretstore, name: store), deadline: deadline) { generation, deadline throws(CallError) in
            do throws(PluginError) {
                return try await generation.instance.bulkSecrets(metadata: metadata, deadline: deadline)
            } catch {
                throw .plugin(error)
            }
        }
    }
}
