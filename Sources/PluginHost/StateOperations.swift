import PluginABI

/// Dapr's state concurrency option.
public enum StateConcurrency: Int32, Sendable {
    case unspecified = 0, firstWrite = 1, lastWrite = 2
}

/// Dapr's state consistency option.
public enum StateConsistency: Int32, Sendable {
    case unspecified = 0, eventual = 1, strong = 2
}

public struct StateGetResponse: Sendable, Equatable {
    /// false: the key does not exist (Dapr answers an empty response, not an error).
    public var found: Bool
    public var value: [UInt8]
    public var etag: String?
    public var metadata: [String: String]
}

public struct StateSetRequest: Sendable {
    public var key: String
    public var value: [UInt8]
    public var etag: String?
    public var concurrency: StateConcurrency
    public var consistency: StateConsistency
    /// nil: the component's default TTL; > 0 expires after that many seconds; -1 never.
    public var ttlInSeconds: Int64?
    public var metadata: [String: String]

    public init(key: String, value: [UInt8], etag: String? = nil, concurrency: StateConcurrency = .unspecified,
                consistency: StateConsistency = .unspecified, ttlInSeconds: Int64? = nil, metadata: [String: String] = [:]) {
        (self.key, self.value, self.etag, self.concurrency, self.consistency, self.ttlInSeconds, self.metadata) =
            (key, value, etag, concurrency, consistency, ttlInSeconds, metadata)
    }
}

public struct StateDeleteRequest: Sendable {
    public var key: String
    public var etag: String?
    public var concurrency: StateConcurrency
    public var consistency: StateConsistency
    public var metadata: [String: String]

    public init(key: String, etag: String? = nil, concurrency: StateConcurrency = .unspecified,
                consistency: StateConsistency = .unspecified, metadata: [String: String] = [:]) {
        (self.key, self.etag, self.concurrency, self.consistency, self.metadata) = (key, etag, concurrency, consistency, metadata)
    }
}

public struct StateBulkItem: Sendable, Equatable {
    public var key: String
    public var found: Bool
    public var value: [UInt8]
    public var etag: String?
    /// Why this key could not be read; the other items still count.
    public var error: String?
}

public enum StateOperation: Sendable {
    case set(StateSetRequest)
    case delete(StateDeleteRequest)
}

extension PluginInstance {
    public func get(key: String, consistency: StateConsistency = .unspecified, metadata: [String: String] = [:], deadline: CallDeadline? = nil) async throws(PluginError) -> StateGetResponse {
        guard let get = binary.symbols.stateGet else { throw Self.unsupported("get", binary) }
        let handle = instanceHandle
        return try await PendingCall<StateGetResponse>.run("get", deadline: deadline) { call, context in
            let arena = call.arena
            let (pairs, count) = arena.keyValues(metadata)
            let request = arena.value(molt_state_get_request(
                struct_size: UInt32(MemoryLayout<molt_state_get_request>.size), key: arena.string(key),
                consistency: consistency.rawValue, metadata_count: count, metadata: pairs))
            get(handle, request, { context, result in
                let outcome: Result<StateGetResponse, PluginError> = if let result, result.pointee.status == MOLT_OK {
                    .success(StateGetResponse(
                        found: result.pointee.found, value: result.pointee.found ? copiedBytes(result.pointee.value) : [],
                        etag: copiedString(result.pointee.etag),
                        metadata: copiedKeyValues(result.pointee.metadata, result.pointee.metadata_count)))
                } else {
                    .failure(failure(result?.pointee.status ?? MOLT_ERR_INTERNAL, result?.pointee.message, operation: "get"))
                }
                PendingCall.finish(context, outcome)
            }, context)
        }.get()
    }

    public func set(_ request: StateSetRequest, deadline: CallDeadline? = nil) async throws(PluginError) {
        guard let set = binary.symbols.stateSet else { throw Self.unsupported("set", binary) }
        let handle = instanceHandle
        try await PendingCall<Void>.run("set", deadline: deadline) { call, context in
            set(handle, Self.cSetRequest(request, in: call.arena), { context, result in
                PendingCall.finish(context, writeOutcome(result, operation: "set"))
            }, context)
        }.get()
    }

    public func delete(_ request: StateDeleteRequest, deadline: CallDeadline? = nil) async throws(PluginError) {
        guard let delete = binary.symbols.stateDelete else { throw Self.unsupported("delete", binary) }
        let handle = instanceHandle
        try await PendingCall<Void>.run("delete", deadline: deadline) { call, context in
            delete(handle, Self.cDeleteRequest(request, in: call.arena), { context, result in
                PendingCall.finish(context, writeOutcome(result, operation: "delete"))
            }, context)
        }.get()
    }

    /// One item per key, in order. Plugins without bulk_get are served by one get per key.
    public func bulkGet(keys: [String], parallelism: UInt32 = 0, metadata: [String: String] = [:], deadline: CallDeadline? = nil) async throws(PluginError) -> [StateBulkItem] {
        guard let bulkGet = binary.symbols.stateBulkGet else {
            var items: [StateBulkItem] = []
            for key in keys {
                do {
                    let response = try await get(key: key, metadata: metadata, deadline: deadline)
                    items.append(StateBulkItem(key: key, found: response.found, value: response.value, etag: response.etag, error: nil))
                } catch where error.status != .deadlineExceeded {
                    items.append(StateBulkItem(key: key, found: false, value: [], etag: nil, error: error.message))
                }
            }
            return items
        }
        let handle = instanceHandle
        return try await PendingCall<[StateBulkItem]>.run("bulk_get", deadline: deadline) { call, context in
            let arena = call.arena
            let (pairs, count) = arena.keyValues(metadata)
            let request = arena.value(molt_state_bulk_get_request(
                struct_size: UInt32(MemoryLayout<molt_state_bulk_get_request>.size), key_count: UInt32(keys.count),
                keys: arena.array(keys.map { Optional(arena.string($0)) }), parallelism: parallelism,
                metadata_count: count, metadata: pairs))
            bulkGet(handle, request, { context, result in
                let outcome: Result<[StateBulkItem], PluginError>
                if let result, result.pointee.status == MOLT_OK {
                    let raw = UnsafeBufferPointer(start: result.pointee.items, count: result.pointee.items == nil ? 0 : Int(result.pointee.item_count))
                    outcome = .success(raw.map { item in
                        StateBulkItem(key: copiedString(item.key) ?? "", found: item.found, value: item.found ? copiedBytes(item.value) : [],
                                      etag: copiedString(item.etag), error: copiedString(item.error))
                    })
                } else {
                    outcome = .failure(failure(result?.pointee.status ?? MOLT_ERR_INTERNAL, result?.pointee.message, operation: "bulk_get"))
                }
                PendingCall.finish(context, outcome)
            }, context)
        }.get()
    }

    /// All operations atomically, or none (the plugin says why).
    public func transact(_ operations: [StateOperation], metadata: [String: String] = [:], deadline: CallDeadline? = nil) async throws(PluginError) {
        guard let transact = binary.symbols.stateTransact else { throw Self.unsupported("transactions", binary) }
        let handle = instanceHandle
        try await PendingCall<Void>.run("transact", deadline: deadline) { call, context in
            let arena = call.arena
            let (pairs, count) = arena.keyValues(metadata)
            let cOperations = operations.map { operation in
                switch operation {
                case .set(let set):
                    molt_state_operation(type: MOLT_STATE_OPERATION_SET, set_request: Self.cSetRequest(set, in: arena), delete_request: nil)
                case .delete(let delete):
                    molt_state_operation(type: MOLT_STATE_OPERATION_DELETE, set_request: nil, delete_request: Self.cDeleteRequest(delete, in: arena))
                }
            }
            let request = arena.value(molt_state_transact_request(
                struct_size: UInt32(MemoryLayout<molt_state_transact_request>.size), operation_count: UInt32(operations.count),
                operations: arena.array(cOperations), metadata_count: count, metadata: pairs))
            transact(handle, request, { context, result in
                PendingCall.finish(context, writeOutcome(result, operation: "transact"))
            }, context)
        }.get()
    }

    private static func cSetRequest(_ request: StateSetRequest, in arena: CArena) -> UnsafePointer<molt_state_set_request> {
        let (pairs, count) = arena.keyValues(request.metadata)
        return arena.value(molt_state_set_request(
            struct_size: UInt32(MemoryLayout<molt_state_set_request>.size), key: arena.string(request.key),
            value: arena.bytes(request.value), etag: arena.optionalString(request.etag), concurrency: request.concurrency.rawValue,
            consistency: request.consistency.rawValue, has_ttl: request.ttlInSeconds != nil,
            ttl_in_seconds: request.ttlInSeconds ?? 0, metadata_count: count, metadata: pairs))
    }

    private static func cDeleteRequest(_ request: StateDeleteRequest, in arena: CArena) -> UnsafePointer<molt_state_delete_request> {
        let (pairs, count) = arena.keyValues(request.metadata)
        return arena.value(molt_state_delete_request(
            struct_size: UInt32(MemoryLayout<molt_state_delete_request>.size), key: arena.string(request.key),
            etag: arena.optionalString(request.etag), concurrency: request.concurrency.rawValue,
            consistency: request.consistency.rawValue, metadata_count: count, metadata: pairs))
    }
}

private func writeOutcome(_ result: UnsafePointer<molt_state_write_result>?, operation: String) -> Result<Void, PluginError> {
    if let result, result.pointee.status == MOLT_OK { return .success(()) }
    return .failure(failure(result?.pointee.status ?? MOLT_ERR_INTERNAL, result?.pointee.message, operation: operation))
}
