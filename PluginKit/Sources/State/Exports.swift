// The state operations (molt_state_get/set/delete/bulk_get). Public, or release builds drop them.
// bulk_get is always exported: StateComponent has a correct default built on get.
public import PluginABI
import PluginKit

private struct StateDriver: Sendable {
    let get: @Sendable (UnsafeMutableRawPointer, GetRequest, GetReply) -> Void
    let set: @Sendable (UnsafeMutableRawPointer, SetRequest, WriteReply) -> Void
    let delete: @Sendable (UnsafeMutableRawPointer, DeleteRequest, WriteReply) -> Void
    let bulkGet: @Sendable (UnsafeMutableRawPointer, BulkGetRequest, BulkGetReply) -> Void

    init<T: StateComponent>(_: T.Type) {
        get = { component(at: $0, as: T.self).get($1, reply: $2) }
        set = { component(at: $0, as: T.self).set($1, reply: $2) }
        delete = { component(at: $0, as: T.self).delete($1, reply: $2) }
        bulkGet = { component(at: $0, as: T.self).bulkGet($1, reply: $2) }
    }
}

private let driver: StateDriver? =
    (Registration.shared.componentType as? any StateComponent.Type).map { StateDriver($0) }

private let getRequestEnd = ABILayout.end(of: \molt_state_get_request.metadata)
private let setRequestEnd = ABILayout.end(of: \molt_state_set_request.metadata)
private let deleteRequestEnd = ABILayout.end(of: \molt_state_delete_request.metadata)
private let bulkGetRequestEnd = ABILayout.end(of: \molt_state_bulk_get_request.metadata)

private func requireKey(_ key: UnsafePointer<CChar>?) throws(PluginError) -> String {
    guard let key else { throw .invalidArgument("request without a key") }
    return String(cString: key)
}

extension GetRequest {
    init(_ request: UnsafePointer<molt_state_get_request>?) throws(PluginError) {
        guard let request, Int(request.pointee.struct_size) >= getRequestEnd else {
            throw .invalidArgument("get request is NULL or too small (struct_size)")
        }
        let r = request.pointee
        self.init(
            key: try requireKey(r.key), consistency: Consistency(rawValue: r.consistency),
            metadata: swiftDictionary(r.metadata, count: r.metadata_count))
    }
}

extension SetRequest {
    /// Also used by PluginKitStateTransact for the operations of a transaction.
    package init(_ request: UnsafePointer<molt_state_set_request>?) throws(PluginError) {
        guard let request, Int(request.pointee.struct_size) >= setRequestEnd else {
            throw .invalidArgument("set request is NULL or too small (struct_size)")
        }
        let r = request.pointee
        var ttl: TimeToLive? = nil
        if r.has_ttl {
            guard r.ttl_in_seconds > 0 || r.ttl_in_seconds == -1 else {
                throw .invalidArgument("ttlInSeconds must be > 0 or -1, got \(r.ttl_in_seconds)")
            }
            ttl = r.ttl_in_seconds == -1 ? .never : .seconds(r.ttl_in_seconds)
        }
        self.init(
            key: try requireKey(r.key), value: swiftBytes(r.value), etag: swiftString(r.etag),
            concurrency: Concurrency(rawValue: r.concurrency), consistency: Consistency(rawValue: r.consistency),
            ttl: ttl, metadata: swiftDictionary(r.metadata, count: r.metadata_count))
    }
}

extension DeleteRequest {
    /// Also used by PluginKitStateTransact for the operations of a transaction.
    package init(_ request: UnsafePointer<molt_state_delete_request>?) throws(PluginError) {
        guard let request, Int(request.pointee.struct_size) >= deleteRequestEnd else {
            throw .invalidArgument("delete request is NULL or too small (struct_size)")
        }
        let r = request.pointee
        self.init(
            key: try requireKey(r.key), etag: swiftString(r.etag), concurrency: Concurrency(rawValue: r.concurrency),
            consistency: Consistency(rawValue: r.consistency), metadata: swiftDictionary(r.metadata, count: r.metadata_count))
    }
}

extension BulkGetRequest {
    init(_ request: UnsafePointer<molt_state_bulk_get_request>?) throws(PluginError) {
        guard let request, Int(request.pointee.struct_size) >= bulkGetRequestEnd else {
            throw .invalidArgument("bulk get request is NULL or too small (struct_size)")
        }
        let r = request.pointee
        var keys: [String] = []
        if r.key_count > 0 {
            guard let list = r.keys else { throw .invalidArgument("bulk get request without keys") }
            keys.reserveCapacity(Int(r.key_count))
            for i in 0..<Int(r.key_count) { keys.append(try requireKey(list[i])) }
        }
        self.init(keys: keys, parallelism: Int(r.parallelism), metadata: swiftDictionary(r.metadata, count: r.metadata_count))
    }
}

@Sendable
private func deliverGet(_ done: UnsafeRawPointer?, _ context: UnsafeMutableRawPointer?, _ result: Result<StateItem?, PluginError>) {
    let done = unsafeBitCast(done!, to: molt_state_get_done.self)
    var r = molt_state_get_result()
    r.struct_size = UInt32(MemoryLayout<molt_state_get_result>.size)
    let arena = CArena()
    switch result {
    case .success(let item):
        r.status = MOLT_OK
        if let item {
            r.found = true
            r.value = arena.bytes(item.value)
            r.etag = arena.optionalString(item.etag)
            (r.metadata, r.metadata_count) = arena.pairs(item.metadata)
        }
    case .failure(let error):
        r.status = error.cStatus
        r.message = arena.string(error.cMessage)
    }
    withExtendedLifetime(arena) { done(context, &r) }
}

/// Also used by PluginKitStateTransact.
@Sendable
package func deliverWrite(_ done: UnsafeRawPointer?, _ context: UnsafeMutableRawPointer?, _ result: Result<Void, PluginError>) {
    let done = unsafeBitCast(done!, to: molt_state_write_done.self)
    var r = molt_state_write_result()
    r.struct_size = UInt32(MemoryLayout<molt_state_write_result>.size)
    switch result {
    case .success:
        r.status = MOLT_OK
        done(context, &r)
    case .failure(let error):
        r.status = error.cStatus
        error.cMessage.withCString { message in
            r.message = message
            done(context, &r)
        }
    }
}

@Sendable
private func deliverBulkGet(
    _ done: UnsafeRawPointer?, _ context: UnsafeMutableRawPointer?, _ result: Result<[BulkGetItem], PluginError>
) {
    let done = unsafeBitCast(done!, to: molt_state_bulk_get_done.self)
    var r = molt_state_bulk_get_result()
    r.struct_size = UInt32(MemoryLayout<molt_state_bulk_get_result>.size)
    let arena = CArena()
    switch result {
    case .success(let items):
        r.status = MOLT_OK
        let array = arena.array(of: molt_state_bulk_item.self, count: items.count)
        for (i, item) in items.enumerated() {
            var c = molt_state_bulk_item()
            c.key = arena.string(item.key)
            switch item.outcome {
            case .found(let stored):
                c.found = true
                c.value = arena.bytes(stored.value)
                c.etag = arena.optionalString(stored.etag)
            case .notFound:
                break
            case .failed(let message):
                c.error = arena.string(message.isEmpty ? "could not read this key" : message)
            }
            (array + i).initialize(to: c)
        }
        r.item_count = UInt32(items.count)
        r.items = UnsafePointer(array)
    case .failure(let error):
        r.status = error.cStatus
        r.message = arena.string(error.cMessage)
    }
    withExtendedLifetime(arena) { done(context, &r) }
}

private func notState(_ symbol: String) -> PluginError {
    .unsupported("\(symbol): this plugin's component is not a state store (or the instance is NULL)")
}

@_cdecl("molt_state_get")
public func _moltStateGet(
    _ instance: molt_instance?, _ request: UnsafePointer<molt_state_get_request>?,
    _ done: molt_state_get_done?, _ callContext: UnsafeMutableRawPointer?
) {
    guard let done else { return }
    let reply = GetReply(done: unsafeBitCast(done, to: UnsafeRawPointer.self), context: callContext, deliver: deliverGet)
    guard let instance, let driver else { reply.fail(notState("molt_state_get")); return }
    do throws(PluginError) { driver.get(instance, try GetRequest(request), reply) } catch { reply.fail(error) }
}

@_cdecl("molt_state_set")
public func _moltStateSet(
    _ instance: molt_instance?, _ request: UnsafePointer<molt_state_set_request>?,
    _ done: molt_state_write_done?, _ callContext: UnsafeMutableRawPointer?
) {
    guard let done else { return }
    let reply = WriteReply(done: unsafeBitCast(done, to: UnsafeRawPointer.self), context: callContext, deliver: deliverWrite)
    guard let instance, let driver else { reply.fail(notState("molt_state_set")); return }
    do throws(PluginError) { driver.set(instance, try SetRequest(request), reply) } catch { reply.fail(error) }
}

@_cdecl("molt_state_delete")
public func _moltStateDelete(
    _ instance: molt_instance?, _ request: UnsafePointer<molt_state_delete_request>?,
    _ done: molt_state_write_done?, _ callContext: UnsafeMutableRawPointer?
) {
    guard let done else { return }
    let reply = WriteReply(done: unsafeBitCast(done, to: UnsafeRawPointer.self), context: callContext, deliver: deliverWrite)
    guard let instance, let driver else { reply.fail(notState("molt_state_delete")); return }
    do throws(PluginError) { driver.delete(instance, try DeleteRequest(request), reply) } catch { reply.fail(error) }
}

@_cdecl("molt_state_bulk_get")
public func _moltStateBulkGet(
    _ instance: molt_instance?, _ request: UnsafePointer<molt_state_bulk_get_request>?,
    _ done: molt_state_bulk_get_done?, _ callContext: UnsafeMutableRawPointer?
) {
    guard let done else { return }
    let reply = BulkGetReply(done: unsafeBitCast(done, to: UnsafeRawPointer.self), context: callContext, deliver: deliverBulkGet)
    guard let instance, let driver else { reply.fail(notState("molt_state_bulk_get")); return }
    do throws(PluginError) { driver.bulkGet(instance, try BulkGetRequest(request), reply) } catch { reply.fail(error) }
}
