import PluginABI

/// A pub/sub message as the host holds it (copied out of the plugin's memory).
public struct PubsubMessage: Sendable, Equatable {
    public var topic: String
    public var data: [UInt8]
    public var contentType: String
    public var metadata: [String: String]

    public init(topic: String, data: [UInt8], contentType: String, metadata: [String: String] = [:]) {
        (self.topic, self.data, self.contentType, self.metadata) = (topic, data, contentType, metadata)
    }
}

/// The host's answer to one delivery (molt_pubsub_outcome).
public enum PubsubOutcome: Int32, Sendable {
    case ack = 0, retry = 1, drop = 2
}

/// The host side of one plugin subscription: what `deliver` calls. Answers true when it took the message.
public final class PubsubSink: Sendable {
    let take: @Sendable (PubsubMessage, UInt64) -> Bool
    public init(_ take: @escaping @Sendable (PubsubMessage, UInt64) -> Bool) { self.take = take }
}

/// A plugin subscription: its id, and the C sink the plugin uses until unsubscribe returns.
public struct PluginSubscription: @unchecked Sendable {
    // @unchecked: `sinkStruct` is written once here, read by the plugin, and freed once by `unsubscribe`.
    public let id: UInt64
    let sinkStruct: UnsafeMutablePointer<molt_pubsub_sink>
}

extension PluginInstance {
    /// Publishes; completes once the plugin's broker holds the message.
    public func publish(_ message: PubsubMessage, deadline: CallDeadline? = nil) async throws(PluginError) {
        guard let publish = binary.symbols.pubsubPublish else { throw Self.unsupported("publish", binary) }
        let handle = instanceHandle
        try await PendingCall<Void>.run("publish", deadline: deadline) { call, context in
            let arena = call.arena
            let (pairs, count) = arena.keyValues(message.metadata)
            let request = arena.value(molt_pubsub_publish_request(
                struct_size: UInt32(MemoryLayout<molt_pubsub_publish_request>.size), topic: arena.string(message.topic),
                data: arena.bytes(message.data), content_type: arena.string(message.contentType), metadata_count: count, metadata: pairs))
            publish(handle, request, { context, result in
                let outcome: Result<Void, PluginError> = if let result, result.pointee.status == MOLT_OK {
                    .success(())
                } else {
                    .failure(failure(result?.pointee.status ?? MOLT_ERR_INTERNAL, result?.pointee.message, operation: "publish"))
                }
                PendingCall.finish(context, outcome)
            }, context)
        }.get()
    }

    /// Subscribes to `topic`: the plugin hands messages to `sink` until `unsubscribe` returns. Blocking: call
    /// it on a thread of its own (`PluginSteps`), never on an event loop or the cooperative pool.
    public func subscribe(topic: String, metadata: [String: String], maxInFlight: UInt32, sink: PubsubSink) throws(PluginError) -> PluginSubscription {
        guard let subscribe = binary.symbols.pubsubSubscribe else { throw Self.unsupported("subscribe", binary) }
        let sinkStruct = UnsafeMutablePointer<molt_pubsub_sink>.allocate(capacity: 1)
        sinkStruct.initialize(to: molt_pubsub_sink(host_subscription: Unmanaged.passRetained(sink).toOpaque(), deliver: { context, message in
            guard let context, let message else { return false }
            let sink = Unmanaged<PubsubSink>.fromOpaque(context).takeUnretainedValue()
            let copied = PubsubMessage(topic: copiedString(message.pointee.topic) ?? "", data: copiedBytes(message.pointee.data),
                                       contentType: copiedString(message.pointee.content_type) ?? "",
                                       metadata: copiedKeyValues(message.pointee.metadata, message.pointee.metadata_count))
            return sink.take(copied, message.pointee.delivery)
        }))
        let arena = CArena()
        let (pairs, count) = arena.keyValues(metadata)
        var request = molt_pubsub_subscribe_request(struct_size: UInt32(MemoryLayout<molt_pubsub_subscribe_request>.size),
                                                    topic: arena.string(topic), metadata_count: count, metadata: pairs,
                                                    max_in_flight: max(1, maxInFlight))
        var subscription: UInt64 = 0
        let (status, message) = withMessageBuffer { buffer in subscribe(instanceHandle, &request, sinkStruct, &subscription, buffer) }
        guard status == MOLT_OK, subscription != 0 else {
            Self.free(sinkStruct)
            throw PluginError(code: status == MOLT_OK ? MOLT_ERR_INTERNAL : status,
                              message: status == MOLT_OK ? "subscribe returned OK without a subscription id" : message)
        }
        return PluginSubscription(id: subscription, sinkStruct: sinkStruct)
    }

    /// The answer to one delivery. Never blocks.
    public func ack(_ subscription: PluginSubscription, delivery: UInt64, outcome: PubsubOutcome) {
        binary.symbols.pubsubAck?(instanceHandle, subscription.id, delivery, outcome.rawValue)
    }

    /// Ends a subscription; its sink is freed once the plugin returns. Blocking: a thread of its own.
    public func unsubscribe(_ subscription: PluginSubscription) throws(PluginError) {
        guard let unsubscribe = binary.symbols.pubsubUnsubscribe else { throw Self.unsupported("unsubscribe", binary) }
        let (status, message) = withMessageBuffer { buffer in unsubscribe(instanceHandle, subscription.id, buffer) }
        Self.free(subscription.sinkStruct)
        guard status == MOLT_OK else { throw PluginError(code: status, message: message) }
    }

    private static func free(_ sinkStruct: UnsafeMutablePointer<molt_pubsub_sink>) {
        if let context = sinkStruct.pointee.host_subscription { Unmanaged<PubsubSink>.fromOpaque(context).release() }
        sinkStruct.deinitialize(count: 1)
        sinkStruct.deallocate()
    }
}
