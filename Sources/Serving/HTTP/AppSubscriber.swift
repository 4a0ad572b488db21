import AppCallback
import AppChannel
import Logging

/// How molt reaches the app for its classic subscriptions (`--app-protocol`): the HTTP app channel or the gRPC
/// AppCallback service.
public enum AppSubscriberTransport: Sendable {
    case http(AppChannel)
    case grpc(AppCallbackChannel)

    var subscriber: any AppSubscriber {
        switch self {
        case .http(let channel): HTTPAppSubscriber(channel: channel)
        case .grpc(let channel): GRPCAppSubscriber(channel: channel)
        }
    }
}

/// The seam between the subscriptions and the app's protocol: asking the app for its programmatic subscriptions
/// and handing it one event. Everything else (subscribing, order, bounded retries, dead letters) is the same for
/// every protocol: `AppSubscriptions`, `KeepSubscribed`, `PubsubEventDelivery`.
///
/// Thread: called from the subscriptions' tasks (the cooperative pool); implementations suspend, never block.
protocol AppSubscriber: Sendable {
    /// The call that lists the subscriptions, for logs (`GET /dapr/subscribe`, `ListTopicSubscriptions`).
    var listCall: String { get }

    /// One attempt: the app's programmatic subscriptions (none when it has none, or an answer molt cannot use,
    /// logged), or why it could not answer yet (not up, a server error): the caller asks again.
    func listSubscriptions(logger: Logger) async -> SubscriptionListAnswer

    /// Hands the app the event `cloudEvent` (a CloudEvent, JSON) of subscription `spec` at `path`; what its answer
    /// means (`PubsubEventDelivery.Verdict`).
    func deliver(cloudEvent: [UInt8], path: String, _ spec: AppSubscription) async -> PubsubEventDelivery.Verdict
}

enum SubscriptionListAnswer: Sendable {
    case listed([AppSubscription])
    case notYet(String)
}
