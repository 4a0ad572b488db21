import PluginHost

/// The operations apps call. Each takes one lease on the component's active generation (one lookup),
/// builds its request from that generation's settings (the state key prefix), and waits for the plugin
/// until the call's deadline: the caller's, or `settings.callTimeout` from now. A call past its
/// deadline fails with `deadlineExceeded` at once; the plugin keeps the call, and the generation with
/// it, until it completes (see `LeaseCell`).
///
/// Thread: the caller's. A plugin that completes inline completes on it; no hop is added here.
extension Engine {
    /// Runs `body` with a lease on the component's active generation.
    @inline(__always)
    func withLease<Value: Sendable>(_ key: ComponentKey, deadline: ContinuousClock.Instant?,
                                    _ body: (Generation, CallDeadline) async throws(CallError) -> Value) async throws(CallError) -> Served<Value> {
        guard let slot = slots.withLock({ $0[key] }) else { throw .unknownComponent(key) }
        // The fast path is synchronous; only a paused slot (stateful handoff) suspends the call.
        let lease: ComponentSlot.Lease
        if let leased = try slot.tryAcquire() { lease = leased } else { lease = try await slot.acquire() }
        defer { slot.release(lease) }
        let generation = lease.generation
        let callDeadline = CallDeadline(deadline ?? defaultCallDeadline, timer: callTimer, owner: lease.cell)
        do {
            return Served(value: try await body(generation, callDeadline), generation: generation.number)
        } catch {
            if case .plugin(let failure) = error, failure.status == .deadlineExceeded { throw .deadlineExceeded(key, failure) }
            throw error
        }
    }

    // MARK: - kind lock

    public func tryLock(store: String, resource: String, owner: String, expiryInSeconds: Int32,
                        deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<Bool> {
        try await withLease(ComponentKey(kind: .lock, name: store), deadline: deadline) { generation, deadline throws(CallError) in
            try await plugin { () throws(PluginError) in
                try await generation.instance.tryLock(resource: resource, owner: owner, expiryInSeconds: expiryInSeconds, deadline: deadline)
            }
        }
    }

    public func unlock(store: String, resource: String, owner: String,
                       deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<UnlockStatus> {
        try await withLease(ComponentKey(kind: .lock, name: store), deadline: deadline) { generation, deadline throws(CallError) in
            try await plugin { () throws(PluginError) in
                try await generation.instance.unlock(resource: resource, owner: owner, deadline: deadline)
            }
        }
    }

    // MARK: - kind state (keys are the app's; each is stored under the serving generation's prefix)

    public func getState(store: String, key: String, consistency: StateConsistency = .unspecified,
                         metadata: [String: String] = [:], deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<StateGetResponse> {
        try await withLease(ComponentKey(kind: .state, name: store), deadline: deadline) { generation, deadline throws(CallError) in
            let storedKey = try StateKeyPrefix.stored(key, prefix: generation.stateKeyPrefix)
            return try await plugin { () throws(PluginError) in
                try await generation.instance.get(key: storedKey, consistency: consistency, metadata: metadata, deadline: deadline)
            }
        }
    }

    public func setState(store: String, _ request: StateSetRequest,
                         deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<Void> {
        try await withLease(ComponentKey(kind: .state, name: store), deadline: deadline) { generation, deadline throws(CallError) in
            var stored = request
            stored.key = try StateKeyPrefix.stored(request.key, prefix: generation.stateKeyPrefix)
            try await plugin { () throws(PluginError) in try await generation.instance.set(stored, deadline: deadline) }
        }
    }

    public func deleteState(store: String, _ request: StateDeleteRequest,
                            deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<Void> {
        try await withLease(ComponentKey(kind: .state, name: store), deadline: deadline) { generation, deadline throws(CallError) in
            var stored = request
            stored.key = try StateKeyPrefix.stored(request.key, prefix: generation.stateKeyPrefix)
            try await plugin { () throws(PluginError) in try await generation.instance.delete(stored, deadline: deadline) }
        }
    }

    /// One item per key, in order, each with the app's key.
    public func bulkGetState(store: String, keys: [String], parallelism: UInt32 = 0, metadata: [String: String] = [:],
                             deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<[StateBulkItem]> {
        try await withLease(ComponentKey(kind: .state, name: store), deadline: deadline) { generation, deadline throws(CallError) in
            let prefix = generation.stateKeyPrefix
            let storedKeys = try keys.map { key throws(CallError) in try StateKeyPrefix.stored(key, prefix: prefix) }
            var items = try await plugin { () throws(PluginError) in
                try await generation.instance.bulkGet(keys: storedKeys, parallelism: parallelism, metadata: metadata, deadline: deadline)
            }
            for index in items.indices { items[index].key = StateKeyPrefix.appKey(items[index].key, prefix: prefix) }
            return items
        }
    }

    public func transactState(store: String, _ operations: [StateOperation], metadata: [String: String] = [:],
                              deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<Void> {
        try await withLease(ComponentKey(kind: .state, name: store), deadline: deadline) { generation, deadline throws(CallError) in
            let prefix = generation.stateKeyPrefix
            let stored = try operations.map { operation throws(CallError) -> StateOperation in
                switch operation {
                case .set(var request):
                    request.key = try StateKeyPrefix.stored(request.key, prefix: prefix)
                    return .set(request)
                case .delete(var request):
                    request.key = try StateKeyPrefix.stored(request.key, prefix: prefix)
                    return .delete(request)
                }
            }
            try await plugin { () throws(PluginError) in try await generation.instance.transact(stored, metadata: metadata, deadline: deadline) }
        }
    }
}

/// A plugin operation's failure as a call failure.
@inline(__always)
private func plugin<Value>(_ body: () async throws(PluginError) -> Value) async throws(CallError) -> Value {
    do {
        return try await body()
    } catch {
        throw .plugin(error)
    }
}
