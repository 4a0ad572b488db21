import AppChannel
import Logging
import ServingCore

/// The app's subscriptions over HTTP (Dapr's `--app-protocol http`): `GET /dapr/subscribe` lists them, each event
/// is POSTed to its route as a CloudEvent (`PubsubEventDelivery.verdict` reads the answer).
struct HTTPAppSubscriber: AppSubscriber {
    let channel: AppChannel

    var listCall: String { "GET /dapr/subscribe" }

    /// 2xx: the list (a body that is not one: none); 404: none; 5xx or no answer: not yet; other statuses: none.
    func listSubscriptions(logger: Logger) async -> SubscriptionListAnswer {
        let response: AppChannelResponse
        do {
            response = try await channel.get(path: "/dapr/subscribe")
        } catch {
            return .notYet("\(error)")
        }
        switch response.status {
        case 200..<300:
            do {
                let (subscriptions, problems) = try AppSubscription.programmatic(response.body)
                for skipped in problems { logger.error("GET /dapr/subscribe: \(skipped)") }
                return .listed(subscriptions)
            } catch {
                logger.error("GET /dapr/subscribe answered a body that is not a subscription list; no programmatic subscriptions",
                             metadata: ["error": "\(error)"])
                return .listed([])
            }
        case 404:
            logger.info("the app has no programmatic subscriptions (GET /dapr/subscribe answered 404)")
            return .listed([])
        case 500...:
            return .notYet("status \(response.status)")
        default:
            logger.error("GET /dapr/subscribe answered status \(response.status); no programmatic subscriptions")
            return .listed([])
        }
    }

    func deliver(cloudEvent: [UInt8], path: String, _ spec: AppSubscription) async -> PubsubEventDelivery.Verdict {
        do {
            let response = try await channel.post(path: path, body: cloudEvent, headers: [
                ("Content-Type", CloudEvents.contentType), ("pubsubname", spec.pubsub)])
            return PubsubEventDelivery.verdict(status: response.status, body: response.body)
        } catch {
            return .unreachable("\(error)")
        }
    }
}
