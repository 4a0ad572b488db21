#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MoltProtos
import ServingCore
import SwiftProtobuf

/// Dapr's TopicEventRequest for an event (dapr/dapr `pkg/runtime/pubsub` GRPCEnvelopeFromSubscriptionMessage):
/// the CloudEvent's id, source, type, spec version and data content type; its data as bytes (`data_base64`
/// decoded, JSON data as its JSON text, text data as its text); the other attributes as `extensions`. Shared by
/// the app's OnTopicEvent (`path`: the subscription's route) and the streaming subscription (`path` "").
public enum TopicEventEnvelope {
    public static func request(_ event: CloudEvents.Event, topic: String, pubsub: String, path: String = "") -> Dapr_Proto_Runtime_V1_TopicEventRequest {
        var request = Dapr_Proto_Runtime_V1_TopicEventRequest()
        request.id = event.id
        request.source = event.source
        request.type = event.type
        request.specVersion = event.specVersion
        request.dataContentType = event.dataContentType
        request.data = Data(event.data)
        request.topic = topic
        request.pubsubName = pubsub
        request.path = path
        var extensions = Google_Protobuf_Struct()
        extensions.fields = event.extensions.mapValues(protoValue)
        request.extensions = extensions
        return request
    }

    static func protoValue(_ value: JSONValue) -> Google_Protobuf_Value {
        var proto = Google_Protobuf_Value()
        switch value {
        case .null: proto.nullValue = .nullValue
        case .bool(let bool): proto.boolValue = bool
        case .integer(let integer): proto.numberValue = Double(integer)
        case .number(let number): proto.numberValue = number
        case .string(let string): proto.stringValue = string
        case .array(let array):
            var list = Google_Protobuf_ListValue()
            list.values = array.map(protoValue)
            proto.listValue = list
        case .object(let object):
            var structure = Google_Protobuf_Struct()
            structure.fields = object.mapValues(protoValue)
            proto.structValue = structure
        }
        return proto
    }
}
