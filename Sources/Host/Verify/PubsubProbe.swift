import FoundationEssentials
import PluginHost
import Synchronization

/// The host side of one verify subscription, as the engine's is (molt_plugin.h, "kind pubsub"): `deliver`
/// takes a message while fewer than `maxInFlight` deliveries are unanswered and answers false otherwise
/// (window full) or once the subscription ended. It records what the plugin does that the contract
/// forbids: a deliver after unsubscribe returned, a delivery id reused while unanswered.
///
/// Written by the plugin's delivery threads (`take`), read and answered by the check's task; one mutex.
final class PubsubInbox: Sendable {
    struct Delivery: Sendable {
        let message: PubsubMessage
        let id: UInt64
    }

    private struct State {
        var taken: [Delivery] = []
        var unanswered: Set<UInt64> = []
        /// Unanswered deliveries taken at most (the subscription's max_in_flight, or fewer).
        var window: Int
        /// deliver calls to answer false next, whatever the window (as while a subscription is ending).
        var refuseNext = 0
        /// deliver calls answered false.
        var refused = 0
        /// Set once unsubscribe returned: every later deliver is a breach.
        var ended = false
        var afterEnd: [PubsubMessage] = []
        /// Delivery ids the plugin handed out again while their first delivery was unanswered.
        var reused: [UInt64] = []
    }

    private let state: Mutex<State>
    let topic: String

    init(topic: String, window: Int) {
        self.topic = topic
        state = Mutex(State(window: window))
    }

    /// The sink handed to subscribe. Retained once more on purpose, for the life of the process: a plugin
    /// that calls deliver after unsubscribe returned then reaches this inbox (recorded as a breach)
    /// instead of freed memory.
    func makeSink() -> PubsubSink {
        let sink = PubsubSink { [self] message, id in take(message, id) }
        _ = Unmanaged.passRetained(sink)
        return sink
    }

    private func take(_ message: PubsubMessage, _ id: UInt64) -> Bool {
        state.withLock { state in
            if state.ended {
                state.afterEnd.append(message)
                return false
            }
            guard state.unanswered.count < state.window, state.refuseNext == 0 else {
                state.refuseNext = max(0, state.refuseNext - 1)
                state.refused += 1
                return false
            }
            if !state.unanswered.insert(id).inserted { state.reused.append(id) }
            state.taken.append(Delivery(message: message, id: id))
            return true
        }
    }

    /// Every delivery taken so far, in order.
    var taken: [Delivery] { state.withLock { $0.taken } }
    var refused: Int { state.withLock { $0.refused } }
    var afterEnd: [PubsubMessage] { state.withLock { $0.afterEnd } }
    var reused: [UInt64] { state.withLock { $0.reused } }

    /// Deliveries taken and not answered yet.
    var unanswered: [Delivery] { state.withLock { state in state.taken.filter { state.unanswered.contains($0.id) } } }

    func answered(_ id: UInt64) { _ = state.withLock { $0.unanswered.remove(id) } }
    func end() { state.withLock { $0.ended = true } }
    func refuse(next count: Int) { state.withLock { $0.refuseNext = count } }

    /// The deliveries taken whose data is `data`.
    func deliveries(of data: [UInt8]) -> [Delivery] { taken.filter { $0.message.data == data } }
}

/// A subscription of a verify check: the plugin's and the inbox that receives it.
struct ProbeSubscription: Sendable {
    let plugin: PluginSubscription
    let inbox: PubsubInbox
    var topic: String { inbox.topic }
}

/// How a pubsub check talks to an instance: publish (an operation with a deadline), subscribe and
/// unsubscribe (blocking: on threads of their own through the harness' steps), answers, and waits.
extension TestInstance {
    static let pubsubContentType = "application/octet-stream"

    func publish(_ topic: String, _ data: [UInt8], metadata: [String: String] = [:]) async throws(CheckOutcome) {
        let message = PubsubMessage(topic: topic, data: data, contentType: Self.pubsubContentType, metadata: metadata)
        try await call("publish to '\(topic)'") { d throws(PluginError) in try await plugin.publish(message, deadline: d) }
    }

    /// Subscribes to `topic` with `maxInFlight`; the inbox takes at most `window` unanswered deliveries
    /// (max_in_flight by default) and answers false beyond.
    func subscribe(_ topic: String, maxInFlight: Int = 16, window: Int? = nil) async throws(CheckOutcome) -> ProbeSubscription {
        let inbox = PubsubInbox(topic: topic, window: window ?? maxInFlight)
        let (plugin, sink) = (self.plugin, inbox.makeSink())
        let result = await harness.steps.run(timeout: harness.callTimeout, late: { (late: Result<PluginSubscription, PluginError>) in
            if case .success(let subscription) = late { try? plugin.unsubscribe(subscription) }
        }) {
            Result { () throws(PluginError) in
                try plugin.subscribe(topic: topic, metadata: [:], maxInFlight: UInt32(maxInFlight), sink: sink)
            }
        }
        switch result {
        case nil: throw .fail("subscribe to '\(topic)' did not return within \(harness.callTimeout)")
        case .failure(let error)?: throw .fail("subscribe to '\(topic)' failed (\(error.status.rawValue)): \(error.message)")
        case .success(let subscription)?: return ProbeSubscription(plugin: subscription, inbox: inbox)
        }
    }

    /// Unsubscribes; from its return on, a deliver on `subscription` is recorded as a breach.
    func unsubscribe(_ subscription: ProbeSubscription) async throws(CheckOutcome) {
        let plugin = self.plugin
        let result = await harness.steps.run(timeout: harness.callTimeout) {
            Result { () throws(PluginError) in try plugin.unsubscribe(subscription.plugin) }
        }
        subscription.inbox.end()
        switch result {
        case nil: throw .fail("unsubscribe from '\(subscription.topic)' did not return within \(harness.callTimeout)")
        case .failure(let error)?: throw .fail("unsubscribe from '\(subscription.topic)' failed (\(error.status.rawValue)): \(error.message)")
        case .success?: return
        }
    }

    /// The host's answer to one delivery (molt_pubsub_ack).
    func answer(_ subscription: ProbeSubscription, _ id: UInt64, _ outcome: PubsubOutcome) {
        subscription.inbox.answered(id)
        plugin.ack(subscription.plugin, delivery: id, outcome: outcome)
    }

    /// Answers every delivery not answered yet with `outcome`; returns them.
    @discardableResult
    func answerAll(_ subscription: ProbeSubscription, _ outcome: PubsubOutcome = .ack) -> [PubsubInbox.Delivery] {
        let pending = subscription.inbox.unanswered
        for delivery in pending { answer(subscription, delivery.id, outcome) }
        return pending
    }

    /// Waits until `done` holds, polling every 5 ms, at most `limit` (the operation timeout by default);
    /// false when it did not.
    func wait(upTo limit: Duration? = nil, until done: () -> Bool) async -> Bool {
        let clock = ContinuousClock(), deadline = clock.now.advanced(by: limit ?? harness.callTimeout)
        while !done() {
            guard clock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }

    /// Waits until a delivery of `data` was taken; fails naming `what` when none comes in time.
    func received(_ subscription: ProbeSubscription, _ data: [UInt8], _ what: String, upTo limit: Duration? = nil) async throws(CheckOutcome) -> PubsubInbox.Delivery {
        let inbox = subscription.inbox
        guard await wait(upTo: limit, until: { !inbox.deliveries(of: data).isEmpty }) else {
            throw .fail("\(what): not delivered to the subscriber of '\(subscription.topic)' within \(limit ?? harness.callTimeout) "
                + "(\(inbox.taken.count) other deliveries, \(inbox.refused) refused while the window was full)")
        }
        return inbox.deliveries(of: data)[0]
    }
}

/// The bytes of a check's message: readable in a failure, unique within the run through the topic.
func payload(_ text: String) -> [UInt8] { Array("molt verify: \(text)".utf8) }

func text(_ data: [UInt8]) -> String { String(decoding: data, as: UTF8.self) }
