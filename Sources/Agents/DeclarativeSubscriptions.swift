import Config

/// Where an agent hands the Dapr `kind: Subscription` documents of one source (a file of the file agent, an etcd
/// key): the source's whole set each time it is applied, `[]` when the source is gone. The host reconciles them
/// with the subscriptions running for the app (`AppSubscriptions.reconcile`); the agents do not know the app.
///
/// Thread: called from the agent's task after the source's components were applied; may suspend while removed or
/// changed subscriptions stop.
public typealias DeclarativeSubscriptions = @Sendable (_ source: String, _ subscriptions: [SubscriptionSpec]) async -> Void
