import Engine
import Foundation
import MoltTestSupport
import PluginHost
import Synchronization
import Testing

/// Redis going away under load, or hanging: calls fail (or are retried) within their timeouts and
/// never hang, and calls succeed again once Redis is back.
@Suite(.serialized) struct RedisOutageTests {
    @Test func aRedisRestartedUnderLoadFailsOrRetriesCallsThenServesAgain() async throws {
        let first = try RedisServer()
        defer { first.stop() }
        let engine = try await redisEngine(first, ["readTimeout": "1s", "poolTimeout": "2s"])
        let load = Load()
        let workers = 8
        let traffic = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<workers {
                    group.addTask {
                        var index = 0
                        while !load.stop.load(ordering: .relaxed) {
                            index += 1
                            let key = "w\(worker)-\(index % 20)"
                            do {
                                _ = try await engine.setState(store: "statestore", StateSetRequest(key: key, value: [UInt8(index & 0xFF)]))
                                _ = try await engine.getState(store: "statestore", key: key)
                                load.succeeded()
                            } catch {
                                load.failed(pluginFailure(error), "\(error)")
                            }
                        }
                        load.finished.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        #expect(await load.waitFor(successes: 200), "traffic before the outage")
        first.stop()
        try await Task.sleep(for: .milliseconds(300))
        let second = try RedisServer(reusing: first.port)
        defer { second.stop() }
        let atRestart = load.successes.load(ordering: .relaxed)
        #expect(await load.waitFor(successes: atRestart + 200), "traffic succeeds again after the restart")
        load.stop.store(true, ordering: .relaxed)
        let deadline = ContinuousClock.now + .seconds(5)
        while load.finished.load(ordering: .relaxed) < workers && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        try #require(load.finished.load(ordering: .relaxed) == workers, "a call hung")
        await traffic.value
        let unexpected = load.failures.withLock { $0 }.filter { status, message in
            !((status == .unavailable || status == .timeout) && message.contains(first.address))
        }
        #expect(unexpected.isEmpty, "failures other than UNAVAILABLE/TIMEOUT naming the server: \(unexpected.prefix(3))")
        #expect(engine.leaseViolations == 0)
        await engine.shutdown()
    }

    @Test func aRedisThatStopsAnsweringFailsCallsAfterReadTimeoutAndRecoversWhenItResumes() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await redisEngine(server, ["readTimeout": "400ms", "maxRetries": "0"])
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))
        server.freeze()
        var frozen = true
        defer { if frozen { server.thaw() } }

        // Sent on connections that were up: the reply is overdue after readTimeout.
        var started = ContinuousClock.now
        var failures = await Self.failedGets(engine, 16)
        var took = ContinuousClock.now - started
        #expect(failures.count == 16 && failures.allSatisfy { $0.status == .timeout && $0.message.contains("did not answer in time") },
                "\(failures.prefix(3))")
        #expect(took >= .milliseconds(350) && took < .milliseconds(1500), "bounded by readTimeout (\(took))")

        // Meanwhile the connections reconnect into a handshake the frozen server never answers: calls
        // fail within readTimeout of it (or poolTimeout), never hang.
        started = .now
        failures = await Self.failedGets(engine, 8)
        took = ContinuousClock.now - started
        #expect(failures.count == 8 && failures.allSatisfy { $0.status == .timeout }, "\(failures.prefix(3))")
        #expect(took < .seconds(2), "\(took)")

        server.thaw()
        frozen = false
        #expect(await Self.recovers(engine), "calls succeed again once Redis answers")
        await engine.shutdown()
    }

    @Test func aCallWaitingForAConnectionFailsAfterPoolTimeoutWithTheLastError() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await redisEngine(server, ["readTimeout": "1s", "poolTimeout": "200ms", "maxRetries": "0", "poolSize": "1"])
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))
        server.freeze()
        var frozen = true
        defer { if frozen { server.thaw() } }
        // Calls on every loop time out, so every connection is dropped and is reconnecting (its
        // handshake unanswered) when the next call comes.
        let first = await Self.failedGets(engine, 4 * ProcessInfo.processInfo.activeProcessorCount)
        #expect(first.allSatisfy { $0.message.contains("did not answer in time") }, "\(first.prefix(3))")

        let started = ContinuousClock.now
        let waited = await Self.failedGets(engine, 2)
        let took = ContinuousClock.now - started
        #expect(waited.count == 2 && waited.allSatisfy {
            $0.status == .timeout && $0.message.contains("poolTimeout") && $0.message.contains("did not answer in time")
        }, "the wait's error names poolTimeout and the last connection error: \(waited.prefix(2))")
        #expect(took < .milliseconds(900), "poolTimeout, not readTimeout, bounds the wait (\(took))")

        server.thaw()
        frozen = false
        #expect(await Self.recovers(engine))
        await engine.shutdown()
    }

    /// The plugin failures of `count` concurrent gets of "k" (successes are left out).
    static func failedGets(_ engine: Engine, _ count: Int) async -> [PluginError] {
        await withTaskGroup(of: PluginError?.self) { group in
            for _ in 0..<count {
                group.addTask {
                    do {
                        _ = try await engine.getState(store: "statestore", key: "k")
                        return nil
                    } catch {
                        return pluginFailure(error) ?? PluginError(.internal, "\(error)")
                    }
                }
            }
            var failures: [PluginError] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
    }

    /// Whether a get of "k" succeeds within 5 seconds.
    static func recovers(_ engine: Engine) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if (try? await engine.getState(store: "statestore", key: "k").value.found) == true { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

/// What a traffic generator saw.
final class Load: Sendable {
    let successes = Atomic<Int>(0)
    let failures = Mutex<[(PluginStatus?, String)]>([])
    let stop = Atomic<Bool>(false)
    let finished = Atomic<Int>(0)

    func succeeded() { successes.add(1, ordering: .relaxed) }
    func failed(_ failure: PluginError?, _ description: String) {
        failures.withLock { $0.append((failure?.status, failure?.message ?? description)) }
    }

    /// Whether `successes` reach `target` within 10 seconds.
    func waitFor(successes target: Int) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while successes.load(ordering: .relaxed) < target && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        return successes.load(ordering: .relaxed) >= target
    }
}
