import PluginHost

/// Builds store requests from what apps send, with Dapr's rules, for both the gRPC and HTTP APIs.
public enum StateRequests {
    /// A save. `metadata["ttlInSeconds"]` (Dapr's per-request TTL) becomes the request's TTL; the
    /// metadata still reaches the store whole.
    public static func set(key: String, value: [UInt8], etag: String?, concurrency: StateConcurrency,
                           consistency: StateConsistency, metadata: [String: String]) throws(APIFailure) -> StateSetRequest {
        try requireKey(key)
        var ttl: Int64?
        if let text = metadata["ttlInSeconds"] {
            guard let seconds = Int64(text), seconds >= -1 else {
                throw .badRequest("metadata ttlInSeconds '\(text)' of key '\(key)' is not an integer >= -1")
            }
            ttl = seconds
        }
        return StateSetRequest(key: key, value: value, etag: nonEmpty(etag), concurrency: concurrency, consistency: consistency,
                               ttlInSeconds: ttl, metadata: metadata)
    }

    public static func delete(key: String, etag: String?, concurrency: StateConcurrency, consistency: StateConsistency,
                              metadata: [String: String]) throws(APIFailure) -> StateDeleteRequest {
        try requireKey(key)
        return StateDeleteRequest(key: key, etag: nonEmpty(etag), concurrency: concurrency, consistency: consistency, metadata: metadata)
    }

    public static func requireKey(_ key: String) throws(APIFailure) {
        if key.isEmpty { throw .badRequest("a state key must not be empty") }
    }

    /// Dapr treats an empty etag as none.
    static func nonEmpty(_ etag: String?) -> String? {
        guard let etag, !etag.isEmpty else { return nil }
        return etag
    }
}
