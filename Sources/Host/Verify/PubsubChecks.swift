import PluginHost

/// Dapr's pub/sub semantics as molt_plugin.h states them ("kind pubsub"): publish completes; a subscriber
/// gets what is published to its topic (data and topic as published) and nothing of other topics; the
/// answers: ACK and DROP remove a message, RETRY has it delivered again; a second answer to one delivery,
/// or an answer to an unknown delivery, is ignored; a deliver the host answered false is tried again
/// (after the next ack, or after a short delay); after unsubscribe returns no deliver follows, and what is
/// published meanwhile waits for the next subscription. Order is not checked: the header promises none.
/// Each check uses topics of its own ("<prefix>-<what>"), so each line names the one rule that is broken.
///
/// "Not delivered again" is decided after `quiet`, or after as long as RETRY took to come back when
/// longer: the plugin had the chance its own redelivery needs. verify shortens declared redelivery
/// delays (`fastDelays`) so that this stays short.
struct PubsubChecks {
    let instance: TestInstance
    let prefix: String

    static let quiet = Duration.milliseconds(300)
    /// Declared keys verify sets (unless --metadata gives them) so that RETRY comes back quickly:
    /// in-memory-pubsub's redeliverDelayMs; Dapr's processingTimeout and redeliverInterval (redis-streams).
    static let fastDelays = ["redeliverDelayMs": "100", "processingTimeout": "300ms", "redeliverInterval": "100ms"]

    func topic(_ what: String) -> String { "\(prefix)-\(what)" }

    func run(_ report: VerifyReport) async {
        await report.check("pubsub: publish") { () throws(CheckOutcome) in
            try await instance.publish(topic("publish"), payload("publish"))
            return "completed"
        }
        await report.check("pubsub: a subscriber gets its topic's messages") { () throws(CheckOutcome) in try await delivery() }
        await report.check("pubsub: other topics are not delivered") { () throws(CheckOutcome) in try await otherTopics() }
        let answers: Result<Answers, CheckOutcome>
        do throws(CheckOutcome) { answers = .success(try await answerRound()) } catch { answers = .failure(error) }
        for (name, verdict) in Answers.checks {
            await report.check(name) { () throws(CheckOutcome) in try verdict(try answers.get()) }
        }
        await report.check("pubsub: a refused deliver is delivered again") { () throws(CheckOutcome) in try await refused() }
        await report.check("pubsub: no deliver after unsubscribe") { () throws(CheckOutcome) in try await unsubscribed() }
    }

    /// Three messages published to a subscribed topic come, each with its data and topic, under distinct
    /// delivery ids; all acked.
    private func delivery() async throws(CheckOutcome) -> String {
        let name = topic("deliver")
        let subscription = try await instance.subscribe(name)
        let sent = (1...3).map { payload("deliver \($0)") }
        for data in sent { try await instance.publish(name, data) }
        for (index, data) in sent.enumerated() {
            let got = try await instance.received(subscription, data, "message \(index + 1) of 3 published to '\(name)'")
            guard got.message.topic == name else {
                throw .fail("'\(text(data))' published to '\(name)' was delivered with topic '\(got.message.topic)'")
            }
            let type = got.message.contentType
            guard type.isEmpty || type == TestInstance.pubsubContentType else {
                throw .fail("'\(text(data))' published as \(TestInstance.pubsubContentType) was delivered as '\(type)'")
            }
        }
        let reused = subscription.inbox.reused
        guard reused.isEmpty else {
            throw .fail("delivery id \(reused[0]) was handed out again while its first delivery was unanswered (ids are unique until answered)")
        }
        let count = instance.answerAll(subscription).count
        try await instance.unsubscribe(subscription)
        return "3 messages, data and topic as published, \(count) deliveries acked"
    }

    /// A message published to another topic never reaches this topic's subscriber (a later one on its own
    /// topic does).
    private func otherTopics() async throws(CheckOutcome) -> String {
        let (mine, other) = (topic("mine"), topic("other"))
        let subscription = try await instance.subscribe(mine)
        let foreign = payload("for \(other) only")
        try await instance.publish(other, foreign)
        try await instance.publish(mine, payload("marker"))
        _ = try await instance.received(subscription, payload("marker"), "a message published to '\(mine)'")
        _ = await instance.wait(upTo: Self.quiet) { false }
        let strays = subscription.inbox.taken.filter { $0.message.topic != mine || $0.message.data == foreign }
        instance.answerAll(subscription)
        try await instance.unsubscribe(subscription)
        guard strays.isEmpty else {
            throw .fail("the subscriber of '\(mine)' got '\(text(strays[0].message.data))' (topic '\(strays[0].message.topic)'), "
                + "published to '\(other)'")
        }
        return "a message published to '\(other)' did not reach the subscriber of '\(mine)'"
    }

    /// What one round of answers showed: four messages answered ACK, DROP, RETRY, and ACK followed by a
    /// second answer RETRY (plus an answer to a delivery id never given); RETRY's message should come back,
    /// the others not, within `waited`.
    struct Answers {
        var retryAfter: Duration?
        var waited: Duration
        var again: [String: Int]  // deliveries after the first, per message

        static var checks: [(String, (Answers) throws(CheckOutcome) -> String)] { [
            ("pubsub: RETRY is delivered again", { answers throws(CheckOutcome) in
                guard let after = answers.retryAfter else {
                    throw .fail("a message answered RETRY was not delivered again within \(answers.waited) (the plugin must deliver it again later)")
                }
                return "delivered again after \(milliseconds(after)) ms"
            }),
            ("pubsub: ACK is not delivered again", { answers throws(CheckOutcome) in try answers.once("ack", "ACK") }),
            ("pubsub: DROP is not delivered again", { answers throws(CheckOutcome) in try answers.once("drop", "DROP") }),
            ("pubsub: a second answer to a delivery is ignored", { answers throws(CheckOutcome) in
                if answers.again["ack", default: 0] > 0 { throw .skip("not judged: a message answered ACK once is delivered again (above)") }
                _ = try answers.once("twice", "ACK, then a second answer RETRY to the same delivery (the plugin must ignore it),")
                return "ACK then RETRY for one delivery, and RETRY for an unknown delivery id: ignored"
            }),
        ] }

        func once(_ name: String, _ how: String) throws(CheckOutcome) -> String {
            let extra = again[name] ?? 0
            guard extra == 0 else {
                throw .fail("a message answered \(how) was delivered again \(extra) time\(extra == 1 ? "" : "s") within \(milliseconds(waited)) ms")
            }
            return "not delivered again within \(milliseconds(waited)) ms"
        }
    }

    private func answerRound() async throws(CheckOutcome) -> Answers {
        let name = topic("answers")
        let subscription = try await instance.subscribe(name)
        let messages = ["ack", "drop", "retry", "twice"]
        for message in messages { try await instance.publish(name, payload(message)) }
        var first: [String: PubsubInbox.Delivery] = [:]
        for message in messages {
            first[message] = try await instance.received(subscription, payload(message), "the message '\(message)' published to '\(name)'")
        }
        instance.plugin.ack(subscription.plugin, delivery: UInt64.max - 1, outcome: .retry)  // unknown: ignored
        instance.answer(subscription, first["ack"]!.id, .ack)
        instance.answer(subscription, first["drop"]!.id, .drop)
        instance.answer(subscription, first["twice"]!.id, .ack)
        instance.plugin.ack(subscription.plugin, delivery: first["twice"]!.id, outcome: .retry)  // the second answer
        let clock = ContinuousClock(), start = clock.now
        instance.answer(subscription, first["retry"]!.id, .retry)
        let inbox = subscription.inbox
        let limit = instance.harness.callTimeout * 2
        let back = await instance.wait(upTo: limit) { inbox.deliveries(of: payload("retry")).count > 1 }
        let retryAfter = back ? clock.now - start : nil
        let grace = min(max(Self.quiet, retryAfter ?? .zero), .seconds(5))
        _ = await instance.wait(upTo: grace) { false }
        instance.answerAll(subscription)
        try await instance.unsubscribe(subscription)
        var again: [String: Int] = [:]
        for message in messages { again[message] = inbox.deliveries(of: payload(message)).count - 1 }
        return Answers(retryAfter: retryAfter, waited: back ? clock.now - start : limit + grace, again: again)
    }

    /// deliver answered false, with nothing in flight (twice) and with the window full: the message comes
    /// again, after a short delay or after the answer that frees the window.
    private func refused() async throws(CheckOutcome) -> String {
        let name = topic("refused")
        let subscription = try await instance.subscribe(name, maxInFlight: 4, window: 1)
        let inbox = subscription.inbox
        inbox.refuse(next: 2)
        try await instance.publish(name, payload("refused twice"))
        let first = try await instance.received(subscription, payload("refused twice"),
                                                "a message whose deliver was answered false twice (nothing in flight)")
        try await instance.publish(name, payload("window full"))
        let before = inbox.refused
        _ = await instance.wait(upTo: Self.quiet) { inbox.refused > before }
        let sawFull = inbox.refused > before
        instance.answer(subscription, first.id, .ack)
        _ = try await instance.received(subscription, payload("window full"),
                                        "a message offered while the window (1) was full, after the answer that freed it")
        instance.answerAll(subscription)
        try await instance.unsubscribe(subscription)
        return "delivered after 2 refusals with nothing in flight, and after the window (1) was freed"
            + (sawFull ? "" : " (the plugin waited for the answer itself)")
    }

    /// Three deliveries left unanswered, unsubscribe, three more published: none of them is delivered to
    /// the ended subscription; the late answers are accepted; a new subscription gets the later three.
    private func unsubscribed() async throws(CheckOutcome) -> String {
        let name = topic("unsubscribe")
        let subscription = try await instance.subscribe(name)
        for index in 1...3 { try await instance.publish(name, payload("before \(index)")) }
        for index in 1...3 { _ = try await instance.received(subscription, payload("before \(index)"), "message \(index) of 3") }
        try await instance.unsubscribe(subscription)
        for index in 1...3 { try await instance.publish(name, payload("after \(index)")) }
        _ = await instance.wait(upTo: Self.quiet) { false }
        let late = subscription.inbox.afterEnd
        guard late.isEmpty else {
            throw .fail("deliver was called \(late.count) time\(late.count == 1 ? "" : "s") after unsubscribe from '\(name)' returned "
                + "(first: '\(text(late[0].data))'); when unsubscribe returns, no deliver may follow")
        }
        let answered = instance.answerAll(subscription).count  // late answers, as the host's drain sends them
        let again = try await instance.subscribe(name)
        for index in 1...3 {
            _ = try await instance.received(again, payload("after \(index)"),
                                            "'after \(index)', published while nobody subscribed, to the next subscription")
        }
        instance.answerAll(again)
        try await instance.unsubscribe(again)
        return "no deliver after it returned; \(answered) late answers taken; the next subscription got what was published meanwhile"
    }
}
