import FoundationEssentials
import PluginHost
import Synchronization

/// One message delivered to a subscriber. Answer it exactly once; a delivery dropped unanswered counts as
/// RETRY (the plugin delivers it again).
public final class PubsubDelivery: Sendable {
    public let message: PubsubMessage
    private let answered = Atomic<Bool>(false)
    private let onAnswer: @Sendable (PubsubOutcome) -> Void

    init(message: PubsubMessage, onAnswer: @escaping @Sendable (PubsubOutcome) -> Void) {
        self.message = message
        self.onAnswer = onAnswer
    }

    public func answer(_ outcome: PubsubOutcome) {
        guard !answered.exchange(true, ordering: .acquiringAndReleasing) else { return }
        onAnswer(outcome)
    }

    deinit { answer(.retry) }
}

/// An app's subscription to a topic of a pub/sub component: its id and its deliveries. Ending the
/// iteration (the consuming task cancelled) unsubscribes.
public struct PubsubSubscription: Sendable {
    public let id: String
    public let deliveries: AsyncStream<PubsubDelivery>
}

/// A subscription as the engine keeps it. It belongs to the component's name: a reload or version swap
/// moves it from the old generation's plugin subscription to the new one's (`moveSubscriptions`).
final class TopicSubscription: Sendable {
    let id: String
    let pubsub: String
    let topic: String
    let metadata: [String: String]
    let maxInFlight: Int
    let continuation: AsyncStream<PubsubDelivery>.Continuation
    /// The plugin subscription it runs on now; nil while detached (between generations, or ended).
    let attachment = Mutex<Attachment?>(nil)

    init(id: String, pubsub: String, topic: String, metadata: [String: String], maxInFlight: Int,
         continuation: AsyncStream<PubsubDelivery>.Continuation) {
        (self.id, self.pubsub, self.topic, self.metadata, self.maxInFlight, self.continuation) =
            (id, pubsub, topic, metadata, maxInFlight, continuation)
    }
}

/// One plugin subscription of one generation, on behalf of one `TopicSubscription`. It counts deliveries
/// taken and not yet answered (the window), forwards answers to the plugin until it is closed, and drops
/// them afterwards (the plugin keeps unanswered deliveries and delivers them again).
final class Attachment: Sendable {
    let generation: Generation
    private struct State {
        var pluginSubscription: PluginSubscription?
        /// Answers that arrived before subscribe returned the plugin's id.
        var early: [(UInt64, PubsubOutcome)] = []
        var inFlight = 0
        var closed = false
    }
    private let state = Mutex(State())
    private let maxInFlight: Int

    init(generation: Generation, maxInFlight: Int) {
        self.generation = generation
        self.maxInFlight = maxInFlight
    }

    /// The plugin's subscription is known: answers given meanwhile reach it now.
    func started(_ subscription: PluginSubscription) {
        let instance = generation.instance
        state.withLock { state in
            state.pluginSubscription = subscription
            for (delivery, outcome) in state.early where !state.closed { instance.ack(subscription, delivery: delivery, outcome: outcome) }
            state.early = []
        }
    }

    /// `deliver`: takes a message unless the window is full or the attachment is closed.
    func take() -> Bool {
        state.withLock { state in
            guard !state.closed, state.inFlight < maxInFlight else { return false }
            state.inFlight += 1
            return true
        }
    }

    /// One answer, forwarded to the plugin under the lock, so that none reaches it after `close` returned.
    func answer(_ delivery: UInt64, _ outcome: PubsubOutcome) {
        let instance = generation.instance
        state.withLock { state in
            state.inFlight -= 1
            guard !state.closed else { return }
            if let subscription = state.pluginSubscription {
                instance.ack(subscription, delivery: delivery, outcome: outcome)
            } else {
                state.early.append((delivery, outcome))
            }
        }
    }

    var inFlight: Int { state.withLock { $0.inFlight } }
    var pluginSubscription: PluginSubscription? { state.withLock { $0.pluginSubscription } }

    /// No answer reaches the plugin after this returns.
    func close() { state.withLock { $0.closed = true } }
}

/// Every pub/sub subscription, by component name and id.
final class PubsubRegistry: Sendable {
    private let byPubsub = Mutex<[String: [String: TopicSubscription]]>([:])

    func add(_ subscription: TopicSubscription) {
        byPubsub.withLock { $0[subscription.pubsub, default: [:]][subscription.id] = subscription }
    }

    func remove(pubsub: String, id: String) -> TopicSubscription? {
        byPubsub.withLock { $0[pubsub]?.removeValue(forKey: id) }
    }

    func subscriptions(of pubsub: String) -> [TopicSubscription] {
        byPubsub.withLock { Array(($0[pubsub] ?? [:]).values) }.sorted { $0.id < $1.id }
    }

    func removeAll(of pubsub: String) -> [TopicSubscription] {
        byPubsub.withLock { Array(($0.removeValue(forKey: pubsub) ?? [:]).values) }
    }
}
