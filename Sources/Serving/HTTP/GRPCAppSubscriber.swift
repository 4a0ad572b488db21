import AppCallback
import GRPCCore
import EventRouting
import Logging
import MoltProtos
import ServingCore

/// The app's subscriptions over gRPC (Dapr's `--app-protocol grpc`, its AppCallback service), read as Dapr reads
/// them (dapr/dapr `pkg/runtime/pubsub` GetSubscriptionsGRPC, `pkg/runtime/subscription/postman/grpc`):
/// - ListTopicSubscriptions lists them; UNIMPLEMENTED means none. Their routing rules (compiled when listed; an
///   entry with a match that does not compile is skipped) and `routes.default` are kept as the app gave them; with
///   neither, every event goes to path "" (Dapr's gRPC default).
/// - OnTopicEvent gets each event as a TopicEventRequest (`TopicEventEnvelope`, `path` the routed one); the answer's
///   status SUCCESS acks, RETRY (and a status this version does not know) retries, DROP drops (or dead-letters).
///   UNIMPLEMENTED is non-retriable: dropped (Dapr acknowledges it); UNAVAILABLE, DEADLINE_EXCEEDED and a call
///   that never reached the app are "unreachable" (retried, not counted, as for HTTP); any other gRPC error is a
///   RETRY (counted).
struct GRPCAppSubscriber: AppSubscriber {
    let channel: AppCallbackChannel

    var listCall: String { "ListTopicSubscriptions" }

    func listSubscriptions(logger: Logger) async -> SubscriptionListAnswer {
        let response: Dapr_Proto_Runtime_V1_ListTopicSubscriptionsResponse
        do {
            response = try await channel.listTopicSubscriptions()
        } catch let error as RPCError where error.code == .unimplemented {
            logger.info("the app has no programmatic subscriptions (ListTopicSubscriptions answered UNIMPLEMENTED)")
            return .listed([])
        } catch {
            return .notYet("\(error)")
        }
        let (subscriptions, problems) = Self.subscriptions(response)
        for skipped in problems { logger.error("ListTopicSubscriptions: \(skipped)") }
        return .listed(subscriptions)
    }

    /// The app's list as subscriptions; entries without a pubsub or a topic come back as problems.
    static func subscriptions(_ response: Dapr_Proto_Runtime_V1_ListTopicSubscriptionsResponse) -> (subscriptions: [AppSubscription], problems: [String]) {
        var subscriptions: [AppSubscription] = []
        var problems: [String] = []
        for (index, entry) in response.subscriptions.enumerated() {
            guard !entry.pubsubName.isEmpty, !entry.topic.isEmpty else {
                problems.append("entry \(index) has no pubsub_name or no topic; skipped")
                continue
            }
            var rules: [RoutingRule] = []
            do {
                for (ruleIndex, rule) in entry.routes.rules.enumerated() {
                    do {
                        rules.append(try RoutingRule(match: rule.match, path: rule.path))
                    } catch {
                        throw SubscriptionListError(message: "routes.rules[\(ruleIndex)].match: \(error)")
                    }
                }
            } catch {
                problems.append("entry \(index) (pubsub '\(entry.pubsubName)', topic '\(entry.topic)'): \(error); skipped")
                continue
            }
            var subscription = AppSubscription(pubsub: entry.pubsubName, topic: entry.topic, route: "",
                                               deadLetterTopic: entry.deadLetterTopic, metadata: entry.metadata, source: "programmatic")
            // Paths as the app gave them (the init would prefix "/"); Dapr's parseRoutingRulesGRPC: without rules and
            // a default, every event goes to path "".
            subscription.route = entry.routes.default
            subscription.rules = rules.isEmpty && subscription.route.isEmpty ? [RoutingRule(match: nil, path: "")] : rules
            subscriptions.append(subscription)
        }
        return (subscriptions, problems)
    }

    func deliver(cloudEvent: [UInt8], path: String, _ spec: AppSubscription) async -> PubsubEventDelivery.Verdict {
        let event = CloudEvents.event(from: cloudEvent, topic: spec.topic, pubsub: spec.pubsub, rawPayload: false)
        let request = TopicEventEnvelope.request(event, topic: spec.topic, pubsub: spec.pubsub, path: path)
        do {
            return Self.verdict(try await channel.onTopicEvent(request).status)
        } catch let error as RPCError {
            return Self.verdict(error)
        } catch {
            return .unreachable("\(error)")
        }
    }

    static func verdict(_ status: Dapr_Proto_Runtime_V1_TopicEventResponse.TopicEventResponseStatus) -> PubsubEventDelivery.Verdict {
        switch status {
        case .success: .success
        case .retry: .retry("the app answered RETRY")
        case .drop: .drop
        case .UNRECOGNIZED(let value): .retry("the app answered the unknown status \(value)")
        }
    }

    static func verdict(_ error: RPCError) -> PubsubEventDelivery.Verdict {
        switch error.code {
        case .unimplemented: .nonRetriable("the app answered UNIMPLEMENTED: \(error.message)")
        case .unavailable, .deadlineExceeded, .cancelled: .unreachable("\(error)")
        default: .retry("the app answered \(error.code): \(error.message)")
        }
    }
}
