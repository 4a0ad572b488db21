import Logging

/// The classic subscriptions molt runs for the app, reconciled per source: the app's programmatic list
/// (`GET /dapr/subscribe`) and declarative ones from sources (the `--components` files, one file-agent file, one
/// etcd key), each source giving its whole set every time. Identity is (pubsub, topic), as Dapr's.
///
/// The plan of one change, in one place: compute the wanted set (programmatic first, then each (pubsub, topic)
/// from the declarative source that claimed it first), then stop what is gone, stop and start what changed (route,
/// metadata, dead-letter topic, rules), start what is new. Every other subscription is left running as it is.
/// - Precedence, as Dapr (dapr/dapr `pkg/runtime/processor/pubsub`: "two identical subscriptions found (sources:
///   declarative, app endpoint)"): a programmatic subscription wins over a declarative one to the same topic, which
///   is skipped with a warning. Declarative ones start at once (events published while the app is not up yet
///   wait for it); a declarative one the app's list then also has is replaced by the app's (stop, then start).
/// - Between declarative sources the first to claim a topic keeps it; a later one is refused with a warning naming
///   both, and takes over if the first one drops it.
/// - Stopping a subscription cancels its task and waits for it to unsubscribe: deliveries it had not answered stay
///   with the plugin for the next subscriber (at-least-once across a replace).
///
/// Thread: an actor; changes are applied one after the other (a change waits for the stops of the previous one).
actor RunningAppSubscriptions {
    typealias Key = String
    private struct Running {
        var subscription: AppSubscription
        /// `programmatic`, or the declarative source id.
        var owner: String
        let task: Task<Void, Never>
    }

    static let programmaticSource = "programmatic"

    private let logger: Logger
    private let run: @Sendable (AppSubscription) async -> Void
    /// Empty until the app listed its subscriptions.
    private var programmatic: [AppSubscription] = []
    /// Each declarative source's subscriptions, as last given.
    private var declared: [String: [AppSubscription]] = [:]
    /// The declarative source each (pubsub, topic) belongs to (first claim wins).
    private var claims: [Key: String] = [:]
    private var running: [Key: Running] = [:]
    /// The conflicts of the last plan, warned about then: a plan that still has one does not repeat it, one that
    /// comes back after it was resolved is warned about again.
    private var warned: Set<String> = []
    private var conflicts: Set<String> = []
    private var stopped = false
    /// The change being applied: the next one starts after it.
    private var tail: Task<Void, Never>?

    /// `initial` (the bootstrap files') claims its topics before any other source; nothing starts before `refresh`.
    init(logger: Logger, initial: (source: String, subscriptions: [AppSubscription]), run: @escaping @Sendable (AppSubscription) async -> Void) {
        (self.logger, self.run) = (logger, run)
        if !initial.subscriptions.isEmpty { declared[initial.source] = initial.subscriptions }
        for subscription in initial.subscriptions where claims[Self.key(subscription)] == nil {
            claims[Self.key(subscription)] = initial.source
        }
    }

    /// Starts what should run and is not running (at start).
    func refresh() async {
        await serialized { _ in }
    }

    static func key(_ subscription: AppSubscription) -> Key { "\(subscription.pubsub)\u{0}\(subscription.topic)" }

    /// For `listing()` (SubscriptionStates.swift): the sets as given, and who runs a key.
    var programmaticSubscriptions: [AppSubscription] { programmatic }
    var declaredSources: [String: [AppSubscription]] { declared }
    func runningOwner(of key: Key) -> String? { running[key]?.owner }

    /// Declarative source `source` now declares exactly `subscriptions` (empty: it is gone).
    func reconcile(source: String, _ subscriptions: [AppSubscription]) async {
        await serialized {
            $0.declared[source] = subscriptions.isEmpty ? nil : subscriptions
        }
    }

    /// The app's programmatic subscriptions (asked once, at start).
    func listed(_ subscriptions: [AppSubscription]) async {
        await serialized { $0.programmatic = subscriptions }
    }

    /// Stops every subscription and refuses further starts (graceful shutdown).
    func stopAll() async {
        await serialized { table in
            table.stopped = true
            table.declared = [:]
            table.programmatic = []
        }
    }

    /// Runs `change`, then applies the plan, after the changes before it.
    private func serialized(_ change: @escaping @Sendable (isolated RunningAppSubscriptions) -> Void) async {
        let previous = tail
        let task = Task {
            await previous?.value
            await self.apply(change)
        }
        tail = task
        await task.value
    }

    private func apply(_ change: @Sendable (isolated RunningAppSubscriptions) -> Void) async {
        change(self)
        let wanted = self.wanted()
        var stops: [Task<Void, Never>] = []
        for (key, current) in running {
            if let want = wanted[key], Self.same(want.subscription, current.subscription) {
                running[key]?.owner = want.owner  // same subscription from another source: nothing to restart
                continue
            }
            current.task.cancel()
            stops.append(current.task)
            running[key] = nil
            let fields: Logger.Metadata = ["pubsub": "\(current.subscription.pubsub)", "topic": "\(current.subscription.topic)",
                                           "route": "\(current.subscription.route)", "source": "\(current.subscription.source)"]
            logger.info(wanted[key] == nil ? "app subscription removed" : "app subscription changed: restarting it", metadata: fields)
        }
        for stop in stops { await stop.value }  // unsubscribed: unanswered deliveries go back to the plugin
        for (key, want) in wanted.sorted(by: { $0.key < $1.key }) where running[key] == nil {
            running[key] = Running(subscription: want.subscription, owner: want.owner, task: start(want.subscription))
        }
    }

    /// What should run: programmatic first, then declarative by claim.
    private func wanted() -> [Key: (subscription: AppSubscription, owner: String)] {
        guard !stopped else { return [:] }
        conflicts = []
        defer { warned = conflicts }
        var wanted: [Key: (subscription: AppSubscription, owner: String)] = [:]
        for subscription in programmatic {
            let key = Self.key(subscription)
            if wanted[key] != nil {
                warnOnce("programmatic twice \(key)", "a subscription to this pubsub and topic already exists; this one is skipped", subscription, [:])
                continue
            }
            wanted[key] = (subscription, Self.programmaticSource)
        }
        // Claims of sources that no longer declare their topic lapse.
        claims = claims.filter { key, source in declared[source]?.contains { Self.key($0) == key } ?? false }
        for source in declared.keys.sorted() {
            for subscription in declared[source] ?? [] {
                let key = Self.key(subscription)
                let owner = claims[key] ?? source
                claims[key] = owner
                if owner != source {
                    warnOnce("conflict \(key) \(owner) \(source)",
                             "a subscription to this pubsub and topic is already declared by another source; this one is refused",
                             subscription, ["declared_by": "\(owner)", "refused_source": "\(source)"])
                    continue
                }
                if let existing = wanted[key] {
                    if existing.owner == Self.programmaticSource {
                        warnOnce("programmatic wins \(key) \(source)",
                                 "two identical subscriptions found (sources: declarative, app endpoint): the app's wins, as in Dapr",
                                 subscription, ["refused_source": "\(source)"])
                    } else {
                        warnOnce("twice \(key) \(source)", "a subscription to this pubsub and topic already exists; this one is skipped",
                                 subscription, [:])
                    }
                    continue
                }
                wanted[key] = (subscription, source)
            }
        }
        return wanted
    }

    private func warnOnce(_ id: String, _ message: Logger.Message, _ subscription: AppSubscription, _ extra: Logger.Metadata) {
        guard conflicts.insert(id).inserted, !warned.contains(id) else { return }
        logger.warning(message, metadata: extra.merging([
            "pubsub": "\(subscription.pubsub)", "topic": "\(subscription.topic)", "source": "\(subscription.source)"]) { $1 })
    }

    private func start(_ subscription: AppSubscription) -> Task<Void, Never> {
        if subscription.ignoredRules > 0 {
            logger.warning("routing rules are not evaluated by molt: every event goes to the default route", metadata: [
                "pubsub": "\(subscription.pubsub)", "topic": "\(subscription.topic)", "route": "\(subscription.route)",
                "rules": "\(subscription.ignoredRules)", "source": "\(subscription.source)"])
        }
        logger.info("app subscription", metadata: [
            "pubsub": "\(subscription.pubsub)", "topic": "\(subscription.topic)", "route": "\(subscription.route)",
            "dead_letter_topic": "\(subscription.deadLetterTopic)", "max_retries": "\(subscription.maxRetries)",
            "source": "\(subscription.source)"])
        let run = self.run
        return Task { await run(subscription) }
    }

    /// Whether two subscriptions deliver alike (the `source` text, with its line numbers, does not count).
    static func same(_ a: AppSubscription, _ b: AppSubscription) -> Bool {
        a.pubsub == b.pubsub && a.topic == b.topic && a.route == b.route && a.deadLetterTopic == b.deadLetterTopic
            && a.metadata == b.metadata && a.ignoredRules == b.ignoredRules
    }
}
