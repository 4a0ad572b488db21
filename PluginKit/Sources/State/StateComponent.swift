public import PluginKit
import Synchronization

/// Dapr's concurrency mode of a write (`molt_concurrency`); unknown values from a newer host are kept.
public struct Concurrency: RawRepresentable, Hashable, Sendable {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// The store's default (last-write).
    public static let unspecified = Concurrency(rawValue: 0)
    /// A write needs the current etag (or, without one, a new key).
    public static let firstWrite = Concurrency(rawValue: 1)
    public static let lastWrite = Concurrency(rawValue: 2)
}

/// Dapr's consistency mode (`molt_consistency`); unknown values from a newer host are kept.
public struct Consistency: RawRepresentable, Hashable, Sendable {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let unspecified = Consistency(rawValue: 0)
    public static let eventual = Consistency(rawValue: 1)
    public static let strong = Consistency(rawValue: 2)
}

/// A stored value as `get` returns it.
public struct StateItem: Sendable, Equatable {
    public var value: [UInt8]
    /// nil when the store has none.
    public var etag: String?
    /// Response metadata, e.g. ttlExpireTime.
    public var metadata: [String: String]
    public init(value: [UInt8], etag: String? = nil, metadata: [String: String] = [:]) {
        self.value = value
        self.etag = etag
        self.metadata = metadata
    }
}

public struct GetRequest: Sendable, Equatable {
    public var key: String
    public var consistency: Consistency
    /// Dapr request metadata, e.g. contentType.
    public var metadata: [String: String]
    public init(key: String, consistency: Consistency = .unspecified, metadata: [String: String] = [:]) {
        self.key = key
        self.consistency = consistency
        self.metadata = metadata
    }
}

/// The time to live of a set.
public enum TimeToLive: Sendable, Equatable {
    /// Expires after that many seconds (> 0).
    case seconds(Int64)
    /// Never expires.
    case never
}

public struct SetRequest: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]
    /// nil: no etag given.
    public var etag: String?
    public var concurrency: Concurrency
    public var consistency: Consistency
    /// nil: the component's default TTL applies.
    public var ttl: TimeToLive?
    public var metadata: [String: String]
    public init(
        key: String, value: [UInt8], etag: String? = nil, concurrency: Concurrency = .unspecified,
        consistency: Consistency = .unspecified, ttl: TimeToLive? = nil, metadata: [String: String] = [:]
    ) {
        self.key = key
        self.value = value
        self.etag = etag
        self.concurrency = concurrency
        self.consistency = consistency
        self.ttl = ttl
        self.metadata = metadata
    }
}

public struct DeleteRequest: Sendable, Equatable {
    public var key: String
    /// nil: no etag given.
    public var etag: String?
    public var concurrency: Concurrency
    public var consistency: Consistency
    public var metadata: [String: String]
    public init(
        key: String, etag: String? = nil, concurrency: Concurrency = .unspecified,
        consistency: Consistency = .unspecified, metadata: [String: String] = [:]
    ) {
        self.key = key
        self.etag = etag
        self.concurrency = concurrency
        self.consistency = consistency
        self.metadata = metadata
    }
}

public struct BulkGetRequest: Sendable, Equatable {
    public var keys: [String]
    /// 0: the plugin's choice.
    public var parallelism: Int
    public var metadata: [String: String]
    public init(keys: [String], parallelism: Int = 0, metadata: [String: String] = [:]) {
        self.keys = keys
        self.parallelism = parallelism
        self.metadata = metadata
    }
}

/// One key of a bulk get, in request order.
public struct BulkGetItem: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case found(StateItem)
        case notFound
        /// Why this key could not be read (the other keys still count).
        case failed(String)
    }
    public var key: String
    public var outcome: Outcome
    public init(key: String, outcome: Outcome) {
        self.key = key
        self.outcome = outcome
    }
}

/// Completes a get: `succeed(item)`, or `succeed(nil)` when the key does not exist (not an error).
public typealias GetReply = Reply<StateItem?>
/// Completes a set, delete or transaction: `succeed()` or `fail(...)` (e.g. `.etagMismatch`).
public typealias WriteReply = Reply<Void>
/// Completes a bulk get with one item per requested key, in request order.
public typealias BulkGetReply = Reply<[BulkGetItem]>

/// A component of kind "state": Dapr's state store. Operations are called from many threads at
/// once; each completes through its reply, inline or later from your own thread. For transactions,
/// conform to `TransactionalStateComponent` (module PluginKitStateTransact).
public protocol StateComponent: Component {
    func get(_ request: GetRequest, reply: GetReply)
    func set(_ request: SetRequest, reply: WriteReply)
    func delete(_ request: DeleteRequest, reply: WriteReply)
    /// Default: one `get` per key, at most `parallelism` (or 16) outstanding at a time.
    func bulkGet(_ request: BulkGetRequest, reply: BulkGetReply)
}

extension StateComponent {
    public static var kind: ComponentKind { .state }

    public func bulkGet(_ request: BulkGetRequest, reply: BulkGetReply) {
        BulkGetter(component: self, request: request, reply: reply).start()
    }
}

/// The default bulk get: issues gets through a window and gathers them in request order. Gets
/// that complete inline do not recurse: whoever holds the "pumping" role issues the next ones.
private final class BulkGetter<C: StateComponent>: Sendable {
    struct Progress {
        var next = 0
        var inFlight = 0
        var finished = 0
        var pumping = false
        var items: [BulkGetItem.Outcome?]
    }

    let component: C
    let request: BulkGetRequest
    let reply: BulkGetReply
    let window: Int
    let progress: Mutex<Progress>

    init(component: C, request: BulkGetRequest, reply: BulkGetReply) {
        self.component = component
        self.request = request
        self.reply = reply
        window = request.parallelism > 0 ? request.parallelism : 16
        progress = Mutex(Progress(items: Array(repeating: nil, count: request.keys.count)))
    }

    func start() {
        if request.keys.isEmpty {
            reply.succeed([])
        } else {
            kick()
        }
    }

    private func kick() {
        let shouldPump = progress.withLock { p in
            if p.pumping { return false }
            p.pumping = true
            return true
        }
        if shouldPump { pump() }
    }

    private func pump() {
        while true {
            let index: Int? = progress.withLock { p in
                if p.next < request.keys.count && p.inFlight < window {
                    p.inFlight += 1
                    p.next += 1
                    return p.next - 1
                }
                p.pumping = false
                return nil
            }
            guard let index else { return }
            let get = GetRequest(key: request.keys[index], metadata: request.metadata)
            component.get(get, reply: GetReply { result in self.finish(index, result) })
        }
    }

    private func finish(_ index: Int, _ result: Result<StateItem?, PluginError>) {
        let outcome: BulkGetItem.Outcome
        switch result {
        case .success(let item?): outcome = .found(item)
        case .success(nil): outcome = .notFound
        case .failure(let error): outcome = .failed(error.message.isEmpty ? "get failed" : error.message)
        }
        let all: [BulkGetItem.Outcome?]? = progress.withLock { p in
            p.items[index] = outcome
            p.inFlight -= 1
            p.finished += 1
            return p.finished == request.keys.count ? p.items : nil
        }
        if let all {
            reply.succeed(zip(request.keys, all).map { BulkGetItem(key: $0, outcome: $1!) })
        } else {
            kick()
        }
    }
}
