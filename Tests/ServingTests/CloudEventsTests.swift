#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ServingCore
import Testing

/// Publishing and reading CloudEvents as Dapr does (`CloudEvents`).
struct CloudEventsTests {
    private func object(_ bytes: [UInt8]) throws -> [String: JSONValue] {
        guard case .object(let object) = try JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else {
            Issue.record("not a JSON object")
            return [:]
        }
        return object
    }

    @Test func jsonDataIsWrappedInDaprsEnvelope() throws {
        let published = try CloudEvents.publish(data: Array(#"{"orderId":1}"#.utf8), contentType: "application/json", topic: "orders",
                                                pubsub: "pubsub", appID: "checkout", metadata: [:], traceParent: "00-abc-def-01",
                                                id: "id-1", time: Date(timeIntervalSince1970: 0))
        #expect(published.contentType == "application/cloudevents+json")
        let event = try object(published.data)
        #expect(event["id"] == .string("id-1"))
        #expect(event["source"] == .string("checkout"))
        #expect(event["type"] == .string("com.dapr.event.sent"))
        #expect(event["specversion"] == .string("1.0"))
        #expect(event["datacontenttype"] == .string("application/json"))
        #expect(event["topic"] == .string("orders"))
        #expect(event["pubsubname"] == .string("pubsub"))
        #expect(event["traceparent"] == .string("00-abc-def-01"))
        #expect(event["traceid"] == .string("00-abc-def-01"))
        #expect(event["time"] == .string("1970-01-01T00:00:00Z"))
        #expect(event["data"] == .object(["orderId": .integer(1)]))
    }

    @Test func textIsAStringBinaryIsBase64AndNoContentTypeIsText() throws {
        let text = try object(CloudEvents.publish(data: Array("hi".utf8), contentType: "", topic: "t", pubsub: "p", appID: "a", metadata: [:]).data)
        #expect(text["datacontenttype"] == .string("text/plain"))
        #expect(text["data"] == .string("hi"))
        let binary = try object(CloudEvents.publish(data: [0, 255], contentType: "application/octet-stream", topic: "t", pubsub: "p",
                                                    appID: "a", metadata: [:]).data)
        #expect(binary["data_base64"] == .string("AP8="))
        #expect(binary["data"] == nil)
        let badJSON = try object(CloudEvents.publish(data: Array("{nope".utf8), contentType: "application/json; charset=utf-8", topic: "t",
                                                     pubsub: "p", appID: "a", metadata: [:]).data)
        #expect(badJSON["data"] == .string("{nope"))
    }

    @Test func rawPayloadIsPublishedAsIs() throws {
        let published = try CloudEvents.publish(data: [1, 2, 3], contentType: "application/x", topic: "t", pubsub: "p", appID: "a",
                                                metadata: ["rawPayload": "true"])
        #expect(published.data == [1, 2, 3] && published.contentType == "application/x")
        #expect(throws: CloudEvents.PublishProblem.badRawPayload("yes")) {
            try CloudEvents.publish(data: [], contentType: "", topic: "t", pubsub: "p", appID: "a", metadata: ["rawPayload": "yes"])
        }
    }

    @Test func anAppsCloudEventIsKeptWithDaprsFields() throws {
        let given = #"{"id":"mine","source":"app","type":"my.type","specversion":"1.0","data":"x","custom":7,"topic":"other"}"#
        let event = try object(CloudEvents.publish(data: Array(given.utf8), contentType: "application/cloudevents+json", topic: "t",
                                                   pubsub: "p", appID: "a", metadata: [:]).data)
        #expect(event["id"] == .string("mine"))
        #expect(event["type"] == .string("my.type"))
        #expect(event["custom"] == .integer(7))
        #expect(event["topic"] == .string("t"))
        #expect(event["pubsubname"] == .string("p"))
        let minimal = try object(CloudEvents.publish(data: Array(#"{"id":"m"}"#.utf8), contentType: "application/cloudevents+json",
                                                     topic: "t", pubsub: "p", appID: "a", metadata: [:]).data)
        #expect(minimal["source"] == .string("Dapr"))
        #expect(minimal["type"] == .string("com.dapr.event.sent"))
        #expect(throws: CloudEvents.PublishProblem.notACloudEvent) {
            try CloudEvents.publish(data: Array("[1]".utf8), contentType: "application/cloudevents+json", topic: "t", pubsub: "p",
                                    appID: "a", metadata: [:])
        }
    }

    @Test func metadataOverridesDaprsValues() throws {
        let event = try object(CloudEvents.publish(data: [], contentType: "text/plain", topic: "t", pubsub: "p", appID: "a",
                                                   metadata: ["cloudevent.id": "x", "cloudevent.source": "s", "cloudevent.type": "y"]).data)
        #expect(event["id"] == .string("x"))
        #expect(event["source"] == .string("s"))
        #expect(event["type"] == .string("y"))
    }

    @Test func aDeliveredEnvelopeReadsAsTheAppReceivesIt() throws {
        let published = try CloudEvents.publish(data: Array(#"{"a":[1,2]}"#.utf8), contentType: "application/json", topic: "t", pubsub: "p",
                                                appID: "a", metadata: [:], id: "e1")
        let event = CloudEvents.event(from: published.data, topic: "t", pubsub: "p", rawPayload: false)
        #expect(event.id == "e1")
        #expect(event.source == "a")
        #expect(event.dataContentType == "application/json")
        #expect(event.data == Array(#"{"a":[1,2]}"#.utf8))
        #expect(event.extensions["topic"] == .string("t"))
        #expect(event.extensions["id"] == nil && event.extensions["data"] == nil)
        let binary = try CloudEvents.publish(data: [9, 8], contentType: "application/octet-stream", topic: "t", pubsub: "p", appID: "a", metadata: [:])
        #expect(CloudEvents.event(from: binary.data, topic: "t", pubsub: "p", rawPayload: false).data == [9, 8])
        let text = try CloudEvents.publish(data: Array("hello".utf8), contentType: "text/plain", topic: "t", pubsub: "p", appID: "a", metadata: [:])
        #expect(CloudEvents.event(from: text.data, topic: "t", pubsub: "p", rawPayload: false).data == Array("hello".utf8))
    }

    @Test func rawMessagesReadAsDaprsFromRawPayload() {
        let event = CloudEvents.event(from: Array("plain".utf8), topic: "t", pubsub: "p", rawPayload: false, freshID: { "r1" })
        #expect(event.id == "r1")
        #expect(event.dataContentType == "application/octet-stream")
        #expect(event.data == Array("plain".utf8))
        #expect(event.source == "Dapr")
    }
}
