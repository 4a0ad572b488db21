import PluginHost

/// Builds store requests from what apps send, with Dapr's rules, for both the gRPC and HTTP APIs.
public enum StateRequests {
    /// A save of app key `key` (the engine stores it under the component's key prefix). `metadata["ttlInSeconds"]`
    /// (Dapr's per-request TTL) becomes the request's TTL; the metadata still reaches the store whole.
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

    /// The key of a get: it must not be empty nor over the limit.
    public static func key(_ key: String) throws(APIFailure) -> String {
        try requireKey(key)
        return key
    }

    /// Every app key of every state call (save, get, delete, bulk, transaction) passes here.
    static func requireKey(_ key: String) throws(APIFailure) {
        if key.isEmpty { throw .badRequest("a state key must not be empty") }
        let size = key.utf8.count
        if size > AppAPILimits.maxStateKeyBytes {
            throw .badRequest("state key '\(messageExcerpt(key))' is \(size) bytes, over the limit of \(AppAPILimits.maxStateKeyBytes) bytes")
        }
    }

    /// Dapr treats an empty etag as none.
    static func nonEmpty(_ etag: String?) -> String? {
        guard let etag, !etag.isEmpty else { return nil }
        return etag
    }
}

/// Dapr's checks of lock arguments, with Dapr's messages, for both the gRPC and HTTP APIs.
public enum LockRequests {
    public static func requireArguments(store: String, resource: String, owner: String) throws(APIFailure) {
        if resource.isEmpty { throw .badRequest("ResourceId is empty in lock store \(store)") }
        if owner.isEmpty { throw .badRequest("LockOwner is empty in lock store \(store)") }
        try requireSize("ResourceId", resource, limit: AppAPILimits.maxLockResourceIDBytes, store: store)
        try requireSize("LockOwner", owner, limit: AppAPILimits.maxLockOwnerBytes, store: store)
    }

    private static func requireSize(_ field: String, _ value: String, limit: Int, store: String) throws(APIFailure) {
        let size = value.utf8.count
        if size > limit {
            throw .badRequest("\(field) '\(messageExcerpt(value))' is \(size) bytes, over the limit of \(limit) bytes in lock store \(store)")
        }
    }
}

/// A plugin id as the engine reports it, "redis-state@1.0.0".
public enum PluginID {
    /// "redis-state@1.0.0" → ("redis-state", "1.0.0"); an id without "@" has an empty version.
    public static func split(_ id: String) -> (name: String, version: String) {
        guard let at = id.lastIndex(of: "@") else { return (id, "") }
        return (String(id[..<at]), String(id[id.index(after: at)...]))
    }
}
