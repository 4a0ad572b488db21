import FoundationEssentials
import PluginHost
import Synchronization

/// An app's subscription to items of a configuration store: its id (what unsubscribe names) and the
/// updates, each the items whose value or version changed since the last update (a deleted item has value
/// "" and version ""). A subscriber that reads slowly gets the changes merged, the latest per key, never
/// dropped; what waits is bounded by the number of keys. The updates end when the app unsubscribes; a
/// consumer that stops iterating should unsubscribe.
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
        /// What the subscriber has been given (sent or pending), by key.
        var seen: [String: ConfigurationItem]
        /// Changes not yet taken by the subscriber's stream, the latest per key.
        var pending: [String: ConfigurationItem] = [:]
        /// Wakes the stream when `pending` gains something; finished when the subscription ends.
        let wake: AsyncStream<Void>.Continuation
    }

    private let byStore = Mutex<[String: [String: Subscriber]]>([:])

    /// Registers a subscriber and returns its updates.
    func add(id: String, store: String, keys: [String], seen: [String: ConfigurationItem]) -> AsyncStream<[ConfigurationItem]> {
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        byStore.withLock { $0[store, default: [:]][id] = Subscriber(keys: keys, seen: seen, wake: wake) }
        let wakeIterator = WakeIterator(wakes.makeAsyncIterator())
        return AsyncStream(unfolding: { [self] in
            while true {
                switch take(id: id, store: store) {
                case .items(let items): return items
                case .gone: return nil
                case .nothingYet: guard await wakeIterator.iterator.next() != nil else { return nil }
                }
            }
        }, onCancel: { [self] in remove(id: id, store: store) })
    }

    private enum Taken { case items([ConfigurationItem]), nothingYet, gone }

    /// Takes the subscriber's pending changes.
    private func take(id: String, store: String) -> Taken {
        byStore.withLock { stores in
            guard var subscriber = stores[store]?[id] else { return .gone }
            guard !subscriber.pending.isEmpty else { return .nothingYet }
            let taken = subscriber.pending.keys.sorted().map { subscriber.pending[$0]! }
            subscriber.pending = [:]
            stores[store]![id] = subscriber
            return .items(taken)
        }
    }

    /// Ends a subscription; false when there is none with that id.
    @discardableResult
    func remove(id: String, store: String) -> Bool {
        let removed = byStore.withLock { stores in stores[store]?.removeValue(forKey: id) }
        removed?.wake.finish()
        return removed != nil
    }

    func subscribers(of store: String) -> [String: [String]] { byStore.withLock { ($0[store] ?? [:]).mapValues(\.keys) } }

    /// Compares `items` (what the store holds now for the keys asked) with what each subscriber was given,
    /// queues the differences and wakes the subscribers that got some.
    func deliver(_ items: [String: ConfigurationItem], store: String) {
        let woken = byStore.withLock { stores -> [AsyncStream<Void>.Continuation] in
            guard var subscribers = stores[store] else { return [] }
            var woken: [AsyncStream<Void>.Continuation] = []
            for (id, var subscriber) in subscribers {
                let watched = subscriber.keys.isEmpty ? Set(items.keys).union(subscriber.seen.keys) : Set(subscriber.keys)
                var changed = false
                for key in watched where items[key] != subscriber.seen[key] {
                    subscriber.pending[key] = items[key] ?? ConfigurationItem(key: key, value: "", version: "")
                    subscriber.seen[key] = items[key]
                    changed = true
                }
                subscribers[id] = subscriber
                if changed { woken.append(subscriber.wake) }
            }
            stores[store] = subscribers
            return woken
        }
        for wake in woken { wake.yield() }
    }
}

/// A subscriber's wake-up iterator. @unchecked Sendable: only its stream's unfolding closure uses it, and
/// AsyncStream calls that closure one call at a time (a stream has one consumer).
private final class WakeIterator: @unchecked Sendable {
    var iterator: AsyncStream<Void>.Iterator
    init(_ iterator: AsyncStream<Void>.Iterator) { self.iterator = iterator }
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
        let updates = configurationSubscriptions.add(id: id, store: store, keys: keys, seen: current)
        return ConfigurationSubscription(id: id, updates: updates)
    }

    /// Ends subscription `id` of `store`; false when there is none.
    public func unsubscribeConfiguration(store: String, id: String) -> Bool {
        configurationSubscriptions.remove(id: id, store: store)
    }

    /// Reads the items `store`'s subscribers want and queues for each subscriber what changed for it.
    func notifySubscribers(of store: String) async {
        let subscribers = configurationSubscriptions.subscribers(of: store)
        guard !subscribers.isEmpty else { return }
        let wantsAll = subscribers.values.contains { $0.isEmpty }
        let keys = wantsAll ? [] : Array(Set(subscribers.values.flatMap { $0 })).sorted()
        do throws(CallError) {
            configurationSubscriptions.deliver(try await getConfiguration(store: store, keys: keys).value, store: store)
        } catch {
            logger.warning("configuration store cannot be read for its subscribers; they get the change later",
                           metadata: ["component": "configuration/\(store)", "error": "\(error)"])
        }
    }
}
