import AppCallback
import Engine
import FoundationEssentials
import Logging
import MoltProtos
import PluginHost
import ServingCore
import SwiftProtobuf
import Synchronization

/// Dapr's pub/sub over gRPC: PublishEvent, BulkPublishEvent and the streaming SubscribeTopicEventsAlpha1.
extension DaprService {
    // MARK: - Pub/sub

    /// Publishes the app's data to the topic, in a CloudEvent unless `rawPayload=true` (`CloudEvents`).
    public func publishEvent(_ request: Dapr_Proto_Runtime_V1_PublishEventRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> SwiftProtobuf.Google_Protobuf_Empty {
        try await pubsub.publish(pubsub: request.pubsubName, topic: request.topic,
                                 PubsubAPI.Entry(data: Array(request.data), contentType: request.dataContentType, metadata: request.metadata),
                                 deadline: deadline)
        return SwiftProtobuf.Google_Protobuf_Empty()
    }

    /// Publishes each entry; as Dapr (`pkg/api/grpc/grpc.go` BulkPublishEventAlpha1), any entry that fails fails
    /// the call (INTERNAL ERR_PUBSUB_PUBLISH_MESSAGE naming each failed entry), the others staying published.
    /// BulkPublishEventAlpha1 too.
    public func bulkPublishEvent(_ request: Dapr_Proto_Runtime_V1_BulkPublishRequest, _ deadline: ContinuousClock.Instant?) async throws(APIFailure) -> Dapr_Proto_Runtime_V1_BulkPublishResponse {
        let entries = request.entries.map { entry in
            (id: entry.entryID, entry: PubsubAPI.Entry(data: Array(entry.event), contentType: entry.contentType, metadata: entry.metadata))
        }
        let failed = try await pubsub.bulkPublish(pubsub: request.pubsubName, topic: request.topic, entries: entries,
                                                  metadata: request.metadata, deadline: deadline)
        guard failed.isEmpty else {
            throw APIFailure.pubsubPublishFailed(topic: request.topic, pubsub: request.pubsubName,
                                                 failed.map { "entry \($0.entryID): \($0.error)" }.joined(separator: "; "))
        }
        return Dapr_Proto_Runtime_V1_BulkPublishResponse()
    }

    /// Dapr's streaming subscription (`pkg/runtime/pubsub/streamer`): the client's first message is
    /// `initial_request` (else INVALID_ARGUMENT "initial request is required"); the server answers
    /// `initial_response`, then one `event_message` per delivery (a TopicEventRequest read from the CloudEvent),
    /// and the client answers each with `event_processed` (its id and SUCCESS, RETRY or DROP), which answers the
    /// delivery (ack, retry, drop). A second `initial_request` ends the call (INVALID_ARGUMENT, as Dapr); an
    /// `event_processed` naming no event waiting is ignored (Dapr logs it). When the client half-closes,
    /// cancels or goes away, the subscription ends and every delivery it has not answered is answered RETRY:
    /// the pubsub delivers it again (to another subscriber, or this one later). Retries are bounded
    /// (`RedeliveryBudget`, metadata `maxRetries`, default 10): past them a message goes to `dead_letter_topic` on
    /// the same pubsub (and is acknowledged), or without one is dropped with a warning; a DROP goes to
    /// `dead_letter_topic` too when there is one, as Dapr's streamer does.
    func subscribeTopicEventsAlpha1(_ requests: GRPCRequestMessages<Dapr_Proto_Runtime_V1_SubscribeTopicEventsRequestAlpha1>,
                                           _ deadline: ContinuousClock.Instant?,
                                           _ send: @escaping @Sendable (Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseAlpha1) async -> Bool) async throws(APIFailure) {
        var incoming = requests.makeIterator()
        guard let first = try await incoming.next() else { return }  // the client closed before subscribing
        guard case .initialRequest(let initial)? = first.subscribeTopicEventsRequestType else {
            throw APIFailure.badRequest("initial request is required")
        }
        let rawPayload = try PubsubAPI.rawPayload(initial.metadata)
        let subscription = try await pubsub.subscribe(pubsub: initial.pubsubName, topic: initial.topic, metadata: initial.metadata)
        let waiting = WaitingDeliveries()
        defer { waiting.retryAll() }
        var ready = Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseAlpha1()
        ready.initialResponse = Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseInitialAlpha1()
        guard await send(ready) else { return }
        let pubsubName = initial.pubsubName
        let budget = RedeliveryBudget(metadata: initial.metadata, deadLetterTopic: initial.deadLetterTopic)
        let engine = self.engine

        // Two loops, either ending the call: deliveries to the client, and the client's answers.
        let outcome = await withTaskGroup(of: APIFailure?.self) { group in
            group.addTask {
                for await delivery in subscription.deliveries {
                    let event = CloudEvents.event(from: delivery.message.data, topic: delivery.message.topic, pubsub: pubsubName,
                                                  rawPayload: rawPayload)
                    waiting.add(delivery, id: event.id)
                    var message = Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseAlpha1()
                    message.eventMessage = TopicEventEnvelope.request(event, topic: delivery.message.topic, pubsub: pubsubName)
                    guard await send(message) else { return nil }
                }
                return nil  // the subscription ended (unsubscribed, the pubsub removed)
            }
            group.addTask {
                // The rest of the client's messages (the first iterator is no longer used: one consumer at a time).
                var incoming = requests.makeIterator()
                var retries = RetryCounts()
                do throws(APIFailure) {
                    while let request = try await incoming.next() {
                        switch request.subscribeTopicEventsRequestType {
                        case .eventProcessed(let processed):
                            guard let delivery = waiting.take(id: processed.id) else { continue }
                            await budget.settle(delivery, key: processed.id, Self.answer(processed.status.status), retries: &retries,
                                                pubsub: pubsubName, engine: engine, logger: Self.subscriptionLogger, fields: [
                                                    "pubsub": "\(pubsubName)", "topic": "\(delivery.message.topic)", "id": "\(processed.id)"])
                        case .initialRequest:
                            return APIFailure.badRequest("duplicate initial request received")
                        case nil:
                            continue
                        }
                    }
                    return nil  // the client half-closed: it ends the subscription
                } catch {
                    return error
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        _ = await pubsub.unsubscribe(pubsub: pubsubName, id: subscription.id)
        if let outcome { throw outcome }
    }

    private static let subscriptionLogger = Logger(label: "molt")

    /// The streaming client's status as an answer to its delivery (RETRY and values this version does not know retry).
    static func answer(_ status: Dapr_Proto_Runtime_V1_TopicEventResponse.TopicEventResponseStatus) -> RedeliveryBudget.Answer {
        switch status {
        case .success: return .ack
        case .drop: return .drop(reason: "the subscriber answered DROP")
        default: return .retry(reason: "the subscriber answered RETRY")
        }
    }
}

/// The deliveries of one streaming subscription sent to the client and not yet answered, by CloudEvent id
/// (oldest first when an id repeats). Any thread.
final class WaitingDeliveries: Sendable {
    private let byID = Mutex<[String: [PubsubDelivery]]>([:])

    func add(_ delivery: PubsubDelivery, id: String) {
        byID.withLock { $0[id, default: []].append(delivery) }
    }

    /// The oldest delivery waiting under `id`, no longer waiting; nil when none is.
    func take(id: String) -> PubsubDelivery? {
        byID.withLock { waiting in
            guard var deliveries = waiting[id], !deliveries.isEmpty else { return nil }
            let first = deliveries.removeFirst()
            waiting[id] = deliveries.isEmpty ? nil : deliveries
            return first
        }
    }

    /// The subscription ended: whatever the client did not answer goes back to the pubsub.
    func retryAll() {
        let all = byID.withLock { waiting in
            defer { waiting.removeAll() }
            return waiting.values.flatMap { $0 }
        }
        for delivery in all { delivery.answer(.retry) }
    }
}
