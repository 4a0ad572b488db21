/// The limits of the app API (gRPC and HTTP), checked before any store is called. Over a limit the
/// call is refused as Dapr refuses a bad request (gRPC INVALID_ARGUMENT, HTTP 400
/// ERR_MALFORMED_REQUEST), with a message naming the field, its size and the limit; nothing is
/// stored. The limits of components (count, metadata) are `ComponentLimits`, in the engine.
public enum AppAPILimits {
    /// Largest HTTP request body: Dapr's default `--max-body-size`, 4 MiB. Enforced while the body is read.
    public static let maxHTTPBodyBytes = 4 << 20

    /// Largest gRPC request message, app and control planes (the transport's `maxRequestPayloadSize`):
    /// 4 MiB, gRPC's customary default, as daprd's. Over it grpc-swift resets the stream (the client
    /// sees CANCELLED with no message).
    public static let maxGRPCMessageBytes = 4 << 20

    // State values have no limit of their own: a value is at most the message that carries it
    // (`maxHTTPBodyBytes` or `maxGRPCMessageBytes`, less the request's other bytes).

    /// Longest state key, in UTF-8 bytes, as the app sends it (before Dapr's `<app-id>||` prefix).
    /// Dapr sets none and Redis allows 512 MB, but a key is looked up and compared on every call:
    /// Redis itself calls a 1 KiB key "a bad idea", other stores cap keys far lower (Cosmos DB 1023
    /// bytes, DynamoDB 2048). 4096 leaves room for composite keys (`type||id||field`), and a key
    /// that long fits a URL even fully percent-encoded (12 KiB, under the 80 KiB HTTP head limit),
    /// so an over-long key in a path gets this limit's message, not a bare HTTP 400.
    public static let maxStateKeyBytes = 4096

    /// Longest lock resource id, in UTF-8 bytes. A lock store keeps the resource id as a key, like a
    /// state key, so it gets the same limit.
    public static let maxLockResourceIDBytes = 4096

    /// Largest pub/sub message an app publishes (the data of one publish or one bulk entry, before the
    /// CloudEvent envelope): 1 MiB, the default of common brokers (Kafka's `message.max.bytes`, Azure
    /// Service Bus standard 256 KiB aside), so what molt accepts a real broker takes. Over it: gRPC
    /// RESOURCE_EXHAUSTED, HTTP 413 ERR_PUBSUB_PUBLISH_MESSAGE (Dapr itself leaves it to the broker).
    public static let maxPubsubMessageBytes = 1 << 20

    /// Longest lock owner, in UTF-8 bytes (owners are usually UUIDs; same bound as the resource id).
    public static let maxLockOwnerBytes = 4096
}
