import AppChannel
import Engine
import Logging
import ServiceLifecycle
import ServingCore

/// Classic pub/sub subscriptions of an app with an app port, run for the life of the sidecar: the declarative
/// ones given at start, and the programmatic ones the app lists at `GET /dapr/subscribe` (asked at start, again
/// with backoff while the app is not up yet, as Dapr's built-in initialization retries do; a 404 or an empty
/// list means none). Each subscription keeps itself subscribed: a pubsub that is not configured yet (or is
/// removed later) is tried again until it is (logged once each time it goes missing), so a pubsub added through
/// the Control API gets its subscriptions. Events are delivered by `PubsubEventDelivery`. Subscriptions survive
/// reloads and version swaps of their pubsub (the engine moves them).
///
/// One pubsub/topic pair is subscribed once: a later duplicate (programmatic after declarative, or twice in a
/// list) is skipped with a warning, as Dapr refuses a second subscription to the same topic.
///
/// Thread: one task per subscription plus one asking the app, on the cooperative pool; all end at graceful
/// shutdown (which unsubscribes).
public struct AppSubscriptions: Service {
    let engine: Engine
    let appChannel: AppChannel
    let declarative: [AppSubscription]
    let logger: Logger
    /// Backoff between attempts (to reach the app, to subscribe): from `initialBackoff`, doubling, up to `maxBackoff`.
    let initialBackoff: Duration
    let maxBackoff: Duration

    public init(engine: Engine, appChannel: AppChannel, logger: Logger, declarative: [AppSubscription],
                initialBackoff: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(2)) {
        (self.engine, self.appChannel, self.declarative, self.logger, self.initialBackoff, self.maxBackoff) =
            (engine, appChannel, declarative, logger, initialBackoff, maxBackoff)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                var taken = Set<String>()
                func start(_ subscription: AppSubscription) {
                    let key = "\(subscription.pubsub)\u{0}\(subscription.topic)"
                    guard taken.insert(key).inserted else {
                        logger.warning("a subscription to this pubsub and topic already exists; this one is skipped", metadata: [
                            "pubsub": "\(subscription.pubsub)", "topic": "\(subscription.topic)", "source": "\(subscription.source)"])
                        return
                    }
                    if subscription.ignoredRules > 0 {
                        logger.warning("routing rules are not evaluated by molt: every event goes to the default route", metadata: [
                            "pubsub": "\(subscription.pubsub)", "topic": "\(subscription.topic)", "route": "\(subscription.route)",
                            "rules": "\(subscription.ignoredRules)", "source": "\(subscription.source)"])
                    }
                    logger.info("app subscription", metadata: [
                        "pubsub": "\(subscription.pubsub)", "topic": "\(subscription.topic)", "route": "\(subscription.route)",
                        "dead_letter_topic": "\(subscription.deadLetterTopic)", "max_retries": "\(subscription.maxRetries)",
                        "source": "\(subscription.source)"])
                    group.addTask { await keepSubscribed(subscription) }
                }
                for subscription in declarative { start(subscription) }
                for subscription in await askTheApp() { start(subscription) }
                await group.waitForAll()
            }
        }
    }

    /// The app's programmatic subscriptions; asks until the app answers (or the task is cancelled).
    func askTheApp() async -> [AppSubscription] {
        var backoff = initialBackoff
        var loggedWaiting = false
        while !Task.isCancelled {
            let problem: String
            do {
                let response = try await appChannel.get(path: "/dapr/subscribe")
                switch response.status {
                case 200..<300:
                    do {
                        let (subscriptions, problems) = try AppSubscription.programmatic(response.body)
                        for skipped in problems { logger.error("GET /dapr/subscribe: \(skipped)") }
                        logger.info("the app's programmatic subscriptions", metadata: ["count": "\(subscriptions.count)"])
                        return subscriptions
                    } catch {
                        logger.error("GET /dapr/subscribe answered a body that is not a subscription list; no programmatic subscriptions",
                                     metadata: ["error": "\(error)"])
                        return []
                    }
                case 404:
                    logger.info("the app has no programmatic subscriptions (GET /dapr/subscribe answered 404)")
                    return []
                case 500...:
                    problem = "status \(response.status)"
                default:
                    logger.error("GET /dapr/subscribe answered status \(response.status); no programmatic subscriptions")
                    return []
                }
            } catch {
                problem = "\(error)"
            }
            if !loggedWaiting {
                logger.info("waiting for the app to list its subscriptions (GET /dapr/subscribe); trying again", metadata: ["error": "\(problem)"])
                loggedWaiting = true
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, maxBackoff)
        }
        return []
    }

    /// Subscribes and delivers; when the subscription ends (its pubsub removed), subscribes again.
    func keepSubscribed(_ spec: AppSubscription) async {
        let delivery = PubsubEventDelivery(engine: engine, appChannel: appChannel, logger: logger)
        var backoff = initialBackoff
        var loggedMissing = false
        while !Task.isCancelled {
            do throws(CallError) {
                let subscription = try await engine.subscribe(pubsub: spec.pubsub, topic: spec.topic, metadata: spec.metadata)
                if loggedMissing {
                    logger.info("subscribed", metadata: ["pubsub": "\(spec.pubsub)", "topic": "\(spec.topic)"])
                }
                (backoff, loggedMissing) = (initialBackoff, false)
                await delivery.run(subscription, spec)
                if Task.isCancelled { return }
                logger.warning("the subscription ended (its pubsub was removed?); subscribing again when it is back", metadata: [
                    "pubsub": "\(spec.pubsub)", "topic": "\(spec.topic)"])
                loggedMissing = true
            } catch {
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
