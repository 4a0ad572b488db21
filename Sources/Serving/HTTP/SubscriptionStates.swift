import Synchronization

/// Whether each running subscription holds a subscription on its pubsub now, for `AppSubscriptions.listing()`.
/// Keyed by `RunningAppSubscriptions.key` (pubsub, topic): at most one task runs per key, and a replacing task
/// starts only after the stopped one cleared its entry.
///
/// Thread: any; a lock around a small dictionary.
final class SubscriptionStates: Sendable {
    enum State: String, Sendable {
        /// Its task started and has not subscribed yet.
        case starting
        case subscribed
        /// Its pubsub is not configured (yet, or any more): the task tries again with backoff.
        case waitingForPubsub = "waiting-for-pubsub"
    }

    private let states = Mutex<[String: State]>([:])

    func set(_ key: String, _ state: State?) {
        states.withLock { $0[key] = state }
    }

    func state(_ key: String) -> State? {
        states.withLock { $0[key] }
    }
}

/// One subscription known to `AppSubscriptions`: the programmatic ones and every declarative source's ones,
/// running or refused.
public struct AppSubscriptionListing: Sendable {
    public var subscription: AppSubscription
    /// `RunningAppSubscriptions.programmaticSource`, or the declarative source id that declares it.
    public var source: String
    /// "subscribed", "waiting-for-pubsub", "starting" when it runs; "refused" when another source's subscription
    /// to the same pubsub and topic runs instead (`runningFrom` names that source).
    public var state: String
    public var runningFrom: String?
}

extension AppSubscriptions {
    /// The source id of the app's programmatic subscriptions in `listing()`.
    public static let programmaticSource = RunningAppSubscriptions.programmaticSource

    /// Every subscription: what runs, with its state, and what a source declares that does not run.
    public func listing() async -> [AppSubscriptionListing] {
        await table.listing().map { entry in
            guard let owner = entry.runningOwner, owner == entry.source else {
                return AppSubscriptionListing(subscription: entry.subscription, source: entry.source, state: "refused",
                                              runningFrom: entry.runningOwner)
            }
            let state = states.state(RunningAppSubscriptions.key(entry.subscription)) ?? .starting
            return AppSubscriptionListing(subscription: entry.subscription, source: entry.source, state: state.rawValue, runningFrom: owner)
        }
    }
}

extension RunningAppSubscriptions {
    /// Every programmatic and declared subscription, with the source whose subscription runs for its pubsub and
    /// topic (nil: none runs).
    func listing() -> [(subscription: AppSubscription, source: String, runningOwner: String?)] {
        let sources = [(Self.programmaticSource, programmaticSubscriptions)] + declaredSources.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return sources.flatMap { source, subscriptions in
            subscriptions.map { ($0, source, runningOwner(of: Self.key($0))) }
        }
    }
}
