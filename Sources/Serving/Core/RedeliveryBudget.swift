import Engine
import Logging
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

    /// What a subscriber's answer asks for one delivery.
    public enum Answer: Sendable {
        case ack
        /// Counted against `maxRetries`.
        case retry(reason: String)
        case drop(reason: String)
    }

    /// Answers `delivery` as the subscriber asked, within the budget (`key` identifies the message across
    /// redeliveries; `retries` is the subscription's): ACK acknowledges; a RETRY within `maxRetries` is delivered
    /// again; a RETRY past them, or a DROP, goes to the dead-letter topic when there is one (acknowledged once
    /// published; if publishing fails, delivered again, as Dapr does) or else is dropped (past the budget, with a
    /// warning). Shared by the classic (app channel) and the streaming subscriptions.
    public func settle(_ delivery: PubsubDelivery, key: String, _ answer: Answer, retries: inout RetryCounts, pubsub: String,
                       engine: Engine, logger: Logger, fields: Logger.Metadata) async {
        let reason: String
        switch answer {
        case .ack:
            retries.forget(key)
            delivery.answer(.ack)
            return
        case .retry(let why):
            let count = retries.count(key)
            guard count > maxRetries else {
                logger.debug("retriable answer from the subscriber of a pub/sub event", metadata: fields.merging([
                    "reason": "\(why)", "retries": "\(count)"]) { $1 })
                delivery.answer(.retry)
                return
            }
            retries.forget(key)
            reason = "\(why) after \(maxRetries) retries"
            guard !deadLetterTopic.isEmpty else {
                logger.warning("pub/sub event dropped: no retries left and no deadLetterTopic", metadata: fields.merging([
                    "reason": "\(reason)", "max_retries": "\(maxRetries)"]) { $1 })
                delivery.answer(.drop)
                return
            }
        case .drop(let why):
            retries.forget(key)
            reason = why
            guard !deadLetterTopic.isEmpty else {
                delivery.answer(.drop)
                return
            }
        }
        let deadLettered = await sendToDeadLetter(delivery.message, pubsub: pubsub, engine: engine, because: reason, logger: logger, fields: fields)
        delivery.answer(deadLettered ? .ack : .retry)
    }

    /// Publishes `message` to the dead-letter topic, logging either outcome; false when there is none or publishing
    /// failed.
    public func sendToDeadLetter(_ message: PubsubMessage, pubsub: String, engine: Engine, because reason: String, logger: Logger,
                                 fields: Logger.Metadata) async -> Bool {
        guard !deadLetterTopic.isEmpty else { return false }
        do throws(CallError) {
            try await deadLetter(message, pubsub: pubsub, engine: engine)
            logger.warning("pub/sub event sent to the dead-letter topic", metadata: fields.merging([
                "dead_letter_topic": "\(deadLetterTopic)", "reason": "\(reason)"]) { $1 })
            return true
        } catch {
            logger.error("error sending message to dead letter", metadata: fields.merging([
                "dead_letter_topic": "\(deadLetterTopic)", "error": "\(error)"]) { $1 })
            return false
        }
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
