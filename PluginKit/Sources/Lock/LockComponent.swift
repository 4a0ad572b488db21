public import PluginKit

/// A try_lock or unlock request, copied from the host's molt_lock_request.
public struct LockRequest: Sendable, Equatable {
    /// The lock's name.
    public var resourceID: String
    /// Who holds (or wants) the lock; only the owner may unlock.
    public var owner: String
    /// try_lock: > 0 (checked by the host); an expired lock is free for anyone. Unlock: ignore it.
    public var expiryInSeconds: Int32

    public init(resourceID: String, owner: String, expiryInSeconds: Int32) {
        self.resourceID = resourceID
        self.owner = owner
        self.expiryInSeconds = expiryInSeconds
    }
}

/// Dapr's unlock outcome (`molt_unlock_status`).
public enum UnlockStatus: Int32, Sendable {
    case success = 0
    case lockDoesNotExist = 1
    case lockBelongsToOthers = 2
    case internalError = 3
}

/// Completes a try_lock: `succeed(true)` when the caller now holds the lock, `succeed(false)` when
/// someone else does; `fail` only when the attempt itself failed.
public typealias TryLockReply = Reply<Bool>
/// Completes an unlock with Dapr's outcome; `fail` only when the attempt itself failed.
public typealias UnlockReply = Reply<UnlockStatus>

/// A component of kind "lock": Dapr's distributed lock. Operations are called from many threads at
/// once; each completes through its reply, inline or later from your own thread.
public protocol LockComponent: Component {
    func tryLock(_ request: LockRequest, reply: TryLockReply)
    func unlock(_ request: LockRequest, reply: UnlockReply)
}

extension LockComponent {
    public static var kind: ComponentKind { .lock }
}
