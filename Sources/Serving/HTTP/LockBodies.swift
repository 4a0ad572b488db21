import MoltProtos
import SwiftProtobuf
import ServingCore

// Dapr reads the lock bodies with protojson (its universal HTTP handler, unknown fields dropped), into
// the gRPC API's messages. molt does the same with swift-protobuf's JSON decoder, so both APIs take the
// same JSON (`resourceId` or `resource_id`, an int32 as a number or a string); it is also about four
// times cheaper per body than Foundation's JSONDecoder. A body it refuses is read once more as the
// Codable body, only to name the problem as molt always has (an expiry past Int32: "too large").

extension TryLockBody {
    init(_ request: HTTPServerRequest) throws(APIFailure) {
        if let message = request.decodeDaprMessage(Dapr_Proto_Runtime_V1_TryLockRequest.self) {
            self.init(resourceId: message.resourceID, lockOwner: message.lockOwner, expiryInSeconds: Int64(message.expiryInSeconds))
        } else {
            self = try request.decodeJSON(TryLockBody.self)
        }
    }
}

extension UnlockBody {
    init(_ request: HTTPServerRequest) throws(APIFailure) {
        if let message = request.decodeDaprMessage(Dapr_Proto_Runtime_V1_UnlockRequest.self) {
            self.init(resourceId: message.resourceID, lockOwner: message.lockOwner)
        } else {
            self = try request.decodeJSON(UnlockBody.self)
        }
    }
}

extension HTTPServerRequest {
    private static let protoJSONOptions: JSONDecodingOptions = {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        return options
    }()

    /// The body read as protojson reads it into `Message`; nil when it is not such a message (or too large).
    func decodeDaprMessage<Message: SwiftProtobuf.Message>(_ type: Message.Type) -> Message? {
        guard case .bytes(let bytes) = body else { return nil }
        return try? Message(jsonUTF8Bytes: Array(bytes.readableBytesView), options: Self.protoJSONOptions)
    }
}
