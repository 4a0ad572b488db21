// The lock operations (molt_lock_try_lock, molt_lock_unlock). Public, or release builds drop them.
public import PluginABI
import PluginKit

/// Calls into the registered component type, opened once from the existential.
private struct LockDriver: Sendable {
    let tryLock: @Sendable (UnsafeMutableRawPointer, LockRequest, TryLockReply) -> Void
    let unlock: @Sendable (UnsafeMutableRawPointer, LockRequest, UnlockReply) -> Void

    init<T: LockComponent>(_: T.Type) {
        tryLock = { component(at: $0, as: T.self).tryLock($1, reply: $2) }
        unlock = { component(at: $0, as: T.self).unlock($1, reply: $2) }
    }
}

/// nil when the registered component is not a LockComponent (then every call fails UNSUPPORTED).
private let driver: LockDriver? =
    (Registration.shared.componentType as? any LockComponent.Type).map { LockDriver($0) }

private let lockRequestEnd = ABILayout.end(of: \molt_lock_request.expiry_in_seconds)

extension LockRequest {
    fileprivate init(_ request: UnsafePointer<molt_lock_request>?) throws(PluginError) {
        guard let request, Int(request.pointee.struct_size) >= lockRequestEnd else {
            throw .invalidArgument("lock request is NULL or too small (struct_size)")
        }
        let r = request.pointee
        guard let resource = r.resource_id, let owner = r.lock_owner else {
            throw .invalidArgument("lock request without resource_id or lock_owner")
        }
        self.init(
            resourceID: String(cString: resource), owner: String(cString: owner),
            expiryInSeconds: r.expiry_in_seconds)
    }
}

@Sendable
private func deliverTryLock(_ done: UnsafeRawPointer?, _ context: UnsafeMutableRawPointer?, _ result: Result<Bool, PluginError>) {
    let done = unsafeBitCast(done!, to: molt_try_lock_done.self)
    var r = molt_try_lock_result()
    r.struct_size = UInt32(MemoryLayout<molt_try_lock_result>.size)
    switch result {
    case .success(let acquired):
        r.status = MOLT_OK
        r.acquired = acquired
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
private func deliverUnlock(
    _ done: UnsafeRawPointer?, _ context: UnsafeMutableRawPointer?, _ result: Result<UnlockStatus, PluginError>
) {
    let done = unsafeBitCast(done!, to: molt_unlock_done.self)
    var r = molt_unlock_result()
    r.struct_size = UInt32(MemoryLayout<molt_unlock_result>.size)
    switch result {
    case .success(let status):
        r.status = MOLT_OK
        r.unlock_status = status.rawValue
        done(context, &r)
    case .failure(let error):
        r.status = error.cStatus
        r.unlock_status = MOLT_UNLOCK_INTERNAL_ERROR
        error.cMessage.withCString { message in
            r.message = message
            done(context, &r)
        }
    }
}

@_cdecl("molt_lock_try_lock")
public func _moltLockTryLock(
    _ instance: molt_instance?, _ request: UnsafePointer<molt_lock_request>?,
    _ done: molt_try_lock_done?, _ callContext: UnsafeMutableRawPointer?
) {
    guard let done else { return }  // nothing could ever be reported
    let reply = TryLockReply(done: unsafeBitCast(done, to: UnsafeRawPointer.self), context: callContext, deliver: deliverTryLock)
    guard let instance else { reply.fail(.invalidArgument("molt_lock_try_lock: instance is NULL")); return }
    guard let driver else { reply.fail(.unsupported("molt_lock_try_lock: this plugin's component is not a lock")); return }
    do throws(PluginError) {
        driver.tryLock(instance, try LockRequest(request), reply)
    } catch {
        reply.fail(error)
    }
}

@_cdecl("molt_lock_unlock")
public func _moltLockUnlock(
    _ instance: molt_instance?, _ request: UnsafePointer<molt_lock_request>?,
    _ done: molt_unlock_done?, _ callContext: UnsafeMutableRawPointer?
) {
    guard let done else { return }
    let reply = UnlockReply(done: unsafeBitCast(done, to: UnsafeRawPointer.self), context: callContext, deliver: deliverUnlock)
    guard let instance else { reply.fail(.invalidArgument("molt_lock_unlock: instance is NULL")); return }
    guard let driver else { reply.fail(.unsupported("molt_lock_unlock: this plugin's component is not a lock")); return }
    do throws(PluginError) {
        driver.unlock(instance, try LockRequest(request), reply)
    } catch {
        reply.fail(error)
    }
}
