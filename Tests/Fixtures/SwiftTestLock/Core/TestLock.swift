// swift-testlock: an in-memory Dapr lock for the loader and engine tests, written with PluginKit.
// Both versions share this code; V1 and V2 differ only in the version string and state formats.
public import PluginKit
public import PluginKitLock
public import PluginKitInPlace
public import PluginKitStateTransfer
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What distinguishes one version of the test plugin from another.
public protocol TestLockVersion: Sendable {
    static var version: String { get }
    static var stateFormats: ClosedRange<UInt32> { get }
}

/// Configuration keys:
/// - `greeting` (applies in place): logged at init and on every apply.
/// - `capacity` (needs a reload; deprecated alias `max_locks`): how many locks may be held at once;
///   a try_lock beyond it fails UNAVAILABLE, and an import of more locks is refused.
/// - `not_ready_polls` (needs a reload): readiness answers NOT_READY this many times first.
///
/// State formats: 1 = the held locks (resource, owner, remaining milliseconds); 2 = a "STL2" header,
/// the number of locks granted so far, then the same locks. V1 speaks 1...1, V2 1...2.
public final class TestLock<V: TestLockVersion>: LockComponent, InPlaceConfigurable, StateTransferable {
    public static var name: String { "swift-testlock" }
    public static var version: String { V.version }
    public static var description: String { "In-memory Dapr lock written in Swift with PluginKit (test fixture)" }
    public static var stateFormats: ClosedRange<UInt32> { V.stateFormats }
    /// Held locks live only in memory (and transfer, so reloads and swaps keep them).
    public static var holdsState: Bool { true }
    public static var configKeys: [ConfigKey] {
        [
            ConfigKey("greeting", description: "Logged at init and on every apply", default: "hello",
                      appliesInPlace: true),
            ConfigKey("capacity", description: "Most locks held at once", default: "10000",
                      deprecatedAliases: ["max_locks"]),
            ConfigKey("not_ready_polls", description: "Readiness answers NOT_READY this many times first",
                      default: "0"),
        ]
    }

    /// The settings that need a new instance to change.
    struct Settings: Equatable {
        var capacity: Int
        var notReadyPolls: Int

        init(_ config: Config) throws(PluginError) {
            capacity = try config.integer("capacity", default: 10000, in: 1...1_000_000)
            notReadyPolls = try config.integer("not_ready_polls", default: 0, in: 0...1000)
        }
    }

    struct Held {
        var owner: String
        var expiresAt: Int64  // monotonic milliseconds
    }

    struct State {
        var locks: [String: Held] = [:]
        var greeting: String
        var granted: UInt64 = 0
        var readinessPolls = 0
    }

    private let settings: Settings
    private let host: HostServices
    private let state: Mutex<State>

    public init(config: Config, host: HostServices) throws(PluginError) {
        settings = try Settings(config)
        self.host = host
        let greeting = config.string("greeting", default: "hello")
        state = Mutex(State(greeting: greeting))
        host.log(.info, "\(greeting) from \(Self.name) \(Self.version) (component \(config.componentName), capacity \(settings.capacity))")
    }

    public func readiness() -> Readiness {
        state.withLock { state in
            guard state.readinessPolls < settings.notReadyPolls else { return .ready }
            state.readinessPolls += 1
            return .notReady("warming up (\(state.readinessPolls) of \(settings.notReadyPolls), key not_ready_polls)")
        }
    }

    public func shutdown() {
        host.log(.debug, "\(Self.name) \(Self.version) shutting down")
    }

    // MARK: Lock

    public func tryLock(_ request: LockRequest, reply: TryLockReply) {
        guard !request.resourceID.isEmpty, !request.owner.isEmpty else {
            reply.fail(.invalidArgument("resource_id and lock_owner must not be empty"))
            return
        }
        guard request.expiryInSeconds > 0 else {
            reply.fail(.invalidArgument("expiry_in_seconds must be > 0, got \(request.expiryInSeconds)"))
            return
        }
        let now = monotonicMilliseconds()
        let capacity = settings.capacity
        let outcome: Result<Bool, PluginError> = state.withLock { state in
            if let held = state.locks[request.resourceID], held.expiresAt > now { return .success(false) }
            if state.locks[request.resourceID] == nil && state.locks.count >= capacity {
                state.locks = state.locks.filter { $0.value.expiresAt > now }
                if state.locks.count >= capacity {
                    return .failure(.unavailable("capacity of \(capacity) locks reached (key capacity)"))
                }
            }
            state.locks[request.resourceID] = Held(
                owner: request.owner, expiresAt: now + Int64(request.expiryInSeconds) * 1000)
            state.granted += 1
            return .success(true)
        }
        reply.complete(outcome)
    }

    public func unlock(_ request: LockRequest, reply: UnlockReply) {
        let now = monotonicMilliseconds()
        let status: UnlockStatus = state.withLock { state in
            guard let held = state.locks[request.resourceID], held.expiresAt > now else {
                state.locks[request.resourceID] = nil
                return .lockDoesNotExist
            }
            guard held.owner == request.owner else { return .lockBelongsToOthers }
            state.locks[request.resourceID] = nil
            return .success
        }
        reply.succeed(status)
    }

    // MARK: In-place configuration

    public func apply(config: Config) -> ApplyOutcome {
        let new: Settings
        do throws(PluginError) {
            new = try Settings(config)
        } catch {
            return .rejected(error.message)
        }
        if new.capacity != settings.capacity {
            return .needsReload("capacity changed from \(settings.capacity) to \(new.capacity); that needs a new instance")
        }
        if new.notReadyPolls != settings.notReadyPolls {
            return .needsReload("not_ready_polls changed; that needs a new instance")
        }
        let greeting = config.string("greeting", default: "hello")
        state.withLock { $0.greeting = greeting }
        host.log(.info, "\(greeting) from \(Self.name) \(Self.version) (configuration applied in place)")
        return .applied
    }

    // MARK: State transfer

    public func exportState(format: UInt32) throws(PluginError) -> [UInt8] {
        let now = monotonicMilliseconds()
        var out = ByteWriter()
        state.withLock { state in
            let live = state.locks.filter { $0.value.expiresAt > now }.sorted { $0.key < $1.key }
            if format == 2 {
                out.append(raw: Array("STL2".utf8))
                out.append(state.granted)
            }
            out.append(UInt32(live.count))
            for (resource, held) in live {
                out.append(string: resource)
                out.append(string: held.owner)
                out.append(held.expiresAt - now)
            }
        }
        return out.bytes
    }

    public func importState(_ bytes: [UInt8], format: UInt32) throws(PluginError) {
        var input = ByteReader(bytes)
        var granted: UInt64 = 0
        if format == 2 {
            guard try input.readRaw(4, "STL2 header") == Array("STL2".utf8) else {
                throw .invalidArgument("state format 2 without its STL2 header")
            }
            granted = try input.read(UInt64.self, "granted count")
        }
        let count = Int(try input.read(UInt32.self, "lock count"))
        guard count <= settings.capacity else {
            throw .invalidArgument("imported state holds \(count) locks, more than capacity \(settings.capacity)")
        }
        let now = monotonicMilliseconds()
        var locks: [String: Held] = [:]
        for _ in 0..<count {
            let resource = try input.readString("resource id")
            let owner = try input.readString("lock owner")
            let remaining = try input.read(Int64.self, "remaining milliseconds")
            if remaining > 0 { locks[resource] = Held(owner: owner, expiresAt: now + remaining) }
        }
        try input.expectEnd()
        state.withLock { state in
            state.locks = locks
            state.granted = max(granted, UInt64(locks.count))
        }
    }
}

private func monotonicMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
