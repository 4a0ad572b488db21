import Engine
import PluginHost

/// molt's bound on how often one message is handed back to a subscriber that keeps answering RETRY, shared by
/// the classic (app channel) and streaming subscriptions. Dapr has no such subscription setting: it leaves it to
/// a resiliency retry policy on the pubsub's inbound side, after which the message goes to the subscription's
/// dead-letter topic. molt: after `maxRetries` RETRY answers for one message (by CloudEvent id) the next RETRY
/// sends it, unchanged, to `deadLetterTopic` on the same pubsub and acknowledges it, or, without a dead-letter
/// topic, drops it (the caller logs a warning).
public struct RedeliveryBudget: Sendable, Equatable {
    /// When the subscription's metadata has no (readable) `maxRetries`.
    public static let defaultMaxRetries = 10

    public let maxRetries: Int
    /// "" when there is none.
    public let deadLetterTopic: String

    /// `maxRetries` from the subscription's metadata (a non-negative integer; anything else: the default).
    public init(metadata: [String: String], deadLetterTopic: String) {
        if let text = metadata["maxRetries"], let value = Int(text), value >= 0 {
            maxRetries = value
        } else {
            maxRetries = Self.defaultMaxRetries
        }
        self.deadLetterTopic = deadLetterTopic
    }

    /// Publishes `message` as it is to the dead-letter topic of `pubsub` (Dapr's sendToDeadLetter: the data, its
    /// content type and metadata).
    public func deadLetter(_ message: PubsubMessage, pubsub: String, engine: Engine) async throws(CallError) {
        _ = try await engine.publish(pubsub: pubsub, topic: deadLetterTopic, data: message.data, contentType: message.contentType,
                                     metadata: message.metadata)
    }
}

/// RETRY answers per message, owned by one task (no locking). Bounded: past `limit` messages being retried at
/// once, the oldest half of the counts is forgotten (those messages get a fresh budget).
public struct RetryCounts: Sendable {
    private var counts: [String: Int] = [:]
    private var order: [String] = []
    public let limit: Int

    public init(limit: Int = 10_000) {
        self.limit = max(2, limit)
    }

    /// Counts one more RETRY for `key`; returns the count.
    public mutating func count(_ key: String) -> Int {
        if let current = counts[key] {
            counts[key] = current + 1
            return current + 1
        }
        if order.count >= limit {
            let dropped = order.prefix(limit / 2)
            for old in dropped { counts[old] = nil }
            order.removeFirst(dropped.count)
        }
        counts[key] = 1
        order.append(key)
        return 1
    }

    public mutating func forget(_ key: String) {
        guard counts.removeValue(forKey: key) != nil else { return }
        order.removeAll { $0 == key }
    }
}
