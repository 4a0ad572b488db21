import Engine
import Logging
import ServiceLifecycle
import ServingCore

/// Classic pub/sub subscriptions of an app with an app port, run for the life of the sidecar: the programmatic
/// ones the app lists (`GET /dapr/subscribe` over HTTP, ListTopicSubscriptions over gRPC: `AppSubscriber`; asked
/// at start, again with backoff while the app is not up yet, as Dapr's built-in initialization retries do; a 404,
/// UNIMPLEMENTED or an empty list means none), and the declarative ones of each
/// source (the `--components` files given at start and on SIGHUP, a file of the file agent, an etcd key), which
/// `reconcile(source:_:)` changes while molt runs (see `RunningAppSubscriptions` for the plan and the precedence).
/// Each subscription keeps itself subscribed: a pubsub that is not configured yet (or is removed later) is tried
/// again until it is (logged once each time it goes missing), so a pubsub added through the Control API gets its
/// subscriptions. Events are delivered by `PubsubEventDelivery`. Subscriptions survive reloads and version swaps
/// of their pubsub (the engine moves them).
///
/// Thread: one task per subscription plus one asking the app, on the cooperative pool; all end at graceful
/// shutdown (which unsubscribes). `reconcile` may be called from any task, before or after `run` starts.
public final class AppSubscriptions: Service, Sendable {
    /// The source id of the declarative subscriptions of the `--components` files.
    public static let bootstrapSource = "the --components files"

    let engine: Engine
    let subscriber: any AppSubscriber
    let logger: Logger
    /// Backoff between attempts (to reach the app, to subscribe): from `initialBackoff`, doubling, up to `maxBackoff`.
    let initialBackoff: Duration
    let maxBackoff: Duration
    let table: RunningAppSubscriptions
    /// Each running subscription's state, for `listing()`.
    let states: SubscriptionStates

    /// `transport`: how the app is reached (`--app-protocol`); events of every subscription, declarative ones
    /// included, go through it.
    public init(engine: Engine, transport: AppSubscriberTransport, logger: Logger, declarative: [AppSubscription],
                initialBackoff: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(2)) {
        let subscriber = transport.subscriber
        (self.engine, self.subscriber, self.logger, self.initialBackoff, self.maxBackoff) =
            (engine, subscriber, logger, initialBackoff, maxBackoff)
        let states = SubscriptionStates()
        self.states = states
        let keep = KeepSubscribed(engine: engine, subscriber: subscriber, logger: logger, initialBackoff: initialBackoff, maxBackoff: maxBackoff,
                                  states: states)
        table = RunningAppSubscriptions(logger: logger, initial: (Self.bootstrapSource, declarative), run: { await keep.run($0) })
    }

    /// Declarative source `source` (`bootstrapSource`, a file path, an etcd key) now declares exactly
    /// `subscriptions` (empty: none any more): new ones start, removed ones stop (unsubscribed), changed ones are
    /// stopped then started; the others keep running untouched. Returns once the stops are done and the starts begun.
    public func reconcile(source: String, _ subscriptions: [AppSubscription]) async {
        await table.reconcile(source: source, subscriptions)
    }

    public func run() async throws {
        await table.refresh()
        await cancelWhenGracefulShutdown {
            let listed = await self.askTheApp()
            guard !Task.isCancelled else { return }
            await self.table.listed(listed)
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        }
        await table.stopAll()
    }

    /// The app's programmatic subscriptions; asks until the app answers (or the task is cancelled).
    func askTheApp() async -> [AppSubscription] {
        var backoff = initialBackoff
        var loggedWaiting = false
        while !Task.isCancelled {
            let problem: String
            switch await subscriber.listSubscriptions(logger: logger) {
            case .listed(let subscriptions):
                logger.info("the app's programmatic subscriptions", metadata: ["count": "\(subscriptions.count)"])
                return subscriptions
            case .notYet(let why):
                problem = why
            }
            if !loggedWaiting {
                logger.info("waiting for the app to list its subscriptions (\(subscriber.listCall)); trying again", metadata: ["error": "\(problem)"])
                loggedWaiting = true
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, maxBackoff)
        }
        return []
    }
}

/// Keeps one subscription subscribed until its task is cancelled.
struct KeepSubscribed: Sendable {
    let engine: Engine
    let subscriber: any AppSubscriber
    let logger: Logger
    let initialBackoff: Duration
    let maxBackoff: Duration
    let states: SubscriptionStates

    /// Subscribes and delivers; when the subscription ends (its pubsub removed), subscribes again.
    func run(_ spec: AppSubscription) async {
        let key = RunningAppSubscriptions.key(spec)
        states.set(key, .starting)
        defer { states.set(key, nil) }
        let delivery = PubsubEventDelivery(engine: engine, subscriber: subscriber, logger: logger)
        var backoff = initialBackoff
        var loggedMissing = false
        while !Task.isCancelled {
            do throws(CallError) {
                let subscription = try await engine.subscribe(pubsub: spec.pubsub, topic: spec.topic, metadata: spec.metadata)
                if loggedMissing {
                    logger.info("subscribed", metadata: ["pubsub": "\(spec.pubsub)", "topic": "\(spec.topic)"])
                }
                (backoff, loggedMissing) = (initialBackoff, false)
                states.set(key, .subscribed)
                await delivery.run(subscription, spec)
                if Task.isCancelled {
                    // Stopped (removed, changed, shutdown): unsubscribed before the stop returns.
                    await engine.unsubscribe(pubsub: spec.pubsub, id: subscription.id)
                    return
                }
                logger.warning("the subscription ended (its pubsub was removed?); subscribing again when it is back", metadata: [
                    "pubsub": "\(spec.pubsub)", "topic": "\(spec.topic)"])
                loggedMissing = true
                states.set(key, .waitingForPubsub)
            } catch {
                states.set(key, .waitingForPubsub)
                if !loggedMissing {
                    logger.warning("cannot subscribe yet; trying again until the pubsub is configured", metadata: [
                        "pubsub": "\(spec.pubsub)", "topic": "\(spec.topic)", "error": "\(error)"])
                    loggedMissing = true
                }
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, maxBackoff)
        }
    }
}
