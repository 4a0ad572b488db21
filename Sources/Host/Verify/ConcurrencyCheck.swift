import PluginHost
import ServingCore

/// Operations on one instance from several of the host's event loops at once, as `molt serve` calls
/// them (molt_plugin.h: operations run concurrently, from many threads). Lock: callers race for a few
/// shared resources, and whoever acquired one must be able to unlock it (SUCCESS): a second caller that
/// also "acquired" it, or took it over, shows the plugin is not safe to call concurrently. State: each
/// caller writes and reads back keys of its own, which must hold what it wrote. Pubsub: each caller
/// subscribes to a topic of its own and publishes to it while answering what comes; every message must
/// reach it, and nothing of another caller's topic.
struct ConcurrencyCheck {
    let instance: TestInstance
    let prefix: String
    static let callers = 4
    static let rounds = 100

    func run(_ report: VerifyReport) async {
        let kind = instance.plugin.binary.info.kind
        await report.check("\(kind.rawValue): concurrent calls") { () throws(CheckOutcome) in
            guard kind != .binding else { throw .skip("kind binding: its operations are its own (no sample to call them with)") }
            guard kind != .secretstore, kind != .configuration else { throw .skip("kind \(kind.rawValue): the store's items are its own (no sample key to read)") }
            let loops = HostIO.shared.eventLoops
            guard !loops.isEmpty else { throw .skip("the host has no event loops") }
            let results = await withTaskGroup(of: Result<Int, CheckOutcome>.self) { group in
                for caller in 0..<Self.callers {
                    group.addTask(executorPreference: EventLoopExecutor(loops[caller % loops.count])) {
                        do throws(CheckOutcome) {
                            switch kind {
                            case .lock: return .success(try await lockCaller(caller))
                            case .pubsub: return .success(try await pubsubCaller(caller))
                            default: return .success(try await stateCaller(caller))
                            }
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                var results: [Result<Int, CheckOutcome>] = []
                for await result in group { results.append(result) }
                return results
            }
            var done = 0
            for result in results {
                switch result {
                case .success(let count): done += count
                case .failure(let error): throw error
                }
            }
            let loopCount = min(loops.count, Self.callers)
            return "\(Self.callers) callers on \(loopCount) loop\(loopCount == 1 ? "" : "s"), "
                + (kind == .lock ? "\(done) locks acquired and unlocked by their owners"
                    : kind == .pubsub ? "\(done) messages published and delivered to their topic's subscriber" : "\(done) writes read back")
        }
    }

    /// Races for 4 shared resources; returns how many it acquired (and unlocked).
    private func lockCaller(_ caller: Int) async throws(CheckOutcome) -> Int {
        let locks = LockChecks(instance: instance, prefix: "\(prefix)-race")
        let owner = "caller-\(caller)"
        var acquired = 0
        for round in 0..<Self.rounds {
            let resource = locks.name("\(round % 4)")
            guard try await locks.tryLock(resource, owner) else { continue }
            acquired += 1
            let status = try await locks.unlock(resource, owner)
            guard status == .success else {
                throw .fail("'\(owner)' acquired '\(resource)' while \(Self.callers) callers raced for it, then its unlock answered "
                    + "\(status.name): another caller got it too (operations must be safe to call concurrently)")
            }
        }
        return acquired
    }

    /// Writes keys of its own and reads each back; returns how many.
    private func stateCaller(_ caller: Int) async throws(CheckOutcome) -> Int {
        let state = StateChecks(instance: instance, prefix: "\(prefix)-race-\(caller)-")
        for round in 0..<Self.rounds {
            let key = state.key("\(round % 4)"), value = StateChecks.value("caller \(caller) round \(round)")
            try await state.set(key, value)
            try await state.expectValue(key, value, after: "its set, with \(Self.callers) callers writing at once")
        }
        for index in 0..<4 {
            let key = state.key("\(index)")
            try await instance.call("delete of '\(key)'") { d throws(PluginError) in
                try await instance.plugin.delete(StateDeleteRequest(key: key), deadline: d)
            }
        }
        return Self.rounds
    }

    /// Subscribes to a topic of its own, publishes `rounds` messages to it, answering deliveries (ACK) as
    /// they come; returns how many distinct messages it got.
    private func pubsubCaller(_ caller: Int) async throws(CheckOutcome) -> Int {
        let topic = "\(prefix)-race-\(caller)"
        let subscription = try await instance.subscribe(topic)
        let inbox = subscription.inbox
        for round in 0..<Self.rounds {
            try await instance.publish(topic, payload("caller \(caller) round \(round)"))
            if round % 10 == 9 { instance.answerAll(subscription) }
        }
        _ = await instance.wait(upTo: instance.harness.callTimeout * 2) {
            instance.answerAll(subscription)
            return Set(inbox.taken.map(\.message.data)).count >= Self.rounds
        }
        let got = Set(inbox.taken.map(\.message.data))
        try await instance.unsubscribe(subscription)
        instance.answerAll(subscription)
        if let stray = inbox.taken.first(where: { $0.message.topic != topic }) {
            throw .fail("the subscriber of '\(topic)' got '\(text(stray.message.data))' of topic '\(stray.message.topic)' "
                + "while \(Self.callers) callers published at once")
        }
        guard got.count >= Self.rounds else {
            let missing = (0..<Self.rounds).first { !got.contains(payload("caller \(caller) round \($0)")) } ?? 0
            throw .fail("\(Self.rounds - got.count) of \(Self.rounds) messages published to '\(topic)' while \(Self.callers) callers "
                + "published at once never reached its subscriber (first: 'caller \(caller) round \(missing)')")
        }
        return got.count
    }
}
