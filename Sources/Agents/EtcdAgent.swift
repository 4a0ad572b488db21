import Config
import Engine
import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2
import Layers
import Logging
import MoltProtos
import ServiceLifecycle
import Synchronization

/// Watches a key prefix on etcd v3 and feeds the common and app layers of `ComponentLayers`:
///
///     <prefix>common/<id>            fleet-wide defaults (common layer)
///     <prefix>apps/<app-id>/<id>     this app's settings (app layer); other apps' keys are ignored
///
/// Each key is one source whose value is a component file in any format molt reads (one component
/// per key is the recommended layout; a value with several is applied all-or-nothing).
///
/// Protocol: a full sync (Range over the prefix) gives the state at revision R; then one Watch from
/// R + 1. The events of one revision (an etcd transaction) are applied together; every response
/// advances the revision seen, so after a disconnect the watch resumes from the revision after it and
/// no change is missed. If that revision was compacted meanwhile, etcd cancels the watch and the agent
/// syncs fully again (keys deleted meanwhile are removed). While etcd is unreachable the running
/// components stay as they are and the agent retries with exponential backoff (100 ms to 5 s, over the
/// endpoints in turn). A value that does not parse, or whose apply fails, is logged and leaves the
/// running components as they are; the next full sync tries it again.
///
/// A value's Dapr `kind: Subscription` documents are that key's declarative subscriptions (source id
/// `etcd:<key>`): handed to `subscriptions` once the key's components applied, `[]` when the key is deleted.
public final class EtcdAgent: Service, Sendable {
    public let endpoints: [String]
    public let prefix: String
    public let appID: String
    private let layers: ComponentLayers
    private let subscriptions: DeclarativeSubscriptions?
    /// Keys whose value declared subscriptions, so that a full sync can retract those of keys deleted meanwhile.
    private let subscriptionKeys = Mutex<Set<String>>([])
    private let logger: Logger
    /// Set once the first full sync finished: until then the sidecar is not ready (up to `syncDeadline`).
    private let synced = Atomic<Bool>(false)
    private let syncDeadline: ContinuousClock.Instant
    /// The revision up to which every change has been applied (or reported).
    private let revision = Atomic<Int64>(0)
    /// Set when a watch was established, so that the first retry after losing it is quick.
    private let watching = Atomic<Bool>(false)

    public init(endpoints: [String], prefix: String, appID: String, layers: ComponentLayers,
                subscriptions: DeclarativeSubscriptions? = nil, initialSyncTimeout: Duration,
                logger: Logger = Logger(label: "molt.agent.etcd")) {
        self.subscriptions = subscriptions
        self.endpoints = endpoints
        self.prefix = prefix
        self.appID = appID
        self.layers = layers
        self.logger = logger
        self.syncDeadline = ContinuousClock.now + initialSyncTimeout
    }

    /// True once the first sync finished, or once the initial sync timeout passed without it (then
    /// molt serves its other components; etcd's are applied when it answers).
    public var initialSyncDone: Bool { synced.load(ordering: .relaxed) || ContinuousClock.now >= syncDeadline }

    private struct Compacted: Error { let revision: Int64 }
    private struct WatchEnded: Error, CustomStringConvertible { let description: String }

    public func run() async throws {
        logger.info("etcd agent starting", metadata: ["endpoints": "\(endpoints)", "prefix": "\(prefix)", "app_id": "\(appID)"])
        await cancelWhenGracefulShutdown { await self.loop() }
    }

    private func loop() async {
        var needsFullSync = true
        var backoff = Duration.milliseconds(100)
        var attempt = 0
        while !Task.isCancelled {
            let endpoint = endpoints[attempt % endpoints.count]
            do {
                let (host, port) = try Self.split(endpoint)
                var config = HTTP2ClientTransport.Posix.Config.defaults
                // Notice a dead etcd (or a dead path to it) on a quiet watch within ~15 s.
                config.connection.keepalive = .init(time: .seconds(10), timeout: .seconds(5), allowWithoutCalls: true)
                config.backoff = .init(initial: .milliseconds(100), max: .seconds(1), multiplier: 2, jitter: 0.1)
                try await withGRPCClient(transport: try .http2NIOPosix(target: .dns(host: host, port: port),
                                                                       transportSecurity: .plaintext, config: config)) { client in
                    let kv = Etcdserverpb_KV.Client(wrapping: client)
                    let watch = Etcdserverpb_Watch.Client(wrapping: client)
                    if needsFullSync {
                        try await self.fullSync(kv)
                        needsFullSync = false
                    }
                    self.watching.store(false, ordering: .relaxed)
                    try await self.watch(watch, endpoint: endpoint)
                }
            } catch let compacted as Compacted {
                logger.warning("etcd agent resync after compaction: the watch's revision was compacted",
                               metadata: ["from_revision": "\(revision.load(ordering: .relaxed) + 1)", "compacted": "\(compacted.revision)"])
                needsFullSync = true
                continue
            } catch {
                if Task.isCancelled { break }
                if watching.exchange(false, ordering: .relaxed) { backoff = .milliseconds(100) }  // it was connected: retry soon
                logger.warning("etcd agent disconnected; serving the last configuration, retrying",
                               metadata: ["endpoint": "\(endpoint)", "retry_in_ms": "\(backoff.wholeMilliseconds)", "error": "\(error)"])
                attempt += 1
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    /// Reads every key under the prefix and makes the layers match: new and changed keys applied
    /// (each key on its own, so one bad key does not hold back the others), vanished keys removed.
    private func fullSync(_ kv: Etcdserverpb_KV.Client<HTTP2ClientTransport.Posix>) async throws {
        var request = Etcdserverpb_RangeRequest()
        request.key = Data(prefix.utf8)
        request.rangeEnd = Self.rangeEnd(of: request.key)
        var options = CallOptions.defaults
        options.timeout = .seconds(10)
        options.waitForReady = false
        let response = try await kv.range(request, options: options)
        var present: [ConfigLayer: [String: String]] = [:]
        for pair in response.kvs {
            guard let key = String(data: pair.key, encoding: .utf8), let layer = layer(of: key) else { continue }
            present[layer, default: [:]][key] = String(decoding: pair.value, as: UTF8.self)
        }
        let current = layers.layers
        var changes: [(key: String, layer: ConfigLayer, value: String?)] = []
        for layer in [ConfigLayer.common, .app] {
            let gone = Set(current.sourceNames(layer)).union(subscriptionKeys.withLock { $0 }.filter { self.layer(of: $0) == layer })
            for source in gone.sorted() where source.hasPrefix(prefix) && present[layer]?[source] == nil {
                changes.append((source, layer, nil))
            }
            for (key, value) in (present[layer] ?? [:]).sorted(by: { $0.key < $1.key }) {
                changes.append((key, layer, value))
            }
        }
        // Keys that touch the same components (a common key and the app key overriding it) are applied
        // together, so a component starts with its merged configuration, never a transient one; unrelated
        // keys are applied apart, so one bad key does not hold back the others. Unchanged sources merge
        // to unchanged definitions: the layers apply nothing for them.
        var declared: [String: [SubscriptionSpec]] = [:]
        let parsed = changes.compactMap { parse([$0], revision: response.header.revision, subscriptions: &declared)?.first }
        var failed = changes.count - parsed.count
        for group in Self.groupedByComponent(parsed, current: current) {
            if await !apply(group, keys: group.map(\.source), revision: response.header.revision) {
                failed += group.count
            } else {
                await reconcileSubscriptions(group.map(\.source), declared)
            }
        }
        revision.store(response.header.revision, ordering: .relaxed)
        synced.store(true, ordering: .relaxed)
        logger.info("etcd agent synced", metadata: ["revision": "\(response.header.revision)", "keys": "\(response.kvs.count)",
                                                   "keys_not_applied": "\(failed)"])
    }

    /// Watches from the revision after the last one seen until the stream breaks (throws).
    private func watch(_ client: Etcdserverpb_Watch.Client<HTTP2ClientTransport.Posix>, endpoint: String) async throws {
        var create = Etcdserverpb_WatchCreateRequest()
        create.key = Data(prefix.utf8)
        create.rangeEnd = Self.rangeEnd(of: create.key)
        create.startRevision = revision.load(ordering: .relaxed) + 1
        create.progressNotify = true
        var watchRequest = Etcdserverpb_WatchRequest()
        watchRequest.createRequest = create
        let request = watchRequest
        var options = CallOptions.defaults
        options.waitForReady = false
        let startRevision = create.startRevision
        try await client.watch(options: options, requestProducer: { writer in
            try await writer.write(request)
            // The request side stays open for the life of the watch; the call ends it.
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        }, onResponse: { response in
            for try await message in response.messages {
                if message.compactRevision != 0 { throw Compacted(revision: message.compactRevision) }
                if message.canceled { throw WatchEnded(description: "etcd canceled the watch: \(message.cancelReason)") }
                if message.created {
                    self.watching.store(true, ordering: .relaxed)
                    self.logger.info("etcd agent watch", metadata: ["endpoint": "\(endpoint)", "from_revision": "\(startRevision)"])
                }
                try await self.handle(message.events)
                // A progress notification (no events; not the creation response, whose header is merely
                // the store's current revision) says every change up to its revision was sent.
                let seen = message.header.revision
                if message.events.isEmpty, !message.created, seen > self.revision.load(ordering: .relaxed) {
                    self.revision.store(seen, ordering: .relaxed)
                }
            }
            throw WatchEnded(description: "etcd closed the watch")
        })
    }

    /// Applies the events of one watch response, one revision (transaction) at a time, in order.
    private func handle(_ events: [Etcdserverpb_Event]) async throws {
        var index = events.startIndex
        while index < events.endIndex {
            let revision = events[index].kv.modRevision
            var changes: [(key: String, layer: ConfigLayer, value: String?)] = []
            while index < events.endIndex, events[index].kv.modRevision == revision {
                let event = events[index]
                index += 1
                guard let key = String(data: event.kv.key, encoding: .utf8), let layer = layer(of: key) else { continue }
                changes.append((key, layer, event.type == .delete ? nil : String(decoding: event.kv.value, as: UTF8.self)))
            }
            // One transaction: all of it or (a value that does not parse, an apply that fails) none of it.
            var declared: [String: [SubscriptionSpec]] = [:]
            if !changes.isEmpty, let parsed = parse(changes, revision: revision, subscriptions: &declared),
               await apply(parsed, keys: changes.map(\.key), revision: revision) {
                await reconcileSubscriptions(changes.map(\.key), declared)
            }
            self.revision.store(revision, ordering: .relaxed)
        }
    }

    /// Hands each key's subscriptions (none for a deleted key) to `subscriptions`, for keys that declare some now
    /// or did before.
    private func reconcileSubscriptions(_ keys: [String], _ declared: [String: [SubscriptionSpec]]) async {
        guard let subscriptions else { return }
        for key in keys {
            let now = declared[key] ?? []
            let before = subscriptionKeys.withLock { known in
                now.isEmpty ? known.remove(key) != nil : !known.insert(key).inserted
            }
            if !now.isEmpty || before { await subscriptions("etcd:\(key)", now) }
        }
    }

    /// The layer changes for key changes, and each key's subscriptions into `subscriptions`; nil (and logged) when a
    /// value does not parse.
    private func parse(_ changes: [(key: String, layer: ConfigLayer, value: String?)], revision: Int64,
                       subscriptions: inout [String: [SubscriptionSpec]]) -> [LayerChange]? {
        var layerChanges: [LayerChange] = []
        for change in changes {
            guard let value = change.value else {
                layerChanges.append(LayerChange(layer: change.layer, source: change.key, components: []))
                continue
            }
            do {
                let loaded = try ComponentSources.parse(value, file: "etcd:\(change.key)")
                for warning in loaded.warnings { logger.warning("\(warning)") }
                subscriptions[change.key] = loaded.subscriptions
                layerChanges.append(LayerChange(layer: change.layer, source: change.key, components: loaded.components))
            } catch {
                logger.error("etcd agent: key not applied; the running components are unchanged",
                             metadata: ["keys": "\(changes.map(\.key))", "revision": "\(revision)", "error": "\(error)"])
                return nil
            }
        }
        return layerChanges
    }

    /// Applies layer changes together; false (and logged) when the apply failed.
    private func apply(_ changes: [LayerChange], keys: [String], revision: Int64) async -> Bool {
        let result = await layers.update(changes)
        guard result.succeeded else {
            logger.error("etcd agent: change not applied; the running components are unchanged",
                         metadata: ["keys": "\(keys)", "revision": "\(revision)", "error": "\(result.error ?? "")"])
            return false
        }
        if !(result.applies.isEmpty && result.removals.isEmpty) {
            logger.info("etcd agent applied", metadata: ["keys": "\(keys)", "revision": "\(revision)",
                                                        "actions": "\((result.applies + result.removals).map { "\($0.key)=\($0.action.rawValue)" })"])
        }
        return true
    }

    /// Changes partitioned so that changes touching a common component (now or before) share a group.
    static func groupedByComponent(_ changes: [LayerChange], current: LayeredComponents) -> [[LayerChange]] {
        var groups: [(components: Set<ComponentKey>, changes: [LayerChange])] = []
        for change in changes {
            var components = Set(change.components.map(\.key)).union(current.components(change.layer, source: change.source).map(\.key))
            var merged = [change]
            groups.removeAll { group in
                guard !group.components.isDisjoint(with: components) else { return false }
                components.formUnion(group.components)
                merged = group.changes + merged
                return true
            }
            groups.append((components, merged))
        }
        return groups.map(\.changes)
    }

    /// The layer a key feeds, or nil for keys of other apps and unknown keys.
    func layer(of key: String) -> ConfigLayer? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        if rest.hasPrefix("common/"), rest.count > "common/".count { return .common }
        let appPrefix = "apps/\(appID)/"
        if rest.hasPrefix(appPrefix), rest.count > appPrefix.count { return .app }
        return nil
    }

    /// etcd's prefix range end: the prefix with its last byte incremented (bytes 0xff dropped first).
    static func rangeEnd(of key: Data) -> Data {
        var end = key
        while let last = end.last {
            if last < 0xff {
                end[end.index(before: end.endIndex)] = last + 1
                return end
            }
            end.removeLast()
        }
        return Data([0])  // every key
    }

    static func split(_ endpoint: String) throws -> (host: String, port: Int) {
        var text = endpoint
        for scheme in ["http://", "https://"] where text.hasPrefix(scheme) { text.removeFirst(scheme.count) }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            throw WatchEnded(description: "etcd endpoint '\(endpoint)' is not host:port")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }  // [::1]:2379
        return (host, port)
    }
}

private extension Duration {
    var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
