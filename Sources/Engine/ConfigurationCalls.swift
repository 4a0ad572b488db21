import FoundationEssentials
import PluginHost
import Synchronization

/// An app's subscription to items of a configuration store: its id (what unsubscribe names) and the
/// updates, each the items whose value or version changed since the last update (a deleted item has value
/// "" and version ""). The stream ends when the app unsubscribes; ending it unsubscribes.
public struct ConfigurationSubscription: Sendable {
    public let id: String
    public let updates: AsyncStream<[ConfigurationItem]>
}

/// The subscriptions of every configuration store. They belong to the store's name, not to a generation:
/// a reload or version swap of the store keeps them, and the new generation's items are compared with
/// what each subscriber saw last.
final class ConfigurationSubscriptions: Sendable {
    struct Subscriber: Sendable {
        /// Empty: every item of the store.
        let keys: [String]
        let metadata: [String: String]
        let continuation: AsyncStream<[ConfigurationItem]>.Continuation
        /// What the subscriber saw last, by key.
        var seen: [String: ConfigurationItem]
    }

    private let byStore = Mutex<[String: [String: Subscriber]]>([:])

    func add(_ subscriber: Subscriber, id: String, store: String) {
        byStore.withLock { $0[store, default: [:]][id] = subscriber }
    }

    /// Removes a subscription and ends its stream; false when there is none with that id.
    @discardableResult
    func remove(id: String, store: String) -> Bool {
        let removed = byStore.withLock { stores in stores[store]?.removeValue(forKey: id) }
        removed?.continuation.finish()
        return removed != nil
    }

    func subscribers(of store: String) -> [String: Subscriber] { byStore.withLock { $0[store] ?? [:] } }

    /// Records what a subscriber was sent (unless it unsubscribed meanwhile).
    func update(_ seen: [String: ConfigurationItem], id: String, store: String) {
        byStore.withLock { stores in stores[store]?[id]?.seen = seen }
    }
}

/// Dapr's configuration API: GetConfiguration, SubscribeConfiguration, UnsubscribeConfiguration.
extension Engine {
    /// The items of `keys` that exist (every item when `keys` is empty), by key.
    public func getConfiguration(store: String, keys: [String], metadata: [String: String] = [:],
                                 deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<[String: ConfigurationItem]> {
        if let empty = keys.firstIndex(of: "") { throw .invalidRequest("configuration key #\(empty + 1) is empty") }
        return try await withLease(ComponentKey(kind: .configuration, name: store), deadline: deadline) { generation, deadline throws(CallError) in
            do throws(PluginError) {
                return try await generation.instance.configuration(keys: keys, metadata: metadata, deadline: deadline)
            } catch {
                throw .plugin(error)
            }
        }
    }

    /// Subscribes to `keys` of `store` (every item when empty). Updates follow each change the store reports
    /// (or that its pollInterval finds), whichever generation of the store serves.
    public func subscribeConfiguration(store: String, keys: [String], metadata: [String: String] = [:]) async throws(CallError) -> ConfigurationSubscription {
        // What the subscriber starts from: the items now (this also checks the store and the keys).
        let current = try await getConfiguration(store: store, keys: keys, metadata: metadata).value
        let id = UUID().uuidString.lowercased()
        let (updates, continuation) = AsyncStream<[ConfigurationItem]>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let subscriptions = configurationSubscriptions
        continuation.onTermination = { _ in subscriptions.remove(id: id, store: store) }
        subscriptions.add(.init(keys: keys, metadata: metadata, continuation: continuation, seen: current), id: id, store: store)
        return ConfigurationSubscription(id: id, updates: updates)
    }

    /// Ends subscription `id` of `store`; false when there is none.
    public func unsubscribeConfiguration(store: String, id: String) -> Bool {
        configurationSubscriptions.remove(id: id, store: store)
    }

    /// Reads the items `store`'s subscribers want and sends each subscriber what changed for it.
    func notifySubscribers(of store: String) async {
        let subscribers = configurationSubscriptions.subscribers(of: store)
        guard !subscribers.isEmpty else { return }
        let wantsAll = subscribers.values.contains { $0.keys.isEmpty }
        let keys = wantsAll ? [] : Array(Set(subscribers.values.flatMap(\.keys))).sorted()
        let items: [String: ConfigurationItem]
        do throws(CallError) {
            items = try await getConfiguration(store: store, keys: keys).value
        } catch {
            logger.warning("configuration store cannot be read for its subscribers; they get the change later",
                           metadata: ["component": "configuration/\(store)", "error": "\(error)"])
            return
        }
        for (id, subscriber) in subscribers {
            let watched = subscriber.keys.isEmpty ? Set(items.keys).union(subscriber.seen.keys) : Set(subscriber.keys)
            var changed: [ConfigurationItem] = []
            var seen = subscriber.seen
            for key in watched.sorted() {
                let now = items[key]
                guard now != seen[key] else { continue }
                changed.append(now ?? ConfigurationItem(key: key, value: "", version: ""))
                seen[key] = now
            }
            guard !changed.isEmpty else { continue }
            configurationSubscriptions.update(seen, id: id, store: store)
            subscriber.continuation.yield(changed)
        }
    }
}
