#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// CloudEvents 1.0 as Dapr builds and reads them, shared by gRPC and HTTP publishing and by subscriptions.
///
/// Publishing (dapr/dapr `pkg/runtime/pubsub/cloudevents.go` NewCloudEvent, components-contrib
/// `pubsub/envelope.go` NewCloudEventsEnvelope / FromCloudEvent, `contenttype/utils.go`):
/// - metadata `rawPayload=true`: the app's bytes go to the broker as they are, with the app's content type;
/// - content type `application/cloudevents+json`: the app's event is kept (it must be a JSON object) with
///   `topic`, `pubsubname`, `traceid`, `traceparent`, `tracestate` set by Dapr and `source`, `type`,
///   `specversion` defaulted when missing (`Dapr`, `com.dapr.event.sent`, `1.0`);
/// - otherwise a new envelope: `id` (a random UUID), `source` (the app id), `type` `com.dapr.event.sent`,
///   `specversion` `1.0`, `datacontenttype` (the app's, default `text/plain`), `topic`, `pubsubname`,
///   `traceid`/`traceparent` (the caller's W3C traceparent, or empty), `tracestate`, `time`, and the data:
///   `data` as JSON for a JSON content type (as a string when it does not parse), `data_base64` for
///   `application/octet-stream`, else `data` as a string. Metadata `cloudevent.id`, `cloudevent.source`,
///   `cloudevent.type`, `cloudevent.traceparent`, `cloudevent.tracestate` replace Dapr's values (Dapr's
///   "Override Dapr-generated CloudEvent values").
///
/// Reading (`pkg/runtime/pubsub/subscription.go` GRPCEnvelopeFromSubscriptionMessage): `Event` holds the
/// attributes an app receives (TopicEventRequest), `data` decoded by content type, the other attributes as
/// extensions. A message that is not a JSON object, or any message of a subscription with `rawPayload=true`,
/// is read as Dapr's FromRawPayload reads it (a fresh id, `application/octet-stream`, the bytes as data).
///
/// Encoding: compact JSON, keys sorted (`JSONCoding`); JSON data keeps integers exact up to 64 bits, other
/// numbers as doubles (Go's UseNumber keeps every digit: the one difference).
public enum CloudEvents {
    /// The content type of a CloudEvent in JSON, what an envelope is published as.
    public static let contentType = "application/cloudevents+json"
    static let defaultType = "com.dapr.event.sent"
    static let specVersion = "1.0"
    static let defaultDataContentType = "text/plain"
    /// Attributes TopicEventRequest carries in fields of its own, never among the extensions.
    static let ownAttributes: Set<String> = ["id", "source", "type", "specversion", "datacontenttype", "data", "data_base64"]

    /// What publishing puts on the broker.
    public struct Published: Sendable, Equatable {
        public var data: [UInt8]
        public var contentType: String
    }

    /// Why an app's publish cannot be turned into a message (Dapr's codes; `APIFailure` gives their statuses).
    public enum PublishProblem: Error, Equatable, Sendable {
        /// `rawPayload` is not a boolean (ERR_PUBSUB_REQUEST_METADATA).
        case badRawPayload(String)
        /// A `application/cloudevents+json` body that is not a JSON object (ERR_PUBSUB_CLOUD_EVENTS_SER).
        case notACloudEvent
    }

    /// Dapr's `rawPayload` metadata, read as Go's strconv.ParseBool reads it; absent is false.
    public static func isRawPayload(_ metadata: [String: String]) throws(PublishProblem) -> Bool {
        guard let value = metadata["rawPayload"] else { return false }
        switch value {
        case "1", "t", "T", "TRUE", "true", "True": return true
        case "0", "f", "F", "FALSE", "false", "False", "": return false
        default: throw .badRawPayload(value)
        }
    }

    /// The message one publish puts on the broker. `traceParent`/`traceState`: the caller's W3C trace
    /// context headers, if any. `id` and `time` are parameters for the tests.
    public static func publish(data: [UInt8], contentType: String, topic: String, pubsub: String, appID: String,
                               metadata: [String: String], traceParent: String? = nil, traceState: String? = nil,
                               id: String = UUID().uuidString.lowercased(), time: Date = Date()) throws(PublishProblem) -> Published {
        if try isRawPayload(metadata) { return Published(data: data, contentType: contentType) }
        let traceParent = metadata["cloudevent.traceparent"] ?? traceParent ?? ""
        let traceState = metadata["cloudevent.tracestate"] ?? traceState ?? ""
        var event: [String: JSONValue]
        if isContentType(contentType, "application/cloudevents+json") {
            guard case .object(let given)? = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(data)) else {
                throw .notACloudEvent
            }
            event = given
            if event["source"] == nil { event["source"] = .string("Dapr") }  // DefaultCloudEventSource
            if event["type"] == nil { event["type"] = .string(defaultType) }
            if event["specversion"] == nil { event["specversion"] = .string(specVersion) }
        } else {
            let dataContentType = contentType.isEmpty ? defaultDataContentType : contentType
            event = [
                "id": .string(metadata["cloudevent.id"] ?? id),
                "source": .string(metadata["cloudevent.source"] ?? appID),
                "type": .string(metadata["cloudevent.type"] ?? defaultType),
                "specversion": .string(specVersion),
                "datacontenttype": .string(dataContentType),
                "time": .string(time.formatted(.iso8601)),
            ]
            if isContentType(dataContentType, "application/json") {
                event["data"] = (try? JSONCoding.decoder.decode(JSONValue.self, from: Data(data))) ?? .string(String(decoding: data, as: UTF8.self))
            } else if isContentType(dataContentType, "application/octet-stream") {
                event["data_base64"] = .string(Data(data).base64EncodedString())
            } else {
                event["data"] = .string(String(decoding: data, as: UTF8.self))
            }
        }
        event["topic"] = .string(topic)
        event["pubsubname"] = .string(pubsub)
        event["traceid"] = .string(traceParent)
        event["traceparent"] = .string(traceParent)
        event["tracestate"] = .string(traceState)
        return Published(data: JSONValue.object(event).storedBytes, contentType: Self.contentType)
    }

    /// An event as an app receives it (the fields of Dapr's TopicEventRequest).
    public struct Event: Sendable, Equatable {
        public var id: String
        public var source: String
        public var type: String
        public var specVersion: String
        public var dataContentType: String
        public var data: [UInt8]
        /// Every other attribute (topic, pubsubname, traceparent, time, an app's own ones, …).
        package var extensions: [String: JSONValue]
    }

    /// Reads a delivered message as Dapr reads it for an app. `rawPayload`: the subscription's metadata says
    /// the messages are not CloudEvents.
    public static func event(from data: [UInt8], topic: String, pubsub: String, rawPayload: Bool,
                             freshID: () -> String = { UUID().uuidString.lowercased() }) -> Event {
        guard !rawPayload, case .object(let attributes)? = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(data)) else {
            // Dapr's FromRawPayload.
            return Event(id: freshID(), source: "Dapr", type: defaultType, specVersion: specVersion,
                         dataContentType: "application/octet-stream", data: data,
                         extensions: ["topic": .string(topic), "pubsubname": .string(pubsub)])
        }
        func string(_ name: String) -> String {
            if case .string(let value)? = attributes[name] { return value }
            return ""
        }
        let dataContentType = string("datacontenttype")
        var bytes: [UInt8] = []
        if case .string(let encoded)? = attributes["data_base64"] {
            bytes = Data(base64Encoded: encoded).map(Array.init) ?? []
        } else if let value = attributes["data"], value != .null {
            if isStringContentType(dataContentType) {
                if case .string(let text) = value { bytes = Array(text.utf8) }
            } else if isContentType(dataContentType, "application/json") || isContentType(dataContentType, contentType) {
                bytes = value.storedBytes
            }
        }
        return Event(id: string("id"), source: string("source"), type: string("type"), specVersion: string("specversion"),
                     dataContentType: dataContentType, data: bytes,
                     extensions: attributes.filter { !ownAttributes.contains($0.key) })
    }

    /// components-contrib's isContentType: equal ignoring case, or equal up to a `;` (parameters).
    public static func isContentType(_ contentType: String, _ expected: String) -> Bool {
        let lower = contentType.lowercased()
        if lower == expected { return true }
        guard let semicolon = lower.firstIndex(of: ";") else { return false }
        return lower[..<semicolon] == expected
    }

    /// components-contrib's IsStringContentType: `text/*` or `application/xml`.
    static func isStringContentType(_ contentType: String) -> Bool {
        contentType.lowercased().hasPrefix("text/") || isContentType(contentType, "application/xml")
    }
}
