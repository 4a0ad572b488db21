import FoundationEssentials
import Logging
import PluginHost

/// Dapr's pub/sub for apps: publish through the active generation (leased like any call), and subscriptions
/// that outlive generations. A subscription runs on one plugin subscription of the active generation; a
/// reload or version swap moves it (`moveSubscriptions`): the old plugin subscription stops (after
/// unsubscribe returns nothing more is delivered), its deliveries in flight are answered or the drain
/// timeout passes, then the new generation is subscribed. What the old one delivered and nobody answered is
/// the plugin's to deliver again: from the broker (a consumer group reclaims it) or, for a plugin that holds
/// its messages, from the state handed over. Subscriptions attach and move under the component's apply lock,
/// so a subscribe never lands on a generation that is being replaced.
extension Engine {
    public func publish(pubsub: String, topic: String, data: [UInt8], contentType: String, metadata: [String: String] = [:],
                        deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<Void> {
        guard !topic.isEmpty else { throw .invalidRequest("the topic is empty") }
        let message = PubsubMessage(topic: topic, data: data, contentType: contentType, metadata: metadata)
        return try await withLease(ComponentKey(kind: .pubsub, name: pubsub), deadline: deadline) { generation, deadline throws(CallError) in
            do throws(PluginError) {
                try await generation.instance.publish(message, deadline: deadline)
            } catch {
                throw .plugin(error)
            }
        }
    }

    /// Subscribes to `topic` of `pubsub`; at most `maxInFlight` deliveries wait for an answer at once.
    public func subscribe(pubsub: String, topic: String, metadata: [String: String] = [:], maxInFlight: Int = 32) async throws(CallError) -> PubsubSubscription {
        guard !topic.isEmpty else { throw .invalidRequest("the topic is empty") }
        let key = ComponentKey(kind: .pubsub, name: pubsub)
        let (deliveries, continuation) = AsyncStream<PubsubDelivery>.makeStream()
        let subscription = TopicSubscription(id: UUID().uuidString.lowercased(), pubsub: pubsub, topic: topic, metadata: metadata,
                                             maxInFlight: max(1, maxInFlight), continuation: continuation)
        let failure: CallError? = await applyLock(key).withLock { () async -> CallError? in
            guard let generation = self.slots.withLock({ $0[key] })?.activeCell.current else { return .unknownComponent(key) }
            do throws(PluginError) {
                try await self.attach(subscription, to: generation)
            } catch {
                return .plugin(error)
            }
            self.pubsubRegistry.add(subscription)
            return nil
        }
        if let failure {
            continuation.finish()
            throw failure
        }
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(pubsub: pubsub, id: subscription.id) }
        }
        return PubsubSubscription(id: subscription.id, deliveries: deliveries)
    }

    /// Ends a subscription; false when there is none with that id.
    @discardableResult
    public func unsubscribe(pubsub: String, id: String) async -> Bool {
        guard let subscription = pubsubRegistry.remove(pubsub: pubsub, id: id) else { return false }
        await applyLock(ComponentKey(kind: .pubsub, name: pubsub)).withLock { await self.detach(subscription) }
        subscription.continuation.finish()
        return true
    }

    /// Subscribes the plugin of `generation` on behalf of `subscription` (on a thread of its own).
    func attach(_ subscription: TopicSubscription, to generation: Generation) async throws(PluginError) {
        let attachment = Attachment(generation: generation, maxInFlight: subscription.maxInFlight)
        let continuation = subscription.continuation
        let sink = PubsubSink { message, delivery in
            guard attachment.take() else { return false }
            let handed = PubsubDelivery(message: message) { outcome in attachment.answer(delivery, outcome) }
            if case .terminated = continuation.yield(handed) { handed.answer(.retry) }
            return true
        }
        let instance = generation.instance
        let (topic, metadata, window) = (subscription.topic, subscription.metadata, UInt32(subscription.maxInFlight))
        let logger = logger
        guard let started = await pluginSteps.run(timeout: settings.initTimeout, late: { (late: Result<PluginSubscription, PluginError>) in
            if case .success(let orphan) = late {
                try? instance.unsubscribe(orphan)
                logger.warning("a subscribe that overran its timeout returned at last; it was unsubscribed",
                               metadata: ["component": "\(generation.key)", "topic": "\(topic)"])
            }
        }, {
            Result { () throws(PluginError) in try instance.subscribe(topic: topic, metadata: metadata, maxInFlight: window, sink: sink) }
        }) else {
            throw PluginError(.timeout, "\(generation.pluginID) subscribe to topic '\(topic)' did not return within \(settings.initTimeout)")
        }
        attachment.started(try started.get())
        subscription.attachment.withLock { $0 = attachment }
    }

    /// Stops `subscription`'s plugin subscription: unsubscribe (on a thread of its own), then its deliveries in
    /// flight are answered, up to the drain timeout; answers after that are dropped (the plugin delivers those
    /// messages again).
    func detach(_ subscription: TopicSubscription) async {
        guard let attachment = subscription.attachment.withLock({ current in defer { current = nil }; return current }) else { return }
        let instance = attachment.generation.instance
        if let pluginSubscription = attachment.pluginSubscription {
            let stopped = await pluginSteps.run(timeout: settings.destroyTimeout, { Result { () throws(PluginError) in try instance.unsubscribe(pluginSubscription) } })
            if case .failure(let error)? = stopped {
                logger.warning("unsubscribe failed", metadata: ["component": "\(attachment.generation.key)", "topic": "\(subscription.topic)",
                                                                "error": "\(error.message)"])
            } else if stopped == nil {
                logger.warning("unsubscribe did not return within the destroy timeout", metadata: [
                    "component": "\(attachment.generation.key)", "topic": "\(subscription.topic)"])
            }
        }
        let deadline = ContinuousClock.now.advanced(by: settings.drainTimeout)
        while attachment.inFlight > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        attachment.close()
    }

    /// Detaches every subscription of `pubsub` still running on `generation` (before its state is exported, or
    /// after the switch).
    func detachSubscriptions(of pubsub: String, from generation: Generation) async {
        for subscription in pubsubRegistry.subscriptions(of: pubsub)
        where subscription.attachment.withLock({ $0?.generation === generation }) {
            await detach(subscription)
        }
    }

    /// A reload or swap of `pubsub` switched to `new`: every subscription moves from `old` to it. A subscription
    /// the new generation refuses ends (its app sees the stream end) and the refusal is logged.
    func moveSubscriptions(of pubsub: String, from old: Generation?, to new: Generation) async {
        if let old { await detachSubscriptions(of: pubsub, from: old) }
        await attachDetached(of: pubsub, to: new)
    }

    /// Attaches every detached subscription of `pubsub` to `generation` (after a move, or back to the old
    /// generation when a handover failed).
    func attachDetached(of pubsub: String, to generation: Generation) async {
        for subscription in pubsubRegistry.subscriptions(of: pubsub) where subscription.attachment.withLock({ $0 == nil }) {
            do throws(PluginError) {
                try await attach(subscription, to: generation)
            } catch {
                logger.error("a subscription could not move to the new generation; it ends", metadata: [
                    "component": "\(generation.key)", "topic": "\(subscription.topic)", "error": "\(error.message)"])
                _ = pubsubRegistry.remove(pubsub: pubsub, id: subscription.id)
                subscription.continuation.finish()
            }
        }
    }

    /// The component is removed: its subscriptions end.
    func endSubscriptions(of pubsub: String) async {
        for subscription in pubsubRegistry.removeAll(of: pubsub) {
            await detach(subscription)
            subscription.continuation.finish()
        }
    }
}
