import PluginHost

/// The pubsub sample of the transfer and holds-state checks (`TransferSample`, kind pubsub): what a reload
/// hands over (molt_plugin.h, "Hot reload"): three messages queued on the first topic (nobody subscribed),
/// and two on the second, delivered and left unanswered before unsubscribe (as the host exports after the
/// drain: they were never processed). The importing instance must deliver all five again.
extension TransferSample {
    static let pubsubSummary = "5 messages (3 queued, 2 delivered and unanswered)"

    func populatePubsub(_ instance: TestInstance) async throws(CheckOutcome) {
        for index in 1...3 { try await instance.publish(names[0], payload("queued \(index)")) }
        let subscription = try await instance.subscribe(names[1])
        for index in 1...2 { try await instance.publish(names[1], payload("unanswered \(index)")) }
        for index in 1...2 {
            _ = try await instance.received(subscription, payload("unanswered \(index)"), "setup: message \(index) of 2")
        }
        try await instance.unsubscribe(subscription)
    }

    /// Every message of the sample is delivered by `instance` (at least once); all answered ACK.
    func checkPubsub(_ instance: TestInstance, after: String) async throws(CheckOutcome) {
        let queued = try await instance.subscribe(names[0]), unanswered = try await instance.subscribe(names[1])
        do throws(CheckOutcome) {
            for index in 1...3 {
                _ = try await instance.received(queued, payload("queued \(index)"), "after \(after), 'queued \(index)' (queued in the exporting instance)")
            }
            for index in 1...2 {
                _ = try await instance.received(unanswered, payload("unanswered \(index)"),
                                                "after \(after), 'unanswered \(index)' (delivered and unanswered in the exporting instance)")
            }
        } catch {
            for subscription in [queued, unanswered] { _ = try? await instance.unsubscribe(subscription) }
            throw error
        }
        for subscription in [queued, unanswered] {
            instance.answerAll(subscription)
            try await instance.unsubscribe(subscription)
        }
    }

    /// Whether a second instance delivers the first topic's queued messages within a short wait (what it
    /// gets is answered ACK: a shared broker then has them consumed).
    func pubsubVisible(in instance: TestInstance) async throws(CheckOutcome) -> Bool {
        let subscription = try await instance.subscribe(names[0])
        let seen = await instance.wait(upTo: PubsubChecks.quiet * 2) { !subscription.inbox.deliveries(of: payload("queued 1")).isEmpty }
        instance.answerAll(subscription)
        try await instance.unsubscribe(subscription)
        return seen
    }
}
