#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Engine
import EventRouting
import Logging
import PluginHost
import ServingCore

/// Delivers the events of one classic subscription to the app, as Dapr does (dapr/dapr `pkg/runtime/subscription`):
/// each message goes to the path the subscription's routing rules choose for it (`AppSubscription.path(for:)`).
/// Over HTTP (`publishMessageHTTP`) it is POSTed there with `Content-Type: application/cloudevents+json` and the
/// CloudEvent as the body (a message that is not a CloudEvent, or a `rawPayload` subscription's, is wrapped as
/// Dapr's FromRawPayload does); over gRPC it goes to OnTopicEvent with that path (`GRPCAppSubscriber`, which reads
/// its answer into the same verdicts). Routing, as Dapr's subscription handler:
/// - no rule matches and there is no default route: dropped (debug log), sent to the dead-letter topic if any;
/// - a rule's match cannot be evaluated for the event (missing field, type mismatch, not a bool): logged as an
///   error, sent to the dead-letter topic when there is one, else delivered again (a counted retry: after
///   `maxRetries` it is dropped, molt's bound where Dapr would retry for ever).
///
/// The app's HTTP answer:
/// - 2xx with `{"status": "SUCCESS"}`, an empty status, or a body that is not such JSON: ACK;
/// - 2xx with `{"status": "RETRY"}` or an unknown status, or any status but 2xx and 404: RETRY;
/// - 2xx with `{"status": "DROP"}`: dropped with a warning, or sent to the dead-letter topic when there is one
///   (Dapr's `ErrMessageDropped` handling in `pkg/runtime/subscription`; if that publish fails, RETRY);
/// - 404 (gRPC: UNIMPLEMENTED): dropped, logged as "non-retriable" (Dapr acknowledges it; no dead letter);
/// - the app unreachable (no connection, timeout): RETRY, not counted against `maxRetries` (the app never saw it).
///
/// Bounded retries: `RedeliveryBudget` (after `maxRetries` RETRY answers for one message, by CloudEvent id, the
/// next RETRY sends it to the dead-letter topic of the same pubsub and ACKs it, or without one drops it with a
/// warning).
///
/// Thread: one task per subscription (the cooperative pool) that awaits each POST in order, so events reach the
/// app in the order the pubsub delivers them; the I/O runs on the transport's event loops.
struct PubsubEventDelivery: Sendable {
    let engine: Engine
    let subscriber: any AppSubscriber
    let logger: Logger

    /// What the app's answer means for the message.
    enum Verdict: Equatable {
        case success
        /// The app asked for it again (counted).
        case retry(String)
        /// The app could not be reached (not counted).
        case unreachable(String)
        /// `{"status": "DROP"}`.
        case drop
        /// 404 (gRPC: UNIMPLEMENTED): the app has no handler for it; dropped.
        case nonRetriable(String)
    }

    /// Dapr's reading of the app's answer to one event.
    static func verdict(status: Int, body: [UInt8]) -> Verdict {
        guard (200..<300).contains(status) else {
            return status == 404 ? .nonRetriable("status code returned: 404") : .retry("the app answered status \(status)")
        }
        guard case .object(let fields)? = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(body)),
              case .string(let given)? = fields["status"] else { return .success }
        switch given.uppercased() {
        case "", "SUCCESS": return .success
        case "DROP": return .drop
        case "RETRY": return .retry("the app answered RETRY")
        default: return .retry("the app answered the unknown status '\(given)'")
        }
    }

    /// The body POSTed for `message`: the CloudEvent as stored, or a raw payload wrapped in one; `event` is that
    /// CloudEvent decoded (what routing rules evaluate).
    static func cloudEvent(_ message: PubsubMessage, pubsub: String, rawPayload: Bool) -> (body: [UInt8], id: String, event: JSONValue) {
        if !rawPayload, case .object(let attributes)? = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(message.data)) {
            if case .string(let id)? = attributes["id"], !id.isEmpty { return (message.data, id, .object(attributes)) }
            return (message.data, "", .object(attributes))
        }
        let id = UUID().uuidString.lowercased()
        let event: [String: JSONValue] = [
            "id": .string(id), "source": .string("Dapr"), "type": .string("com.dapr.event.sent"), "specversion": .string("1.0"),
            "datacontenttype": .string("application/octet-stream"), "data_base64": .string(Data(message.data).base64EncodedString()),
            "topic": .string(message.topic), "pubsubname": .string(pubsub),
        ]
        return (JSONValue.object(event).storedBytes, "", .object(event))
    }

    /// Delivers `subscription`'s messages until its stream ends (unsubscribed, the component removed, or the
    /// task cancelled).
    func run(_ subscription: PubsubSubscription, _ spec: AppSubscription) async {
        let rawPayload = (try? CloudEvents.isRawPayload(spec.metadata)) ?? false
        let budget = RedeliveryBudget(metadata: spec.metadata, deadLetterTopic: spec.deadLetterTopic)
        var retries = RetryCounts()
        var unreachable = RateLimitedLog(interval: .seconds(10))
        for await delivery in subscription.deliveries {
            let message = delivery.message
            let (body, eventID, event) = Self.cloudEvent(message, pubsub: spec.pubsub, rawPayload: rawPayload)
            // Without a CloudEvent id, the message's bytes identify it across redeliveries.
            let key = eventID.isEmpty ? "bytes:\(message.data.hashValue)" : eventID
            var fields: Logger.Metadata = ["pubsub": "\(spec.pubsub)", "topic": "\(spec.topic)", "route": "\(spec.route)", "id": "\(eventID)"]
            let verdict: Verdict
            switch route(event, spec) {
            case .path(let path):
                fields["route"] = "\(path)"
                verdict = await subscriber.deliver(cloudEvent: body, path: path, spec)
            case .noMatch:
                logger.debug("no matching route for pub/sub event; dropped", metadata: fields)
                let deadLettered = await budget.sendToDeadLetter(message, pubsub: spec.pubsub, engine: engine, because: "no routing rule matched",
                                                                 logger: logger, fields: fields)
                delivery.answer(deadLettered ? .ack : .drop)
                continue
            case .failed(let error):
                logger.error("error finding matching route for pub/sub event", metadata: fields.merging(["error": "\(error)"]) { $1 })
                if !spec.deadLetterTopic.isEmpty {
                    let deadLettered = await budget.sendToDeadLetter(message, pubsub: spec.pubsub, engine: engine,
                                                                     because: "its routing rules failed: \(error)", logger: logger, fields: fields)
                    delivery.answer(deadLettered ? .ack : .retry)
                    continue
                }
                verdict = .retry("routing failed: \(error)")
            }
            switch verdict {
            case .success:
                await budget.settle(delivery, key: key, .ack, retries: &retries, pubsub: spec.pubsub, engine: engine, logger: logger, fields: fields)
            case .nonRetriable(let reason):
                retries.forget(key)
                logger.error("non-retriable error returned from app while processing pub/sub event: \(reason); dropped",
                             metadata: fields)
                delivery.answer(.drop)
            case .drop:
                logger.warning("DROP status returned from app while processing pub/sub event", metadata: fields)
                await budget.settle(delivery, key: key, .drop(reason: "the app answered DROP"), retries: &retries, pubsub: spec.pubsub,
                                    engine: engine, logger: logger, fields: fields)
            case .unreachable(let problem):
                unreachable.record { suppressed in
                    logger.warning("the app could not be reached to deliver a pub/sub event; it will be delivered again", metadata: fields.merging([
                        "error": "\(problem)", "failures_not_logged": "\(suppressed)"]) { $1 })
                }
                delivery.answer(.retry)
            case .retry(let reason):
                await budget.settle(delivery, key: key, .retry(reason: reason), retries: &retries, pubsub: spec.pubsub, engine: engine,
                                    logger: logger, fields: fields)
            }
        }
    }

    enum Routing {
        case path(String)
        case noMatch
        case failed(RoutingError)
    }

    /// The path of `event` by `spec`'s rules.
    private func route(_ event: JSONValue, _ spec: AppSubscription) -> Routing {
        do throws(RoutingError) {
            guard let path = try spec.path(for: event) else { return .noMatch }
            return .path(path)
        } catch {
            return .failed(error)
        }
    }
}
