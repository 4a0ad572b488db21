import Agents
import Config
import Engine
import GRPCCore
import GRPCServing
import HTTPServing
import Logging
import MoltProtos
import Persistence
import ServiceLifecycle

/// Every source of declarative subscriptions in one place, between the sources and `AppSubscriptions`: the
/// `--components` files, each file-agent file, each etcd key (each handing its whole set through `declared`), and
/// the Control API's own subscriptions (`ControlSubscriptions`: added, changed and removed by name, kept in the
/// state directory and restored at start). Each Control API subscription is a source of its own (`control:<name>`).
///
/// Precedence, consistent with the components' (what an operator applies through the Control API at run time
/// wins over the files, and a restart keeps it so):
/// - by name: a Control API subscription overrides a file's or an etcd key's of the same `metadata.name`, which
///   stops while it exists (listed as "overridden") and comes back when it is removed through the Control API;
///   its source still declares it.
/// - by (pubsub, topic), as between any declarative sources (`RunningAppSubscriptions`): the app's programmatic
///   subscription wins; otherwise the first source to claim the topic keeps it and a later one is refused (listed
///   as "refused", naming the source that runs). Two Control API subscriptions never share a topic: the second
///   apply is refused.
/// A handover between sources starts the new owner's set before it drops the old one's, so an identical
/// subscription moves without a restart.
///
/// Thread: an actor. A change is saved (on the store's own thread) before it takes effect, and undone if saving fails.
actor SubscriptionRegistry: ControlSubscriptions, Service {
    static let controlPrefix = "control:"

    private let app: AppSubscriptions?
    private let appID: String
    private let store: SubscriptionStore?
    private let logger: Logger
    /// Each file/etcd source's subscriptions, as last given.
    private var given: [String: [SubscriptionSpec]] = [:]
    /// The Control API's subscriptions, by name.
    private var control: [String: StoredSubscription]

    init(app: AppSubscriptions?, appID: String, bootstrap: [SubscriptionSpec], restored: [StoredSubscription],
         store: SubscriptionStore?, logger: Logger) {
        (self.app, self.appID, self.store, self.logger) = (app, appID, store, logger)
        if !bootstrap.isEmpty { given[AppSubscriptions.bootstrapSource] = bootstrap }
        control = Dictionary(restored.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
    }

    /// `specs` without the names the Control API overrides.
    static func effective(_ specs: [SubscriptionSpec], overriddenBy control: Set<String>) -> [SubscriptionSpec] {
        specs.filter { !control.contains($0.name) }
    }

    /// Starts the restored Control API subscriptions, then waits for shutdown (`AppSubscriptions` stops them all).
    func run() async throws {
        if app == nil, !control.isEmpty {
            logger.warning("subscriptions added through the Control API need an app to deliver to: set --app-port; they are not run",
                           metadata: ["subscriptions": "\(control.keys.sorted())"])
        } else if !control.isEmpty {
            logger.info("subscriptions restored from the state directory", metadata: ["subscriptions": "\(control.keys.sorted())"])
            for name in control.keys.sorted() { await takeEffect(name) }
        }
        try? await gracefulShutdown()
    }

    // MARK: - Sources (files, etcd keys)

    /// Source `source` now declares exactly `specs` (the agents' and SIGHUP's `DeclarativeSubscriptions`).
    func declared(source: String, _ specs: [SubscriptionSpec]) async {
        given[source] = specs.isEmpty ? nil : specs
        guard app != nil else {
            if !specs.isEmpty {
                logger.warning("declarative subscriptions need an app to deliver to: set --app-port; they are not run",
                               metadata: ["source": "\(source)", "subscriptions": "\(specs.map(\.name))"])
            }
            return
        }
        for spec in specs where control[spec.name] != nil {
            logger.info("a declarative subscription is overridden by the Control API's of the same name", metadata: [
                "subscription": "\(spec.name)", "source": "\(source)"])
        }
        await reconcile(source)
    }

    private func reconcile(_ source: String) async {
        guard let app else { return }
        let specs: [SubscriptionSpec]
        if source.hasPrefix(Self.controlPrefix) {
            specs = control[String(source.dropFirst(Self.controlPrefix.count))].map { [Self.spec($0)] } ?? []
        } else {
            specs = Self.effective(given[source] ?? [], overriddenBy: Set(control.keys))
        }
        await app.reconcile(source: source, ComponentFiles.appSubscriptions(specs, appID: appID, logger: logger))
    }

    /// Control API subscription `name` (as it is now, or gone) takes effect: its own source first, then the
    /// sources it overrides or gives back, so that a topic moves to its new owner before the old one drops it.
    private func takeEffect(_ name: String) async {
        let others = given.filter { $0.value.contains { $0.name == name } }.keys.sorted()
        if control[name] != nil {
            await reconcile(Self.controlPrefix + name)
            for source in others { await reconcile(source) }
        } else {
            for source in others { await reconcile(source) }
            await reconcile(Self.controlPrefix + name)
        }
    }

    // MARK: - Control API

    func apply(_ request: Molt_Control_V1_ApplySubscriptionRequest) async throws(RPCError) -> Molt_Control_V1_ApplySubscriptionResponse {
        let (definitions, readWarnings) = try SubscriptionRequests.definitions(request)
        var warnings = readWarnings
        var names = Set<String>()
        for definition in definitions where !names.insert(definition.name).inserted {
            throw RPCError(code: .invalidArgument, message: "subscription '\(definition.name)' is given twice")
        }
        for definition in definitions {
            let others = control.values.filter { $0.name != definition.name && !names.contains($0.name) }
                + definitions.filter { $0.name != definition.name }
            if let other = others.first(where: { $0.pubsubname == definition.pubsubname && $0.topic == definition.topic }) {
                throw RPCError(code: .failedPrecondition, message: "subscription '\(other.name)' of the Control API already subscribes "
                    + "pubsub '\(definition.pubsubname)' topic '\(definition.topic)': remove it, or apply this one under that name")
            }
        }
        var actions: [String: String] = [:]
        let before = control
        for definition in definitions {
            actions[definition.name] = control[definition.name] == nil ? "added" : control[definition.name] == definition ? "unchanged" : "changed"
            control[definition.name] = definition
        }
        try await save(undo: { registry in for definition in definitions { registry.control[definition.name] = before[definition.name] } })
        for definition in definitions where actions[definition.name] != "unchanged" {
            logger.info("subscription \(actions[definition.name] ?? "") through the Control API", metadata: [
                "subscription": "\(definition.name)", "pubsub": "\(definition.pubsubname)", "topic": "\(definition.topic)",
                "route": "\(definition.defaultRoute)"])
            await takeEffect(definition.name)
        }
        for definition in definitions where !definition.scopes.isEmpty && !definition.scopes.contains(appID) {
            warnings.append("warning: subscription '\(definition.name)' is scoped to \(definition.scopes), not to this app ('\(appID)'): it is kept, not run")
        }
        let statuses = await list().subscriptions
        var response = Molt_Control_V1_ApplySubscriptionResponse()
        response.warnings = warnings
        response.applied = definitions.map { definition in
            var applied = Molt_Control_V1_SubscriptionApplied()
            applied.name = definition.name
            applied.action = actions[definition.name] ?? ""
            if let status = statuses.first(where: { $0.sourceKind == "control-api" && $0.subscription.name == definition.name }) {
                applied.status = status
            }
            return applied
        }
        return response
    }

    func remove(name: String) async throws(RPCError) -> Molt_Control_V1_RemoveSubscriptionResponse {
        guard let existing = control[name] else {
            let sources = given.keys.sorted().flatMap { source in
                (given[source] ?? []).filter { $0.name == name }.map { Self.describe(source, $0) }
            }
            if !sources.isEmpty {
                throw RPCError(code: .failedPrecondition, message: "subscription '\(name)' is declared by \(sources.joined(separator: " and ")), "
                    + "not added through the Control API: change or delete it there")
            }
            throw RPCError(code: .notFound, message: "no subscription named '\(name)' was added through the Control API"
                + (control.isEmpty ? " (it has none)" : " (it has: \(control.keys.sorted().joined(separator: ", ")))"))
        }
        control[name] = nil
        try await save(undo: { $0.control[name] = existing })
        logger.info("subscription removed through the Control API", metadata: ["subscription": "\(name)"])
        await takeEffect(name)
        var response = Molt_Control_V1_RemoveSubscriptionResponse()
        response.removed = Molt_Control_V1_Subscription(existing)
        return response
    }

    /// Persists the Control API's set; when that fails, `undo` restores the previous one and the call fails.
    private func save(undo: (isolated SubscriptionRegistry) -> Void) async throws(RPCError) {
        guard let store else { return }
        do {
            try await store.save(Array(control.values))
        } catch {
            undo(self)
            logger.error("persisting the Control API's subscriptions failed; nothing changed", metadata: ["error": "\(error)"])
            throw RPCError(code: .internalError, message: "the change could not be written to the state directory, so nothing changed: \(error)")
        }
    }

    func list() async -> Molt_Control_V1_ListSubscriptionsResponse {
        var statuses: [Molt_Control_V1_SubscriptionStatus] = []
        let overridden = Set(control.keys)
        for entry in await app?.listing() ?? [] {
            var status = Molt_Control_V1_SubscriptionStatus()
            status.state = entry.state
            if entry.state == "refused", let owner = entry.runningFrom {
                status.detail = "pubsub '\(entry.subscription.pubsub)' topic '\(entry.subscription.topic)' is subscribed by \(Self.describe(owner))"
            }
            switch entry.source {
            case AppSubscriptions.programmaticSource:
                (status.sourceKind, status.source) = ("programmatic", "GET /dapr/subscribe")
                status.subscription = Molt_Control_V1_Subscription(entry.subscription)
            case let source where source.hasPrefix(Self.controlPrefix):
                (status.sourceKind, status.source) = ("control-api", "control API")
                guard let definition = control[String(source.dropFirst(Self.controlPrefix.count))] else { continue }
                status.subscription = Molt_Control_V1_Subscription(definition)
            case let source:
                let spec = Self.effective(given[source] ?? [], overriddenBy: overridden).first {
                    $0.pubsub == entry.subscription.pubsub && $0.topic == entry.subscription.topic && $0.applies(to: appID)
                }
                (status.sourceKind, status.source) = Self.fileOrEtcd(source, spec)
                status.subscription = spec.map { Molt_Control_V1_Subscription($0) } ?? Molt_Control_V1_Subscription(entry.subscription)
            }
            statuses.append(status)
        }
        // What no running set holds: overridden by name, or scoped to other apps.
        for source in given.keys.sorted() {
            for spec in given[source] ?? [] where overridden.contains(spec.name) || !spec.applies(to: appID) {
                var status = Molt_Control_V1_SubscriptionStatus()
                (status.sourceKind, status.source) = Self.fileOrEtcd(source, spec)
                status.subscription = Molt_Control_V1_Subscription(spec)
                (status.state, status.detail) = overridden.contains(spec.name)
                    ? ("overridden", "the Control API's subscription '\(spec.name)' replaces it")
                    : ("not-scoped", "scopes \(spec.scopes) do not include this app ('\(appID)')")
                statuses.append(status)
            }
        }
        for definition in control.values.sorted(by: { $0.name < $1.name }) where !definition.scopes.isEmpty && !definition.scopes.contains(appID) {
            var status = Molt_Control_V1_SubscriptionStatus()
            (status.sourceKind, status.source) = ("control-api", "control API")
            status.subscription = Molt_Control_V1_Subscription(definition)
            (status.state, status.detail) = ("not-scoped", "scopes \(definition.scopes) do not include this app ('\(appID)')")
            statuses.append(status)
        }
        var response = Molt_Control_V1_ListSubscriptionsResponse()
        response.subscriptions = statuses
        return response
    }

    // MARK: - Naming sources

    static func fileOrEtcd(_ source: String, _ spec: SubscriptionSpec?) -> (kind: String, source: String) {
        if source.hasPrefix("etcd:") { return ("etcd", String(source.dropFirst("etcd:".count))) }
        return ("file", spec?.origin.map { "\($0)" } ?? source)
    }

    /// A declaring source, by the place of `spec` in it.
    static func describe(_ source: String, _ spec: SubscriptionSpec) -> String {
        if source.hasPrefix("etcd:") { return "etcd key \(source.dropFirst("etcd:".count))" }
        return spec.origin.map { "file \($0)" } ?? describe(source)
    }

    static func describe(_ source: String) -> String {
        switch source {
        case AppSubscriptions.programmaticSource: "the app's programmatic subscription (GET /dapr/subscribe)"
        case AppSubscriptions.bootstrapSource: source
        case let control where control.hasPrefix(controlPrefix): "the Control API's subscription '\(control.dropFirst(controlPrefix.count))'"
        case let key where key.hasPrefix("etcd:"): "etcd key \(key.dropFirst("etcd:".count))"
        default: "file \(source)"
        }
    }

    /// A Control API subscription as the declarative model (its rules carried as a count: molt delivers to the
    /// default route).
    static func spec(_ definition: StoredSubscription) -> SubscriptionSpec {
        SubscriptionSpec(name: definition.name, pubsub: definition.pubsubname, topic: definition.topic, route: definition.defaultRoute,
                         ignoredRules: definition.rules.count, deadLetterTopic: definition.deadLetterTopic, metadata: definition.metadata,
                         scopes: definition.scopes, origin: ConfigOrigin(file: "control API"))
    }
}
