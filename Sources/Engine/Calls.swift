import PluginHost

/// The operations apps call, each on the component's active generation under a lease.
extension Engine {
    // MARK: - kind lock

    public func tryLock(store: String, resource: String, owner: String, expiryInSeconds: Int32) async throws(CallError) -> Served<Bool> {
        try await withLease(ComponentKey(kind: .lock, name: store)) { instance throws(PluginError) in
            try await instance.tryLock(resource: resource, owner: owner, expiryInSeconds: expiryInSeconds)
        }
    }

    public func unlock(store: String, resource: String, owner: String) async throws(CallError) -> Served<UnlockStatus> {
        try await withLease(ComponentKey(kind: .lock, name: store)) { instance throws(PluginError) in
            try await instance.unlock(resource: resource, owner: owner)
        }
    }

    // MARK: - kind state

    public func getState(store: String, key: String, consistency: StateConsistency = .unspecified,
                         metadata: [String: String] = [:]) async throws(CallError) -> Served<StateGetResponse> {
        try await withLease(ComponentKey(kind: .state, name: store)) { instance throws(PluginError) in
            try await instance.get(key: key, consistency: consistency, metadata: metadata)
        }
    }

    public func setState(store: String, _ request: StateSetRequest) async throws(CallError) -> Served<Void> {
        try await withLease(ComponentKey(kind: .state, name: store)) { instance throws(PluginError) in
            try await instance.set(request)
        }
    }

    public func deleteState(store: String, _ request: StateDeleteRequest) async throws(CallError) -> Served<Void> {
        try await withLease(ComponentKey(kind: .state, name: store)) { instance throws(PluginError) in
            try await instance.delete(request)
        }
    }

    public func bulkGetState(store: String, keys: [String], parallelism: UInt32 = 0,
                             metadata: [String: String] = [:]) async throws(CallError) -> Served<[StateBulkItem]> {
        try await withLease(ComponentKey(kind: .state, name: store)) { instance throws(PluginError) in
            try await instance.bulkGet(keys: keys, parallelism: parallelism, metadata: metadata)
        }
    }

    public func transactState(store: String, _ operations: [StateOperation],
                              metadata: [String: String] = [:]) async throws(CallError) -> Served<Void> {
        try await withLease(ComponentKey(kind: .state, name: store)) { instance throws(PluginError) in
            try await instance.transact(operations, metadata: metadata)
        }
    }
}
