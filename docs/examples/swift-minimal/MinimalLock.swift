// The smallest complete molt lock plugin written with PluginKit (see README.md beside this file).
import PluginKit
import PluginKitLock
import Synchronization

final class MinimalLock: LockComponent {
    static let name = "minimal-swift-lock"
    static let version = "0.1.0"
    static let description = "Minimal in-memory lock written in Swift (plugin author's guide)"
    /// Held locks live only in this instance (MOLT_PLUGIN_HOLDS_STATE): molt refuses a reload that would drop them.
    static var holdsState: Bool { true }

    private let locks = Mutex<[String: (owner: String, until: ContinuousClock.Instant)]>([:])

    init(config: Config, host: HostServices) throws(PluginError) {
        host.log(.info, "minimal-swift-lock started for component \(config.componentName)")
    }

    func tryLock(_ request: LockRequest, reply: TryLockReply) {
        let now = ContinuousClock.now
        reply.succeed(locks.withLock { locks in
            if let held = locks[request.resourceID], held.until > now { return false }  // held, not expired
            locks[request.resourceID] = (request.owner, now + .seconds(request.expiryInSeconds))
            return true
        })
    }

    func unlock(_ request: LockRequest, reply: UnlockReply) {
        reply.succeed(locks.withLock { locks -> UnlockStatus in
            guard let held = locks[request.resourceID], held.until > .now else { return .lockDoesNotExist }
            guard held.owner == request.owner else { return .lockBelongsToOthers }
            locks[request.resourceID] = nil
            return .success
        })
    }
}

// The one entry point PluginKit needs: tells it which type this plugin is.
@_cdecl("molt_pluginkit_component")
public func moltComponent() -> UnsafeRawPointer { PluginKit.export(MinimalLock.self) }
