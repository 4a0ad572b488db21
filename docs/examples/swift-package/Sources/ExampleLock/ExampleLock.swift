// An in-memory lock whose held locks survive a reload or a swap to another version: the old
// instance exports them, the new one imports them (state format 1, written with ByteWriter).
public import PluginKit
public import PluginKitLock
public import PluginKitStateTransfer
import Synchronization

/// What differs between the versions built from this code (one thin target each).
public protocol ExampleLockVersion: Sendable {
    static var version: String { get }
}

public final class ExampleLock<V: ExampleLockVersion>: LockComponent, StateTransferable {
    public static var name: String { "example-swift-lock" }
    public static var version: String { V.version }
    public static var description: String { "In-memory lock with state transfer (plugin author's guide)" }
    /// Format 1: a UInt32 count, then per lock its resource id, owner and remaining milliseconds (Int64).
    /// A version that changes the format adds `stateFormats` to `ExampleLockVersion`.
    public static var stateFormats: ClosedRange<UInt32> { 1...1 }
    /// Held locks live only in the instance (MOLT_PLUGIN_HOLDS_STATE): molt refuses a reload or swap that
    /// could not hand them over.
    public static var holdsState: Bool { true }

    private let locks = Mutex<[String: (owner: String, until: ContinuousClock.Instant)]>([:])

    public init(config: Config, host: HostServices) throws(PluginError) {
        host.log(.info, "\(Self.name) \(Self.version) started for component \(config.componentName)")
    }

    public func tryLock(_ request: LockRequest, reply: TryLockReply) {
        let now = ContinuousClock.now
        reply.succeed(locks.withLock { locks in
            if let held = locks[request.resourceID], held.until > now { return false }  // held, not expired
            locks[request.resourceID] = (request.owner, now + .seconds(request.expiryInSeconds))
            return true
        })
    }

    public func unlock(_ request: LockRequest, reply: UnlockReply) {
        reply.succeed(locks.withLock { locks -> UnlockStatus in
            guard let held = locks[request.resourceID], held.until > .now else { return .lockDoesNotExist }
            guard held.owner == request.owner else { return .lockBelongsToOthers }
            locks[request.resourceID] = nil
            return .success
        })
    }

    public func exportState(format: UInt32) throws(PluginError) -> [UInt8] {
        let now = ContinuousClock.now
        let live = locks.withLock { $0.filter { $0.value.until > now } }
        var out = ByteWriter()
        out.append(UInt32(live.count))
        for (resource, held) in live {
            out.append(string: resource)
            out.append(string: held.owner)
            out.append(milliseconds(held.until - now))
        }
        return out.bytes
    }

    public func importState(_ bytes: [UInt8], format: UInt32) throws(PluginError) {
        var input = ByteReader(bytes)
        let count = try input.read(UInt32.self, "lock count")
        let now = ContinuousClock.now
        var imported: [String: (owner: String, until: ContinuousClock.Instant)] = [:]
        for _ in 0..<count {
            let resource = try input.readString("resource id")
            let owner = try input.readString("lock owner")
            let remaining = try input.read(Int64.self, "remaining milliseconds")
            imported[resource] = (owner, now + .milliseconds(remaining))
        }
        try input.expectEnd()
        locks.withLock { $0 = imported }
    }
}

private func milliseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds * 1000 + attoseconds / 1_000_000_000_000_000
}
