import Engine
import MoltTestSupport
import PluginHost
import Synchronization
import Testing

/// Kind pubsub through the engine against the real in-memory broker (in-memory-pubsub 1.0.0 and 1.1.0):
/// publish, deliveries answered ACK/RETRY, and no message lost while the component is swapped between
/// versions under publishing and consuming load (its queued and unanswered messages travel in its state,
/// the subscription moves to each new generation).
@Suite struct PubsubTests {
    static let plugins = ["in-memory-pubsub-1.0.0.so", "in-memory-pubsub-1.1.0.so"]

    func engine(version: String = "1.0.0") async throws -> Engine {
        let engine = try makeEngine(Self.plugins)
        let added = await engine.apply(ComponentDefinition(kind: .pubsub, name: "pubsub", plugin: "in-memory-pubsub",
                                                           version: SemanticVersion(version), config: ["redeliverDelayMs": "50"]))
        #expect(added.action == .added, "\(added)")
        return engine
    }

    func text(_ delivery: PubsubDelivery) -> String { String(decoding: delivery.message.data, as: UTF8.self) }

    @Test func publishedMessagesArriveInOrderAndRetryComesAgain() async throws {
        let engine = try await engine()
        for index in 0..<5 {
            _ = try await engine.publish(pubsub: "pubsub", topic: "orders", data: Array("m\(index)".utf8), contentType: "text/plain")
        }
        let subscription = try await engine.subscribe(pubsub: "pubsub", topic: "orders", maxInFlight: 1)
        var iterator = subscription.deliveries.makeAsyncIterator()
        var seen: [String] = []
        var retried = false
        while seen.count < 5, let delivery = await iterator.next() {
            #expect(delivery.message.topic == "orders" && delivery.message.contentType == "text/plain")
            if text(delivery) == "m2" && !retried {
                retried = true
                delivery.answer(.retry)  // comes again after the delay, before nothing else (window 1)
                continue
            }
            seen.append(text(delivery))
            delivery.answer(.ack)
        }
        #expect(retried)
        #expect(Set(seen) == ["m0", "m1", "m2", "m3", "m4"], "\(seen)")
        #expect(await engine.unsubscribe(pubsub: "pubsub", id: subscription.id))
        await engine.shutdown()
    }

    @Test func unknownPubsubAndEmptyTopicAreRefused() async throws {
        let engine = try await engine()
        await #expect(throws: CallError.unknownComponent(ComponentKey(kind: .pubsub, name: "nope"))) {
            _ = try await engine.publish(pubsub: "nope", topic: "t", data: [1], contentType: "text/plain")
        }
        await #expect(throws: CallError.invalidRequest("the topic is empty")) {
            _ = try await engine.subscribe(pubsub: "pubsub", topic: "")
        }
        await engine.shutdown()
    }

    @Test func noMessageIsLostWhileTheBrokerIsSwappedUnderLoad() async throws {
        let engine = try await engine()
        let total = 600
        let subscription = try await engine.subscribe(pubsub: "pubsub", topic: "orders", maxInFlight: 8)
        let received = Mutex<Set<Int>>([])
        let consumer = Task {
            for await delivery in subscription.deliveries {
                if let index = Int(String(decoding: delivery.message.data, as: UTF8.self)) { received.withLock { _ = $0.insert(index) } }
                delivery.answer(.ack)
                if received.withLock({ $0.count }) == total { break }
            }
        }
        let publishFailures = Mutex<[String]>([])
        let publisher = Task {
            for index in 0..<total {
                do {
                    _ = try await engine.publish(pubsub: "pubsub", topic: "orders", data: Array("\(index)".utf8), contentType: "text/plain")
                } catch {
                    publishFailures.withLock { $0.append("#\(index): \(error)") }
                }
                if index % 50 == 0 { try? await Task.sleep(for: .milliseconds(2)) }
            }
        }
        var swaps: [ApplyAction] = []
        for round in 0..<8 {
            let version = round % 2 == 0 ? "1.1.0" : "1.0.0"
            let result = await engine.apply(ComponentDefinition(kind: .pubsub, name: "pubsub", plugin: "in-memory-pubsub",
                                                                version: SemanticVersion(version), config: ["redeliverDelayMs": "50"]))
            #expect(result.succeeded, "\(result)")
            swaps.append(result.action)
            try? await Task.sleep(for: .milliseconds(20))
        }
        await publisher.value
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while received.withLock({ $0.count }) < total && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        consumer.cancel()
        #expect(publishFailures.withLock { $0 } == [])
        #expect(swaps.allSatisfy { $0 == .versionSwapped }, "\(swaps)")
        let missing = Set(0..<total).subtracting(received.withLock { $0 })
        #expect(missing.isEmpty, "\(missing.count) of \(total) messages never delivered: \(missing.sorted().prefix(20))")
        await engine.shutdown()
    }
}
