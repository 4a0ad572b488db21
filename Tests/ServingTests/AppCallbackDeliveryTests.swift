import AppCallback
import Foundation
import GRPCCore
@testable import HTTPServing
import MoltProtos
import ServingCore
import Testing

/// What a gRPC app receives and how its answers are read (`--app-protocol grpc`), as Dapr's gRPC delivery.
@Suite struct AppCallbackDeliveryTests {
    @Test func theTopicEventRequestCarriesTheCloudEventsFieldsDataAsBytesAndTheRestAsExtensions() throws {
        let published = try CloudEvents.publish(data: Array(#"{"a": 1}"#.utf8), contentType: "application/json", topic: "t", pubsub: "p",
                                                appID: "app", metadata: [:])
        let event = CloudEvents.event(from: published.data, topic: "t", pubsub: "p", rawPayload: false)
        let request = TopicEventEnvelope.request(event, topic: "t", pubsub: "p", path: "/orders")
        #expect(request.id == event.id && !request.id.isEmpty)
        #expect(request.specVersion == "1.0" && request.type == "com.dapr.event.sent" && request.source == "app")
        #expect(request.dataContentType == "application/json")
        #expect(try JSONSerialization.jsonObject(with: request.data) as? [String: Int] == ["a": 1])
        #expect(request.topic == "t" && request.pubsubName == "p" && request.path == "/orders")
        #expect(request.extensions.fields["pubsubname"]?.stringValue == "p")
        #expect(request.extensions.fields["data"] == nil && request.extensions.fields["id"] == nil)
    }

    @Test func theAppsListIsReadAsDaprReadsIt() {
        var response = Dapr_Proto_Runtime_V1_ListTopicSubscriptionsResponse()
        var plain = Dapr_Proto_Runtime_V1_TopicSubscription()
        (plain.pubsubName, plain.topic, plain.deadLetterTopic, plain.metadata) = ("p", "a", "a-dead", ["maxRetries": "2"])
        var routed = Dapr_Proto_Runtime_V1_TopicSubscription()
        (routed.pubsubName, routed.topic) = ("p", "b")
        routed.routes.default = "/b"
        var rule = Dapr_Proto_Runtime_V1_TopicRule()
        (rule.match, rule.path) = ("event.type == 'x'", "/x")
        routed.routes.rules = [rule]
        var nameless = Dapr_Proto_Runtime_V1_TopicSubscription()
        nameless.topic = "c"
        response.subscriptions = [plain, routed, nameless]
        let (subscriptions, problems) = GRPCAppSubscriber.subscriptions(response)
        #expect(subscriptions.map(\.topic) == ["a", "b"])
        #expect(subscriptions[0].route == "" && subscriptions[0].deadLetterTopic == "a-dead" && subscriptions[0].maxRetries == 2)
        // Dapr's gRPC default: without routes every event goes to path "".
        #expect((try? subscriptions[0].path(for: .object(["type": .string("any")]))) == "")
        #expect(subscriptions[1].route == "/b" && subscriptions[1].rules.map(\.path) == ["/x"])
        #expect((try? subscriptions[1].path(for: .object(["type": .string("x")]))) == "/x")
        #expect((try? subscriptions[1].path(for: .object(["type": .string("y")]))) == "/b")
        #expect(problems.count == 1 && problems[0].contains("entry 2"))
    }

    @Test func answersAndErrorsMeanWhatTheyMeanToDapr() {
        #expect(GRPCAppSubscriber.verdict(.success) == .success)
        #expect(GRPCAppSubscriber.verdict(.drop) == .drop)
        #expect(GRPCAppSubscriber.verdict(.retry) == .retry("the app answered RETRY"))
        guard case .retry = GRPCAppSubscriber.verdict(.UNRECOGNIZED(7)) else { Issue.record("an unknown status is a RETRY"); return }
        guard case .nonRetriable = GRPCAppSubscriber.verdict(RPCError(code: .unimplemented, message: "no handler")) else {
            Issue.record("UNIMPLEMENTED is non-retriable"); return
        }
        guard case .unreachable = GRPCAppSubscriber.verdict(RPCError(code: .unavailable, message: "connection refused")) else {
            Issue.record("UNAVAILABLE: the app was not reached"); return
        }
        guard case .retry = GRPCAppSubscriber.verdict(RPCError(code: .internalError, message: "boom")) else {
            Issue.record("another error is a RETRY"); return
        }
        guard case .nonRetriable = PubsubEventDelivery.verdict(status: 404, body: []) else { Issue.record("HTTP 404 is non-retriable"); return }
    }
}
